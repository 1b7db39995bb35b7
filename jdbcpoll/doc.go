// Package jdbcpoll will hold the incremental polling source over
// database/sql (MySQL, PostgreSQL): a cursor on (updated_at, primary key) or
// an increasing id, with a lag window for in-flight transactions, a
// soft-delete column, a schedule and bounded ranges for backfills. The
// cursor is the checkpoint position.
//
// Nothing is implemented here yet; see pipeline/doc.go for the Source
// contract it will follow.
package jdbcpoll
