// Package cdc is the home of sluice's change-stream sources: cdc/mysql
// (MySQL and MariaDB binlog with a lock-free chunked snapshot, on
// go-mysql) and cdc/kafka (Debezium, Canal, Maxwell and plain JSON topics,
// on franz-go, offsets owned by checkpoints).
//
// Each source implements pipeline.Source and follows its contract (see
// pipeline/doc.go): Read returns within a second even when idle, Snapshot
// returns the position after the last batch returned (a GTID set and
// snapshot chunk progress, or partition offsets), and Ack releases
// upstream only what a committed checkpoint covers. Sources never import
// each other or the lake.
//
// cdc/mysql streams the binlog today (no initial snapshot yet); cdc/kafka
// arrives with its own issue. Each is wired in cmd/sluice's explicit
// source switch.
package cdc
