package dedupe

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluice-cdc/sluice/pipeline"
)

// ordersSchema: id long (pk), name string, amount decimal, v long, ts timestamp.
func ordersSchema() *pipeline.Schema {
	return &pipeline.Schema{
		Table: pipeline.TableID{Namespace: "shop", Name: "orders"},
		Columns: []pipeline.Column{
			{Name: "id", Type: pipeline.TypeInt64},
			{Name: "name", Type: pipeline.TypeString, Nullable: true},
			{Name: "amount", Type: pipeline.TypeDecimal, Nullable: true, Precision: 10, Scale: 2},
			{Name: "v", Type: pipeline.TypeInt64, Nullable: true},
			{Name: "ts", Type: pipeline.TypeTimestamp, Nullable: true},
		},
		Key:     []int{0},
		Version: 1,
	}
}

func row(id int64, name any) []any {
	return []any{id, name, pipeline.Decimal{Unscaled: 100, Scale: 2}, nil, nil}
}

func ins(seq uint64, id int64, name any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpInsert, After: row(id, name), Seq: seq}
}

func upd(seq uint64, id int64, before, after any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpUpdate, Before: row(id, before), After: row(id, after), Seq: seq}
}

func del(seq uint64, id int64, name any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpDelete, Before: row(id, name), Seq: seq}
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func defaultRules() []Rule               { return []Rule{{Match: "shop.*"}} }

// Small filters keep the many operators of the tests cheap.
func memCfg(rules ...Rule) Config {
	return Config{Dir: "/state", Tables: rules, FilterSize: 256 << 10}
}

func diskCfg(t *testing.T, rules ...Rule) Config {
	return Config{Dir: t.TempDir(), Tables: rules, FilterSize: 256 << 10}
}

// newOp builds and opens an operator on fs (nil: the real file system).
func newOp(t *testing.T, cfg Config, fs vfs.FS, state []byte, opts ...Option) *Operator {
	t.Helper()
	if fs != nil {
		opts = append(opts, withFS(fs))
	}
	o, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := o.Open(context.Background(), state); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

// run processes one batch and returns what was emitted (nil if nothing).
func run(t *testing.T, o *Operator, s *pipeline.Schema, recs ...pipeline.Record) []pipeline.Record {
	t.Helper()
	out, err := tryRun(o, s, recs...)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return out
}

func tryRun(o *Operator, s *pipeline.Schema, recs ...pipeline.Record) ([]pipeline.Record, error) {
	var out []pipeline.Record
	emitted := 0
	err := o.Process(context.Background(), &pipeline.Batch{Schema: s, Records: recs}, func(b *pipeline.Batch) error {
		emitted++
		out = append(out, b.Records...)
		return nil
	})
	if emitted > 1 {
		return nil, fmt.Errorf("emitted %d batches for one input", emitted)
	}
	return out, err
}

func snapshot(t *testing.T, o *Operator, id uint64) []byte {
	t.Helper()
	st, err := o.Snapshot(context.Background(), id)
	if err != nil {
		t.Fatalf("Snapshot(%d): %v", id, err)
	}
	return st
}

// render describes records compactly for comparisons and failure messages.
func render(recs []pipeline.Record) string {
	var sb strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&sb, "%s seq=%d before=%v after=%v\n", r.Op, r.Seq, r.Before, r.After)
	}
	return sb.String()
}

// seqs returns the Seq of every record, the simplest way to say which
// records passed when each has its own.
func seqs(recs []pipeline.Record) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}
