package enrich

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

var customersID = pipeline.TableID{Namespace: "shop", Name: "customers"}

func customersSchema() *pipeline.Schema {
	return &pipeline.Schema{
		Table: customersID,
		Columns: []pipeline.Column{
			{Name: "id", Type: pipeline.TypeInt64},
			{Name: "name", Type: pipeline.TypeString, Nullable: true},
			{Name: "tier", Type: pipeline.TypeInt32, Nullable: true},
		},
		Key:     []int{0},
		Version: 1,
	}
}

func cust(op pipeline.Op, id int64, name string, tier int32) pipeline.Record {
	row := []any{id, name, tier}
	switch op {
	case pipeline.OpDelete:
		return pipeline.Record{Op: op, Before: row}
	case pipeline.OpUpdate:
		// The before image is not read for a same-key update.
		return pipeline.Record{Op: op, Before: []any{id, "old", int32(0)}, After: row}
	}
	return pipeline.Record{Op: op, After: row}
}

func streamDims(cacheSize int) map[string]Dimension {
	return map[string]Dimension{"customers": {
		Stream:  &Stream{Table: "shop.customers", Key: "id"},
		Columns: []string{"name", "tier"},
		Cache:   Cache{Size: cacheSize},
	}}
}

func custRule(missing Missing) Rule {
	return Rule{Match: "shop.orders", Dim: "customers", On: "channel_id",
		Add: map[string]string{"customer_name": "name", "customer_tier": "tier"}, Missing: missing}
}

func newStreamOp(t *testing.T, dir string, cacheSize int, missing Missing) *Operator {
	t.Helper()
	op, err := New(streamDims(cacheSize), []Rule{custRule(missing)}, WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func openState(t *testing.T, op *Operator, state []byte) {
	t.Helper()
	if err := op.Open(context.Background(), state); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = op.Close() })
}

func applyCustomers(t *testing.T, op *Operator, recs ...pipeline.Record) {
	t.Helper()
	in := batchOf(customersSchema(), recs...)
	out := process(t, op, in)
	// Passed on unchanged: the dimension table still reaches the lake.
	if len(out) != 1 || out[0] != in {
		t.Fatalf("a batch of the dimension's table was not passed on as is: %v", out)
	}
}

func name(t *testing.T, op *Operator, id int64) string {
	t.Helper()
	out := process(t, op, batchOf(ordersSchema(), ins(1000+id, int32(id))))
	if len(out) == 0 {
		return "dropped"
	}
	if out[0].Schema.Table == pipeline.DeadLetterTable {
		return "dead:" + out[0].Records[0].After[pipeline.DeadLetterSchema.ColumnIndex("reason")].(string)
	}
	r := out[0].Records[0].After
	if r[3] == nil {
		return "<null>"
	}
	return r[3].(string)
}

func TestStreamApplyAndLookup(t *testing.T) {
	op := newStreamOp(t, t.TempDir(), 100, MissingNull)
	openState(t, op, nil)
	applyCustomers(t, op, cust(pipeline.OpRead, 1, "ann", 1), cust(pipeline.OpInsert, 2, "bob", 2))
	out := process(t, op, batchOf(ordersSchema(), ins(10, int32(1)), ins(11, int32(2)), ins(12, int32(3)), ins(13, nil)))
	want := [][]any{
		{int64(10), int32(1), "n", "ann", int32(1)},
		{int64(11), int32(2), "n", "bob", int32(2)},
		{int64(12), int32(3), "n", nil, nil},
		{int64(13), nil, "n", nil, nil},
	}
	for i, r := range out[0].Records {
		if !reflect.DeepEqual(r.After, want[i]) {
			t.Errorf("record %d: %v, want %v", i, r.After, want[i])
		}
	}
	if c := out[0].Schema.Columns[4]; c.Name != "customer_tier" || c.Type != pipeline.TypeInt32 || !c.Nullable {
		t.Errorf("added column typed from the stream's schema: %+v", c)
	}
	// An update is seen by the next fact row; a key change moves the row.
	applyCustomers(t, op, cust(pipeline.OpUpdate, 1, "anna", 3),
		pipeline.Record{Op: pipeline.OpUpdate, Before: []any{int64(2), "bob", int32(2)}, After: []any{int64(5), "bob", int32(2)}})
	if got := name(t, op, 1); got != "anna" {
		t.Errorf("after update: %s, want anna", got)
	}
	if got := name(t, op, 2); got != "<null>" {
		t.Errorf("old key of a key-changing update: %s, want <null>", got)
	}
	if got := name(t, op, 5); got != "bob" {
		t.Errorf("new key of a key-changing update: %s, want bob", got)
	}
	if s := op.Stats(); s.StreamChanges != 5 || s.Queries != 0 {
		t.Errorf("stats %+v: want 5 stream changes, no queries", s)
	}
}

func TestStreamDeleteIsMissing(t *testing.T) {
	for _, m := range []Missing{MissingNull, MissingDrop, MissingDeadLetter} {
		t.Run(string(m), func(t *testing.T) {
			op := newStreamOp(t, t.TempDir(), 100, m)
			openState(t, op, nil)
			applyCustomers(t, op, cust(pipeline.OpInsert, 1, "ann", 1))
			if got := name(t, op, 1); got != "ann" {
				t.Fatalf("before delete: %s", got)
			}
			applyCustomers(t, op, cust(pipeline.OpDelete, 1, "ann", 1))
			want := map[Missing]string{MissingNull: "<null>", MissingDrop: "dropped",
				MissingDeadLetter: "dead:no row in dimension customers for channel_id=1"}[m]
			if got := name(t, op, 1); got != want {
				t.Errorf("after delete: %q, want %q", got, want)
			}
			// A delete of a fact row is never dropped for a missing key.
			out := process(t, op, batchOf(ordersSchema(), pipeline.Record{Op: pipeline.OpDelete, Before: []any{int64(7), int32(1), "n"}}))
			if len(out) != 1 || len(out[0].Records) != 1 {
				t.Errorf("fact delete: %v", out)
			}
		})
	}
}

// A restore gives the store of the checkpoint named, not the later writes,
// and the two newest checkpoints can be restored.
func TestStreamSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	op := newStreamOp(t, dir, 100, MissingNull)
	openState(t, op, nil)
	applyCustomers(t, op, cust(pipeline.OpInsert, 1, "v1", 1), cust(pipeline.OpInsert, 2, "two", 2))
	st1, err := op.Snapshot(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	applyCustomers(t, op, cust(pipeline.OpUpdate, 1, "v2", 1), cust(pipeline.OpDelete, 2, "two", 2))
	st2, err := op.Snapshot(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	applyCustomers(t, op, cust(pipeline.OpUpdate, 1, "v3", 1), cust(pipeline.OpInsert, 3, "three", 3))
	st3, err := op.Snapshot(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Written after the last checkpoint, and looked up so that it is cached.
	applyCustomers(t, op, cust(pipeline.OpUpdate, 1, "later", 1), cust(pipeline.OpInsert, 4, "four", 4))
	if got := name(t, op, 1); got != "later" {
		t.Fatalf("live: %s", got)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		state          []byte
		one, two, four string
	}{
		{st3, "v3", "<null>", "<null>"},
		{st2, "v2", "<null>", "<null>"},
		{st3, "v3", "<null>", "<null>"}, // again, after st2's branch wrote
	} {
		// A new operator, as in a restarted process: it must type the
		// added columns before seeing a batch of customers again.
		r := newStreamOp(t, dir, 100, MissingNull)
		if err := r.Open(ctx, c.state); err != nil {
			t.Fatalf("Open(%s): %v", c.state, err)
		}
		if one, two, four := name(t, r, 1), name(t, r, 2), name(t, r, 4); one != c.one || two != c.two || four != c.four {
			t.Errorf("restore %s: 1=%s 2=%s 4=%s, want %s %s %s", c.state, one, two, four, c.one, c.two, c.four)
		}
		// The restored branch writes; the checkpoint stays as it was.
		applyCustomers(t, r, cust(pipeline.OpUpdate, 1, "branch", 1))
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Checkpoint 1 is older than the two kept: restoring it is an error,
	// never an empty dimension.
	r := newStreamOp(t, dir, 100, MissingNull)
	err = r.Open(ctx, st1)
	if !errors.Is(err, checkpoint.ErrStateLost) {
		t.Errorf("restore of a pruned checkpoint: %v, want ErrStateLost", err)
	}
	_ = r.Close()
}

// The cache is small and bounded, and a write to the stream replaces
// what it holds, so lookups never see an old value.
func TestStreamCacheNeverStale(t *testing.T) {
	op := newStreamOp(t, t.TempDir(), 4, MissingNull)
	openState(t, op, nil)
	for id := int64(1); id <= 20; id++ {
		applyCustomers(t, op, cust(pipeline.OpInsert, id, "a", 1))
	}
	cur := map[int64]string{}
	for id := int64(1); id <= 20; id++ {
		cur[id] = "a"
	}
	for round := range 5 {
		for id := int64(1); id <= 20; id++ {
			if got := name(t, op, id); got != cur[id] {
				t.Fatalf("round %d id %d: %s, want %s", round, id, got, cur[id])
			}
			// Again at once: from the cache.
			if got := name(t, op, id); got != cur[id] {
				t.Fatalf("round %d id %d (cached): %s, want %s", round, id, got, cur[id])
			}
			cur[id] = fmt.Sprintf("r%d-%d", round, id)
			applyCustomers(t, op, cust(pipeline.OpUpdate, id, cur[id], 1))
			if got := name(t, op, id); got != cur[id] {
				t.Fatalf("round %d id %d right after its update: %s, want %s", round, id, got, cur[id])
			}
		}
		// Updates of keys that are not cached any more (size 4 of 20).
		for id := int64(1); id <= 20; id += 3 {
			cur[id] += "x"
			applyCustomers(t, op, cust(pipeline.OpUpdate, id, cur[id], 1))
		}
	}
	// Deleted while cached, then back.
	name(t, op, 3)
	applyCustomers(t, op, cust(pipeline.OpDelete, 3, "", 0))
	if got := name(t, op, 3); got != "<null>" {
		t.Errorf("deleted while cached: %s", got)
	}
	applyCustomers(t, op, cust(pipeline.OpInsert, 3, "back", 1))
	if got := name(t, op, 3); got != "back" {
		t.Errorf("re-inserted while cached as missing: %s", got)
	}
	s := op.Stats()
	if s.CacheEntries > 4 || s.CacheHits == 0 {
		t.Errorf("stats %+v: want at most 4 cache entries and some hits", s)
	}
}

// Without a probe and before any batch of the dimension's table, the added
// columns cannot be typed: the error says so instead of guessing.
func TestStreamTypesUnknown(t *testing.T) {
	op := newStreamOp(t, t.TempDir(), 10, MissingNull)
	openState(t, op, nil)
	_, err := tryProcess(op, batchOf(ordersSchema(), ins(1, int32(1))))
	if err == nil || !strings.Contains(err.Error(), "types of its columns are unknown") {
		t.Fatalf("fact row before the dimension's first batch: %v", err)
	}
	applyCustomers(t, op, cust(pipeline.OpInsert, 1, "ann", 1))
	if got := name(t, op, 1); got != "ann" {
		t.Errorf("after the first batch: %s", got)
	}
	// A schema without the key column is a configuration error.
	bad := &pipeline.Schema{Table: customersID, Columns: []pipeline.Column{{Name: "name", Type: pipeline.TypeString}}, Version: 2}
	if _, err := tryProcess(op, batchOf(bad, pipeline.Record{Op: pipeline.OpInsert, After: []any{"x"}})); err == nil || !strings.Contains(err.Error(), `no key column "id"`) {
		t.Errorf("schema without the key: %v", err)
	}
}

// With a probe DSN the types come from the source table itself, so a fact
// row may come first.
func TestStreamProbe(t *testing.T) {
	be := mariaBackend(t)
	be.exec(t, "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(40), tier INT)")
	var db string
	if err := be.db.QueryRow("SELECT DATABASE()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	dims := streamDims(10)
	d := dims["customers"]
	d.Stream = &Stream{Table: db + ".customers", Key: "id", ProbeDSN: be.dsn}
	dims["customers"] = d
	op, err := New(dims, []Rule{custRule(MissingNull)}, WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	openState(t, op, nil)
	out := process(t, op, batchOf(ordersSchema(), ins(1, int32(1))))
	cols := out[0].Schema.Columns
	if cols[3].Type != pipeline.TypeString || cols[4].Type != pipeline.TypeInt32 || out[0].Records[0].After[3] != nil {
		t.Errorf("probed: %+v %v", cols, out[0].Records[0].After)
	}
}

func TestRowCodec(t *testing.T) {
	ts := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	row := []any{nil, true, false, int32(-7), int64(1 << 40), float32(1.5), 2.25, pipeline.Decimal{Unscaled: -1230, Scale: 2},
		"héllo", []byte{0, 1}, ts, 90 * time.Second}
	b, err := encodeRow(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRow(b, len(row))
	if err != nil {
		t.Fatal(err)
	}
	for i := range row {
		if !reflect.DeepEqual(got[i], row[i]) {
			t.Errorf("value %d: %#v, want %#v", i, got[i], row[i])
		}
	}
	if _, err := decodeRow(b[:len(b)-1], len(row)); err == nil {
		t.Error("a truncated row decoded")
	}
}
