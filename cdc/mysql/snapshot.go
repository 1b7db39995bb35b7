package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/pipeline"
)

// The initial snapshot reads each table in primary-key chunks without
// locks and without a long transaction. Each chunk is read in its own
// short transaction opened WITH CONSISTENT SNAPSHOT, and MariaDB reports
// the binlog position that snapshot corresponds to
// (binlog_snapshot_file/position): the chunk's rows are exactly the table's
// state at that point of the binlog. The binlog reader hands the chunk's
// rows out as OpRead records when it reaches that point, before any event
// after it. Every binlog event is still handed out, including events of
// rows not read yet (their full after image makes them correct upserts
// on their own); a chunk read later then carries the same or a newer
// state, and events after the chunk's point come after its rows. So the
// lake's upsert table ends equal to the source with no window to
// reconcile, and the changelog holds every binlog change once plus one
// read per row.
//
// Chunks are planned by key order: the upper bound of a chunk is the key
// chunk_size rows past its lower bound (an index-only scan), the last
// chunk of a table is unbounded. Up to snapshot_parallel chunks are read
// at once; their consistent snapshots are opened in order by the reader,
// so their points are ordered too, and the reader waits for a chunk whose
// point it reaches before it has arrived.
//
// MySQL reports no consistent-snapshot position, so there (and on
// MariaDB with snapshot_method: watermark) a chunk is reconciled with
// low and high watermarks instead, as DBLog does:
//
//  1. Low: every transaction the reader has already received whole must
//     be visible to the chunk's snapshot. On MySQL the reader's GTID set
//     must be inside @@gtid_executed (which holds only transactions
//     committed in the engine, unlike the binlog position, which a
//     transaction passes before its engine commit); on MariaDB the
//     reader's position must not be past the snapshot's position. Until
//     it is, the source waits (MySQL) or opens the snapshot again
//     (MariaDB).
//  2. The chunk's consistent snapshot is opened; then the high watermark
//     is read: @@gtid_executed on MySQL, SHOW MASTER STATUS on MariaDB.
//     Everything the snapshot reflects is inside it.
//  3. From planning on, the reader notes the key (before and after image)
//     of every change to the chunk's table it receives: the window.
//  4. The chunk's rows are handed out once the reader is past the high
//     watermark, without the rows whose key is in the window. Such a row
//     may be older in the snapshot than in the binlog, and every change in
//     the window has been handed out already with its full image, so
//     dropping the row loses nothing; a row not in the window has not
//     changed since the low watermark, so its snapshot image is current.
//
// The window needs no key-range test: a key outside the chunk matches no
// row of it. Rows are still read at most once.
//
// Progress is the last key handed out: a checkpoint inside a chunk
// restarts, after a restore, with a new chunk just after that key. Rows are
// read at most once whatever the cut.

// binlogPos is a binlog file and offset.
type binlogPos struct {
	file string
	pos  uint64
}

// less orders positions; binlog file names share a base and a zero-padded
// sequence number, and a longer name has a larger number.
func (p binlogPos) less(q binlogPos) bool {
	if p.file != q.file {
		if len(p.file) != len(q.file) {
			return len(p.file) < len(q.file)
		}
		return p.file < q.file
	}
	return p.pos < q.pos
}

func (p binlogPos) String() string { return fmt.Sprintf("%s:%d", p.file, p.pos) }

// chunk is one key range of one table, read at one binlog point.
type chunk struct {
	t   *table
	seq int   // chunk number within its table, for positions
	lo  []any // exclusive lower bound, nil: the table's start
	hi  []any // inclusive upper bound, nil: unbounded (the last chunk)
	at  binlogPos
	// Watermark reconciliation (nil window: the position method). high is
	// the high watermark on MariaDB, highSet on MySQL; window holds the
	// keys (keyString) of the changes to t the reader received since the
	// chunk was planned.
	window  map[string]struct{}
	high    binlogPos
	highSet gomysql.GTIDSet
	tx      *sql.Conn
	done    chan struct{}
	// Set by the reading goroutine before done closes.
	recs []pipeline.Record
	keys [][]any // key values of each record, as read
	err  error
}

// snapshotter plans and reads chunks; the Source owns it.
type snapshotter struct {
	db       *sql.DB // sessions in UTC, text values
	chunk    int
	parallel int
	// watermark selects the watermark method; flavor says which
	// watermarks. pause, for tests, widens the gap between a chunk's
	// snapshot and its high watermark.
	watermark bool
	flavor    string
	pause     time.Duration
	backfill  bool // no binlog is read: chunks need no point
	// Planning: tables not fully planned yet, the first in progress.
	plan   []*table
	planLo []any
	planN  int
	// Chunks read or being read, in point order.
	inflight []*chunk
}

// snapState is the snapshot's part of the source state.
type snapState struct {
	// Tables are the tables whose rows are not all handed out yet, in
	// reading order, as "db.table".
	Tables []string `json:"tables"`
	// After is the key of the last row of Tables[0] handed out.
	After []keyValue `json:"after,omitempty"`
}

// keyValue is a key column's value as the driver returned it, typed so
// that it goes back to the server as the same kind of argument.
type keyValue struct {
	I *int64   `json:"i,omitempty"`
	U *uint64  `json:"u,omitempty"`
	F *float64 `json:"f,omitempty"`
	S *string  `json:"s,omitempty"`
	B []byte   `json:"b,omitempty"`
}

func encodeKey(vals []any) ([]keyValue, error) {
	if vals == nil {
		return nil, nil
	}
	out := make([]keyValue, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case int64:
			out[i].I = &x
		case uint64:
			out[i].U = &x
		case float64:
			out[i].F = &x
		case float32:
			f := float64(x)
			out[i].F = &f
		case []byte:
			if utf8.Valid(x) {
				s := string(x)
				out[i].S = &s
			} else {
				out[i].B = x
			}
		case string:
			out[i].S = &x
		case time.Time:
			s := x.UTC().Format("2006-01-02 15:04:05.999999")
			out[i].S = &s
		default:
			return nil, fmt.Errorf("mysql: key value %T(%v) cannot be saved in a checkpoint", v, v)
		}
	}
	return out, nil
}

func decodeKey(kv []keyValue) ([]any, error) {
	if kv == nil {
		return nil, nil
	}
	out := make([]any, len(kv))
	for i, k := range kv {
		switch {
		case k.I != nil:
			out[i] = *k.I
		case k.U != nil:
			out[i] = *k.U
		case k.F != nil:
			out[i] = *k.F
		case k.S != nil:
			out[i] = *k.S
		case k.B != nil:
			out[i] = k.B
		default:
			return nil, fmt.Errorf("mysql: empty key value in snapshot state")
		}
	}
	return out, nil
}

// openSnapshotDB opens the pool chunk reads use: sessions in UTC so that
// TIMESTAMP text is UTC, values as text (no parseTime) so that they take
// the same conversions as binlog values.
func openSnapshotDB(dsn string, tlsCfg *tls.Config, parallel int) (*sql.DB, error) {
	dc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	dc.ParseTime = false
	if dc.Params == nil {
		dc.Params = map[string]string{}
	}
	dc.Params["time_zone"] = "'+00:00'"
	dc.TLS = tlsCfg
	conn, err := mysql.NewConnector(dc)
	if err != nil {
		return nil, fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	db := sql.OpenDB(conn)
	// One connection per chunk being read, plus one for planning.
	db.SetMaxOpenConns(parallel + 1)
	db.SetMaxIdleConns(parallel + 1)
	return db, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (t *table) qualified() string {
	return quoteIdent(t.schema.Table.Namespace) + "." + quoteIdent(t.schema.Table.Name)
}

// keyList is the key columns, comma separated, for ORDER BY and SELECT.
func (t *table) keyList() string {
	var b strings.Builder
	for i, k := range t.schema.Key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(t.schema.Columns[k].Name))
	}
	return b.String()
}

// keyAfter is the condition "key > lo" (or ">=" ... "<=" with op) over a
// composite key, written as an OR of prefixes so that the index is used:
// (a > ?) OR (a = ? AND b > ?) ...
func (t *table) keyCmp(op string, vals []any) (string, []any) {
	var ors []string
	var args []any
	for i := range t.schema.Key {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, quoteIdent(t.schema.Columns[t.schema.Key[j]].Name)+" = ?")
			args = append(args, vals[j])
		}
		o := op
		if i < len(t.schema.Key)-1 {
			o = strings.TrimSuffix(op, "=") // strict on every column but the last
		}
		ands = append(ands, quoteIdent(t.schema.Columns[t.schema.Key[i]].Name)+" "+o+" ?")
		args = append(args, vals[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// selectList reads each column so that its value converts like the
// binlog's: ENUM, SET and BIT as their numbers.
func (t *table) selectList() string {
	var b strings.Builder
	for i, c := range t.schema.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		q := quoteIdent(c.Name)
		switch t.cols[i].dataType {
		case "enum", "set", "bit":
			q = q + "+0"
		}
		b.WriteString(q)
	}
	return b.String()
}

// readerAt is where the binlog reader stands when a chunk is planned:
// after the transactions in set, at pos.
type readerAt struct {
	set gomysql.GTIDSet
	pos binlogPos
}

// planNext opens the next chunk's consistent snapshot and starts reading
// it; it returns false when every table is planned.
func (sn *snapshotter) planNext(ctx context.Context, r readerAt) (bool, error) {
	if len(sn.plan) == 0 {
		return false, nil
	}
	t := sn.plan[0]
	where, args := "", []any(nil)
	if sn.planLo != nil {
		where, args = t.keyCmp(">", sn.planLo)
		where = " WHERE " + where
	}
	// The chunk's upper bound: the key chunk-1 rows past the lower bound.
	q := "SELECT " + t.keyList() + " FROM " + t.qualified() + where + " ORDER BY " + t.keyList() +
		" LIMIT 1 OFFSET " + strconv.Itoa(sn.chunk-1)
	hi := make([]any, len(t.schema.Key))
	ptrs := make([]any, len(hi))
	for i := range hi {
		ptrs[i] = &hi[i]
	}
	err := sn.db.QueryRowContext(ctx, q, args...).Scan(ptrs...)
	switch {
	case err == sql.ErrNoRows:
		hi = nil
	case err != nil:
		return false, fmt.Errorf("mysql: snapshot of %s: plan a chunk: %w", t.schema.Table, err)
	}

	c := &chunk{t: t, seq: sn.planN, lo: sn.planLo, hi: hi, done: make(chan struct{})}
	conn, err := sn.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("mysql: snapshot of %s: %w", t.schema.Table, err)
	}
	c.tx = conn
	switch {
	case sn.backfill: // no binlog is read: the chunk needs no point
		err = c.open(ctx)
	case sn.watermark:
		err = c.beginWatermark(ctx, sn.flavor, r, sn.pause)
	default:
		err = c.begin(ctx)
	}
	if err != nil {
		conn.Close()
		return false, fmt.Errorf("mysql: snapshot of %s: %w", t.schema.Table, err)
	}
	sn.inflight = append(sn.inflight, c)
	go c.read(ctx)

	sn.planN++
	sn.planLo = hi
	if hi == nil {
		sn.plan = sn.plan[1:]
		sn.planN = 0
	}
	return true, nil
}

// open opens the chunk's consistent-snapshot transaction.
func (c *chunk) open(ctx context.Context) error {
	if _, err := c.tx.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return err
	}
	_, err := c.tx.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
	return err
}

// begin opens the chunk's transaction and reads its binlog point
// (MariaDB's binlog_snapshot_file/position).
func (c *chunk) begin(ctx context.Context) error {
	if err := c.open(ctx); err != nil {
		return err
	}
	rows, err := c.tx.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			c.at.file = v
		case "binlog_snapshot_position":
			if c.at.pos, err = strconv.ParseUint(v, 10, 64); err != nil {
				return fmt.Errorf("binlog_snapshot_position %q: %w", v, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if c.at.file == "" {
		return fmt.Errorf("the server reports no binlog_snapshot_file: the consistent-snapshot binlog position needs MariaDB with log_bin=ON")
	}
	return nil
}

// lowWait bounds how long a chunk waits for the engine to commit what the
// reader has already received (step 1 above): normally microseconds.
const lowWait = 10 * time.Second

// beginWatermark opens the chunk's consistent snapshot between a low and a
// high watermark (see the top of this file) and starts its window.
func (c *chunk) beginWatermark(ctx context.Context, flavor string, r readerAt, pause time.Duration) error {
	deadline := time.Now().Add(lowWait)
	for {
		if flavor == gomysql.MySQLFlavor {
			low, err := gtidExecuted(ctx, c.tx)
			if err != nil {
				return err
			}
			if !low.Contain(r.set) {
				if time.Now().After(deadline) {
					return fmt.Errorf("the reader has received transactions (%s) that @@gtid_executed (%s) still lacks after %s", r.set, low, lowWait)
				}
				time.Sleep(time.Millisecond)
				continue
			}
		}
		if flavor == gomysql.MySQLFlavor {
			// No binlog_snapshot_* status there: the watermarks are GTID
			// sets.
			if err := c.open(ctx); err != nil {
				return err
			}
			break
		}
		if err := c.begin(ctx); err != nil {
			return err
		}
		if !c.at.less(r.pos) {
			break
		}
		// MariaDB: the snapshot misses transactions the reader has already
		// received (their engine commit was still running): take it again.
		if _, err := c.tx.ExecContext(ctx, "COMMIT"); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the consistent snapshot stays at %s, behind the reader at %s, after %s", c.at, r.pos, lowWait)
		}
		time.Sleep(time.Millisecond)
	}
	if pause > 0 {
		time.Sleep(pause)
	}
	if flavor == gomysql.MySQLFlavor {
		high, err := gtidExecuted(ctx, c.tx)
		if err != nil {
			return err
		}
		c.highSet = high
		// The binlog end at about the same time, for the rows' positions
		// only (Record.Position "snapshot@file:pos key=...").
		if c.at, err = binlogEnd(ctx, c.tx); err != nil {
			return err
		}
	} else {
		high, err := binlogEnd(ctx, c.tx)
		if err != nil {
			return err
		}
		c.high = high
	}
	c.window = map[string]struct{}{}
	return nil
}

// gtidExecuted reads MySQL's set of transactions committed in the engine.
func gtidExecuted(ctx context.Context, q querier) (gomysql.GTIDSet, error) {
	var s string
	if err := q.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&s); err != nil {
		return nil, fmt.Errorf("read @@gtid_executed: %w", err)
	}
	set, err := gomysql.ParseMysqlGTIDSet(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("@@gtid_executed %q: %w", s, err)
	}
	return set, nil
}

// querier is what both *sql.DB and *sql.Conn offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reached reports that the reader, after the transactions in set and at
// pos, is past the chunk's point, so that its rows can be handed out.
func (c *chunk) reached(set gomysql.GTIDSet, pos binlogPos) bool {
	if c.highSet != nil {
		return set.Contain(c.highSet)
	}
	at := c.at
	if c.high.file != "" { // MariaDB with watermarks
		at = c.high
	}
	return pos.file != "" && !pos.less(at)
}

// note adds the keys of a change received by the reader to the window.
func (c *chunk) note(t *table, r *pipeline.Record) {
	if c.window == nil || t.schema.Table != c.t.schema.Table {
		return
	}
	if r.Before != nil {
		c.window[keyString(t, r.Before)] = struct{}{}
	}
	if r.After != nil {
		c.window[keyString(t, r.After)] = struct{}{}
	}
}

// reconcile drops the rows whose key the window holds (step 4); it returns
// how many.
func (c *chunk) reconcile() int {
	if len(c.window) == 0 {
		c.window = nil
		return 0
	}
	n := 0
	for i := range c.recs {
		if _, changed := c.window[keyString(c.t, c.recs[i].After)]; changed {
			continue
		}
		c.recs[n], c.keys[n] = c.recs[i], c.keys[i]
		n++
	}
	dropped := len(c.recs) - n
	clear(c.recs[n:])
	clear(c.keys[n:])
	c.recs, c.keys = c.recs[:n], c.keys[:n]
	c.window = nil
	return dropped
}

// read runs on its own goroutine: it reads the chunk's rows in its
// transaction and closes done. The snapshotter waits for it before it
// lets go of the chunk (Source.Close included).
func (c *chunk) read(ctx context.Context) {
	defer close(c.done)
	defer c.tx.Close()
	c.err = c.readRows(ctx)
	// A read-only transaction: ending it cannot lose anything.
	_, _ = c.tx.ExecContext(context.WithoutCancel(ctx), "COMMIT")
	if c.err != nil {
		c.err = fmt.Errorf("mysql: snapshot of %s, chunk %d: %w", c.t.schema.Table, c.seq, c.err)
	}
}

func (c *chunk) readRows(ctx context.Context) error {
	t := c.t
	var conds []string
	var args []any
	if c.lo != nil {
		w, a := t.keyCmp(">", c.lo)
		conds, args = append(conds, w), append(args, a...)
	}
	if c.hi != nil {
		w, a := t.keyCmp("<=", c.hi)
		conds, args = append(conds, w), append(args, a...)
	}
	q := "SELECT " + t.selectList() + " FROM " + t.qualified()
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + t.keyList()
	// The driver's rows are read directly rather than through Rows.Scan:
	// Scan copies every text value and boxes every number once more, and
	// at a million rows that was a tenth of the snapshot's CPU. Values in
	// raw alias the driver's buffer until the next row: fromSQL and
	// convert copy what they keep, and key values are copied here.
	return c.tx.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("the MySQL driver's connection (%T) cannot prepare with a context", dc)
		}
		stmt, err := prep.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer stmt.Close()
		named := make([]driver.NamedValue, len(args))
		for i, a := range args {
			named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		}
		rows, err := stmt.(driver.StmtQueryContext).QueryContext(ctx, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		return c.readDriverRows(rows)
	})
}

func (c *chunk) readDriverRows(rows driver.Rows) error {
	t := c.t
	n := len(t.cols)
	raw := make([]driver.Value, n)
	vals := make([]any, n)
	now := time.Now().UTC()
	// A row is read at most once, so its key makes its position unique
	// (chunks read while the binlog is idle share their point).
	pos := fmt.Sprintf("snapshot@%s key=", c.at)
	for {
		if err := rows.Next(raw); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		key := make([]any, len(t.schema.Key))
		for i, k := range t.schema.Key {
			if b, ok := raw[k].([]byte); ok {
				key[i] = bytes.Clone(b)
			} else {
				key[i] = raw[k]
			}
		}
		for i, v := range raw {
			x, err := fromSQL(&t.cols[i], v)
			if err != nil {
				return fmt.Errorf("column %s: %w", t.schema.Columns[i].Name, err)
			}
			vals[i] = x
		}
		after, err := t.convertRow(vals)
		if err != nil {
			return err
		}
		c.recs = append(c.recs, pipeline.Record{
			Op: pipeline.OpRead, After: after, EventTime: now,
			Position: pos + keyString(t, after),
		})
		c.keys = append(c.keys, key)
	}
}

// fromSQL turns a value as go-sql-driver returns it into the form the
// binlog decoder gives the same column, so that both take convert.
func fromSQL(ci *colInfo, v any) (any, error) {
	b, ok := v.([]byte)
	if !ok {
		if f, isFloat := v.(float64); isFloat {
			switch ci.dataType {
			case "enum", "set", "bit", "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
				return int64(f), nil
			}
		}
		return v, nil
	}
	switch ci.dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "enum", "set", "bit":
		if ci.unsigned || ci.dataType == "enum" || ci.dataType == "set" || ci.dataType == "bit" {
			return strconv.ParseUint(string(b), 10, 64)
		}
		return strconv.ParseInt(string(b), 10, 64)
	case "float":
		f, err := strconv.ParseFloat(string(b), 32)
		return float32(f), err
	case "double", "real", "double precision":
		return strconv.ParseFloat(string(b), 64)
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return b, nil
	}
	if ci.spatial {
		return b, nil
	}
	switch ci.dataType {
	case "decimal", "numeric", "fixed", "date", "datetime", "timestamp", "time":
		return string(b), nil
	}
	// Text: b aliases the driver's buffer; convert makes the one string
	// copy that is kept.
	return b, nil
}

// wait returns once the chunk is read.
func (c *chunk) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close waits for every chunk being read and releases the pool.
func (sn *snapshotter) close() error {
	for _, c := range sn.inflight {
		<-c.done
	}
	sn.inflight = nil
	return sn.db.Close()
}

// snapshotState is the JSON of a snapshot's progress for Source.Snapshot.
func marshalSnap(tables []*table, after []any) (*snapState, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	st := &snapState{}
	for _, t := range tables {
		st.Tables = append(st.Tables, t.schema.Table.String())
	}
	k, err := encodeKey(after)
	if err != nil {
		return nil, err
	}
	st.After = k
	return st, nil
}

// keyString renders a row's key values for its position.
func keyString(t *table, row []any) string {
	if len(t.schema.Key) == 1 {
		// The common case, without fmt.
		switch v := row[t.schema.Key[0]].(type) {
		case int32:
			return strconv.FormatInt(int64(v), 10)
		case int64:
			return strconv.FormatInt(v, 10)
		case string:
			return v
		}
	}
	var b strings.Builder
	for i, k := range t.schema.Key {
		if i > 0 {
			b.WriteByte(',')
		}
		switch v := row[k].(type) {
		case []byte:
			b.WriteString("0x" + fmt.Sprintf("%x", v))
		case time.Time:
			b.WriteString(v.Format("2006-01-02T15:04:05.999999"))
		case pipeline.Decimal:
			b.WriteString(v.String())
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// jsonString is for error messages.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
