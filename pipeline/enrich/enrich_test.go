package enrich

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

func TestEnrichAddsColumnsAndCaches(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 10)
		op := open(t, map[string]Dimension{"channels": be.dim("channels", "id")}, []Rule{channelRule("")})
		in := ordersSchema()
		b := batchOf(in, ins(1, int32(1)), ins(2, int32(2)), ins(3, int32(1)), ins(4, nil), ins(5, int32(99)))
		out := process(t, op, b)
		if len(out) != 1 {
			t.Fatalf("emitted %d batches, want 1", len(out))
		}
		got := out[0]
		if want := []string{"id", "channel_id", "note", "channel_name", "channel_region"}; !reflect.DeepEqual(columnNames(got.Schema), want) {
			t.Fatalf("columns %v, want %v", columnNames(got.Schema), want)
		}
		for _, c := range got.Schema.Columns[3:] {
			if c.Type != pipeline.TypeString || !c.Nullable {
				t.Errorf("added column %+v: want a nullable string", c)
			}
		}
		if !reflect.DeepEqual(got.Schema.Key, in.Key) || got.Schema.Version != in.Version || got.Schema.Table != in.Table {
			t.Errorf("output schema %+v does not keep the input's table, key and version", got.Schema)
		}
		want := [][]any{
			{int64(1), int32(1), "n", "ch-1", "r1"},
			{int64(2), int32(2), "n", "ch-2", "r2"},
			{int64(3), int32(1), "n", "ch-1", "r1"},
			{int64(4), nil, "n", nil, nil},
			{int64(5), int32(99), "n", nil, nil},
		}
		for i, r := range got.Records {
			if !reflect.DeepEqual(r.After, want[i]) {
				t.Errorf("record %d: %v, want %v", i, r.After, want[i])
			}
			if r.Position != b.Records[i].Position || r.Op != pipeline.OpInsert {
				t.Errorf("record %d lost its position or op: %+v", i, r)
			}
		}
		if len(b.Records[0].After) != 3 {
			t.Errorf("the input record was modified: %v", b.Records[0].After)
		}
		st := op.Stats()
		want1 := Stats{Lookups: 4, CacheMisses: 4, KeysFetched: 3, Queries: 1, Missing: 2, CacheEntries: 3}
		if st != want1 {
			t.Errorf("stats after the first batch: %+v, want %+v", st, want1)
		}

		// The same keys again: answered by the cache (the missing key 99
		// by its negative entry), no query.
		out = process(t, op, batchOf(in, ins(6, int32(2)), ins(7, int32(99)), ins(8, int32(1))))
		if out[0].Schema != got.Schema {
			t.Errorf("a second batch of the same input schema got another output schema pointer")
		}
		if v := out[0].Records[0].After[3]; v != "ch-2" {
			t.Errorf("cached name %v, want ch-2", v)
		}
		st = op.Stats()
		if st.Queries != 1 || st.CacheHits != 3 || st.Lookups != 7 {
			t.Errorf("stats after the second batch: %+v, want 1 query and 3 hits of 7 lookups", st)
		}
	})
}

func TestTTLExpiryWithClock(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 3)
		clk := newClock()
		dim := be.dim("channels", "id")
		dim.Cache = Cache{TTL: time.Minute, NegativeTTL: 10 * time.Second}
		op := open(t, map[string]Dimension{"channels": dim}, []Rule{channelRule("")}, WithClock(clk.now))
		in := ordersSchema()
		name := func(out []*pipeline.Batch, i int) any { return out[0].Records[i].After[3] }

		out := process(t, op, batchOf(in, ins(1, int32(1)), ins(2, int32(42))))
		if name(out, 0) != "ch-1" || name(out, 1) != nil {
			t.Fatalf("first batch: %v %v", name(out, 0), name(out, 1))
		}
		be.exec(t, "UPDATE channels SET name = 'renamed' WHERE id = 1")
		be.exec(t, "INSERT INTO channels (id, name, region) VALUES (42, 'ch-42', 'r0')")

		// Within both TTLs: the cache answers, stale by design.
		clk.advance(5 * time.Second)
		out = process(t, op, batchOf(in, ins(3, int32(1)), ins(4, int32(42))))
		if name(out, 0) != "ch-1" || name(out, 1) != nil || op.Stats().Queries != 1 {
			t.Fatalf("within TTL: %v %v, %d queries; want the cached ch-1, NULL, 1 query", name(out, 0), name(out, 1), op.Stats().Queries)
		}

		// Past the negative TTL only: 42 is asked again, 1 is not.
		clk.advance(10 * time.Second)
		out = process(t, op, batchOf(in, ins(5, int32(1)), ins(6, int32(42))))
		if name(out, 0) != "ch-1" || name(out, 1) != "ch-42" {
			t.Fatalf("past the negative TTL: %v %v, want ch-1 ch-42", name(out, 0), name(out, 1))
		}
		if st := op.Stats(); st.Queries != 2 || st.KeysFetched != 3 {
			t.Fatalf("past the negative TTL: %+v, want 2 queries for 3 keys", st)
		}

		// Past the TTL: the renamed row is read.
		clk.advance(time.Minute)
		out = process(t, op, batchOf(in, ins(7, int32(1))))
		if name(out, 0) != "renamed" || op.Stats().Queries != 3 {
			t.Fatalf("past the TTL: %v after %d queries, want renamed after 3", name(out, 0), op.Stats().Queries)
		}
	})
}

// TestTTLExpiryRealTime checks the default clock: entries expire with
// wall time.
func TestTTLExpiryRealTime(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 3)
	dim := be.dim("channels", "id")
	dim.Cache.TTL = time.Second
	op := open(t, map[string]Dimension{"channels": dim}, []Rule{channelRule("")})
	b := batchOf(ordersSchema(), ins(1, int32(1)))
	process(t, op, b)
	process(t, op, b)
	if q := op.Stats().Queries; q != 1 {
		t.Fatalf("%d queries within the TTL, want 1", q)
	}
	time.Sleep(1100 * time.Millisecond)
	process(t, op, b)
	if q := op.Stats().Queries; q != 2 {
		t.Fatalf("%d queries after the TTL, want 2", q)
	}
}

func TestBatchedLookups(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 1200)
		dim := be.dim("channels", "id")
		dim.BatchSize = 500
		// A cache smaller than the batch: the batch still gets every row
		// (results are kept for the batch), the cache keeps its bound.
		dim.Cache.Size = 100
		op := open(t, map[string]Dimension{"channels": dim}, []Rule{channelRule("")})
		in := ordersSchema()
		var recs []pipeline.Record
		for i := range 2400 { // every key twice, in descending order
			recs = append(recs, ins(int64(i), int32(1200-i%1200)))
		}
		out := process(t, op, batchOf(in, recs...))
		for i, r := range out[0].Records {
			want := "ch-" + strconv.Itoa(int(r.After[1].(int32)))
			if r.After[3] != want {
				t.Fatalf("record %d: %v, want %s", i, r.After[3], want)
			}
		}
		st := op.Stats()
		if st.Queries != 3 || st.KeysFetched != 1200 || st.Missing != 0 || st.CacheEntries != 100 {
			t.Fatalf("stats %+v: want 3 queries for 1200 keys, nothing missing, 100 cached", st)
		}
	})
}

func TestBatchedLookupsCached(t *testing.T) {
	be := pgBackend(t)
	be.channels(t, 1200)
	dim := be.dim("channels", "id")
	dim.BatchSize = 500
	op := open(t, map[string]Dimension{"channels": dim}, []Rule{channelRule("")})
	var recs []pipeline.Record
	for i := range 1200 {
		recs = append(recs, ins(int64(i), int32(i+1)))
	}
	process(t, op, batchOf(ordersSchema(), recs...))
	process(t, op, batchOf(ordersSchema(), recs...))
	if st := op.Stats(); st.Queries != 3 || st.CacheHits != 1200 {
		t.Fatalf("stats %+v: want 3 queries in all and 1200 hits on the second batch", st)
	}
}

func TestMissingPolicies(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 5)
		dims := map[string]Dimension{"channels": be.dim("channels", "id")}
		in := ordersSchema()
		mk := func() *pipeline.Batch {
			return batchOf(in, ins(1, int32(1)), ins(2, int32(77)), ins(3, nil), ins(4, int32(2)))
		}

		t.Run("null", func(t *testing.T) {
			op := open(t, dims, []Rule{channelRule(MissingNull)})
			out := process(t, op, mk())
			if len(out) != 1 || len(out[0].Records) != 4 {
				t.Fatalf("got %d batches, want one of 4 records", len(out))
			}
			if r := out[0].Records[1].After; r[3] != nil || r[4] != nil {
				t.Errorf("missing key: %v, want NULLs", r)
			}
			if st := op.Stats(); st.Missing != 2 || st.Dropped != 0 || st.DeadLettered != 0 {
				t.Errorf("stats %+v", st)
			}
		})

		t.Run("drop", func(t *testing.T) {
			op := open(t, dims, []Rule{channelRule(MissingDrop)})
			out := process(t, op, mk())
			if len(out) != 1 || len(out[0].Records) != 2 {
				t.Fatalf("got %v, want one batch of 2 records", out)
			}
			if a, b := out[0].Records[0].After[0], out[0].Records[1].After[0]; a != int64(1) || b != int64(4) {
				t.Errorf("kept ids %v, %v; want 1, 4 in input order", a, b)
			}
			if st := op.Stats(); st.Missing != 2 || st.Dropped != 2 {
				t.Errorf("stats %+v", st)
			}
			// A batch with nothing left emits nothing.
			if out := process(t, op, batchOf(in, ins(9, int32(77)))); len(out) != 0 {
				t.Errorf("an all-dropped batch emitted %d batches", len(out))
			}
		})

		t.Run("dead_letter", func(t *testing.T) {
			op := open(t, dims, []Rule{channelRule(MissingDeadLetter)})
			b := mk()
			b.Records[1].EventTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
			out := process(t, op, b)
			if len(out) != 2 {
				t.Fatalf("got %d batches, want records then dead letters", len(out))
			}
			if len(out[0].Records) != 2 {
				t.Errorf("%d records passed, want 2", len(out[0].Records))
			}
			dl := out[1]
			if dl.Schema != pipeline.DeadLetterSchema || len(dl.Records) != 2 {
				t.Fatalf("dead letters: schema %v, %d records", dl.Schema.Table, len(dl.Records))
			}
			r := dl.Records[0].After
			if r[0] != "shop.orders" || r[1] != "enrich" || r[3] != "insert" || r[4] != "pos-2" {
				t.Errorf("dead letter %v", r)
			}
			if r[2] != "no row in dimension channels for channel_id=77" {
				t.Errorf("reason %q", r[2])
			}
			if r[5] != b.Records[1].EventTime {
				t.Errorf("event time %v", r[5])
			}
			if raw, _ := r[6].(string); !strings.Contains(raw, `"channel_id":77`) || strings.Contains(raw, "channel_name") {
				t.Errorf("raw %q: want the input record as it came", raw)
			}
			if reason := dl.Records[1].After[2].(string); !strings.Contains(reason, "channel_id=NULL") {
				t.Errorf("NULL key reason %q", reason)
			}
			if st := op.Stats(); st.Missing != 2 || st.DeadLettered != 2 || st.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	})
}

func TestDeletesAndUpdates(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 5)
		op := open(t, map[string]Dimension{"channels": be.dim("channels", "id")}, []Rule{channelRule(MissingDrop)})
		in := ordersSchema()
		del := func(id int64, ch any) pipeline.Record {
			return pipeline.Record{Op: pipeline.OpDelete, Before: []any{id, ch, "n"}}
		}
		// Deletes need no lookup, and are not dropped when the key has no
		// row (the deleted row would stay downstream).
		out := process(t, op, batchOf(in, del(1, int32(1)), del(2, int32(404))))
		if q := op.Stats().Queries; q != 0 {
			t.Errorf("deletes issued %d queries", q)
		}
		if len(out) != 1 || len(out[0].Records) != 2 {
			t.Fatalf("deletes: %v", out)
		}
		for _, r := range out[0].Records {
			if r.After != nil || len(r.Before) != 5 || r.Before[3] != nil || r.Before[4] != nil || r.Op != pipeline.OpDelete {
				t.Errorf("delete %+v: want the before image with NULL added columns", r)
			}
		}
		upd := pipeline.Record{Op: pipeline.OpUpdate, Before: []any{int64(3), int32(1), "old"}, After: []any{int64(3), int32(2), "new"}}
		out = process(t, op, batchOf(in, upd))
		r := out[0].Records[0]
		if !reflect.DeepEqual(r.Before, []any{int64(3), int32(1), "old", nil, nil}) {
			t.Errorf("update before %v", r.Before)
		}
		if !reflect.DeepEqual(r.After, []any{int64(3), int32(2), "new", "ch-2", "r2"}) {
			t.Errorf("update after %v", r.After)
		}
		if st := op.Stats(); st.Lookups != 1 {
			t.Errorf("stats %+v: want one lookup (the update's after image)", st)
		}
	})
}

func TestPassThrough(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 5)
	op := open(t, map[string]Dimension{"channels": be.dim("channels", "id")}, []Rule{channelRule(MissingDeadLetter)})
	other := &pipeline.Schema{Table: pipeline.TableID{Namespace: "shop", Name: "customers"},
		Columns: []pipeline.Column{{Name: "id", Type: pipeline.TypeInt64}, {Name: "channel_id", Type: pipeline.TypeInt32}}}
	b := batchOf(other, pipeline.Record{Op: pipeline.OpInsert, After: []any{int64(1), int32(77)}})
	out := process(t, op, b)
	if len(out) != 1 || out[0] != b {
		t.Fatalf("an unmatched table's batch was not passed through as is")
	}
	dl := pipeline.DeadLetter(ordersSchema(), &pipeline.Record{Op: pipeline.OpInsert, After: []any{int64(1), int32(77), "x"}}, "clean", "bad", "")
	db := batchOf(pipeline.DeadLetterSchema, dl)
	out = process(t, op, db)
	if len(out) != 1 || out[0] != db {
		t.Fatalf("a dead-letter batch was not passed through as is")
	}
	if st := op.Stats(); st.Lookups != 0 || st.Queries != 0 {
		t.Errorf("stats %+v: pass-through looked something up", st)
	}
}

func TestSchemaChange(t *testing.T) {
	be := pgBackend(t)
	be.channels(t, 5)
	op := open(t, map[string]Dimension{"channels": be.dim("public.channels", "id")},
		[]Rule{{Match: "shop.*", Dim: "channels", On: "channel_id", Add: map[string]string{"channel_name": "name"}}})
	s1 := ordersSchema()
	out1 := process(t, op, batchOf(s1, ins(1, int32(1))))[0].Schema
	if again := process(t, op, batchOf(s1, ins(2, int32(2))))[0].Schema; again != out1 {
		t.Fatalf("the output schema changed for the same input schema")
	}
	// The source adds a column: a new *Schema, version 2.
	s2 := ordersSchema()
	s2.Columns = append(s2.Columns, pipeline.Column{Name: "coupon", Type: pipeline.TypeString, Nullable: true})
	s2.Version = 2
	rec := pipeline.Record{Op: pipeline.OpInsert, After: []any{int64(3), int32(3), "n", "SAVE10"}}
	out := process(t, op, batchOf(s2, rec))
	out2 := out[0].Schema
	if out2 == out1 || out2.Version != 2 {
		t.Fatalf("new input schema: output %p (version %d), old %p", out2, out2.Version, out1)
	}
	if want := []string{"id", "channel_id", "note", "coupon", "channel_name"}; !reflect.DeepEqual(columnNames(out2), want) {
		t.Fatalf("columns %v, want %v", columnNames(out2), want)
	}
	if !reflect.DeepEqual(out[0].Records[0].After, []any{int64(3), int32(3), "n", "SAVE10", "ch-3"}) {
		t.Fatalf("after the schema change: %v", out[0].Records[0].After)
	}
	if again := process(t, op, batchOf(s2, rec))[0].Schema; again != out2 {
		t.Fatalf("the output schema changed for the same (new) input schema")
	}
	// A table the glob matches too.
	items := &pipeline.Schema{Table: pipeline.TableID{Namespace: "shop", Name: "items"},
		Columns: []pipeline.Column{{Name: "sku", Type: pipeline.TypeString}, {Name: "channel_id", Type: pipeline.TypeInt64}}}
	out = process(t, op, batchOf(items, pipeline.Record{Op: pipeline.OpRead, After: []any{"a", int64(4)}}))
	if !reflect.DeepEqual(out[0].Records[0].After, []any{"a", int64(4), "ch-4"}) {
		t.Fatalf("shop.items: %v", out[0].Records[0].After)
	}
}

func TestKeyTypesAndChainedRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 5)
		be.exec(t, "CREATE TABLE regions (code VARCHAR(10) PRIMARY KEY, label VARCHAR(50))")
		be.exec(t, "INSERT INTO regions VALUES ('r1', 'North'), ('r2', 'South'), ('7', 'Seven')")
		dims := map[string]Dimension{
			"channels": be.dim("channels", "id"),
			"regions":  be.dim("regions", "code"),
		}
		rules := []Rule{
			// int32 and string record values against a BIGINT key.
			{Match: "shop.orders", Dim: "channels", On: "channel_id", Add: map[string]string{"ch_region": "region"}},
			{Match: "shop.orders", Dim: "channels", On: "note", Add: map[string]string{"note_channel": "name"}},
			// Chained: a column the first rule added, against a VARCHAR key.
			{Match: "shop.orders", Dim: "regions", On: "ch_region", Add: map[string]string{"region_label": "label"}},
			// An int64 record value against a VARCHAR key.
			{Match: "shop.orders", Dim: "regions", On: "id", Add: map[string]string{"id_label": "label"}},
		}
		op := open(t, dims, rules)
		in := ordersSchema()
		recs := []pipeline.Record{
			{Op: pipeline.OpInsert, After: []any{int64(7), int32(1), "2"}},
			{Op: pipeline.OpInsert, After: []any{int64(8), int32(2), "x"}},
			{Op: pipeline.OpInsert, After: []any{int64(9), int32(3), "+4"}},
		}
		out := process(t, op, batchOf(in, recs...))
		if want := []string{"id", "channel_id", "note", "ch_region", "note_channel", "region_label", "id_label"}; !reflect.DeepEqual(columnNames(out[0].Schema), want) {
			t.Fatalf("columns %v, want %v", columnNames(out[0].Schema), want)
		}
		want := [][]any{
			{int64(7), int32(1), "2", "r1", "ch-2", "North", "Seven"},
			{int64(8), int32(2), "x", "r2", nil, "South", nil},
			{int64(9), int32(3), "+4", "r0", "ch-4", nil, nil},
		}
		for i, r := range out[0].Records {
			if !reflect.DeepEqual(r.After, want[i]) {
				t.Errorf("record %d: %v, want %v", i, r.After, want[i])
			}
		}
	})
}

func TestLookupErrorIsFatal(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		be.channels(t, 5)
		op := open(t, map[string]Dimension{"channels": be.dim("channels", "id")}, []Rule{channelRule(MissingDeadLetter)})
		be.exec(t, "DROP TABLE channels")
		out, err := tryProcess(op, batchOf(ordersSchema(), ins(1, int32(1))))
		if err == nil {
			t.Fatal("a lookup on a dropped table succeeded")
		}
		if !strings.Contains(err.Error(), "dimension channels") {
			t.Errorf("error %q does not name the dimension", err)
		}
		if len(out) != 0 || op.Stats().DeadLettered != 0 {
			t.Errorf("a failed lookup emitted %d batches, %d dead letters", len(out), op.Stats().DeadLettered)
		}
		// Cancelled: the context's error comes through.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err = op.Process(ctx, batchOf(ordersSchema(), ins(2, int32(2))), func(*pipeline.Batch) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled lookup: %v, want context.Canceled", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 1)
	ctx := context.Background()

	bad := be.dim("channels", "id")
	bad.JDBC.DSN = "sluice:x@tcp(127.0.0.1:1)/nope"
	op, err := New(map[string]Dimension{"channels": bad}, []Rule{channelRule("")})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(ctx, nil); err == nil || !strings.Contains(err.Error(), "dimension channels") || !strings.Contains(err.Error(), "connect") {
		t.Errorf("unreachable server: %v", err)
	}

	cols := be.dim("channels", "id", "name", "no_such_column")
	op, err = New(map[string]Dimension{"channels": cols}, []Rule{channelRule("")})
	if err == nil {
		t.Fatal("New accepted a rule adding a column missing from dimensions.channels.columns")
	}
	op, err = New(map[string]Dimension{"channels": cols},
		[]Rule{{Match: "shop.orders", Dim: "channels", On: "channel_id", Add: map[string]string{"x": "no_such_column"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(ctx, nil); err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Errorf("unknown column: %v", err)
	}

	// A date key is not supported.
	be.exec(t, "CREATE TABLE days (d DATE PRIMARY KEY, label VARCHAR(10))")
	op, err = New(map[string]Dimension{"days": be.dim("days", "d")},
		[]Rule{{Match: "shop.orders", Dim: "days", On: "note", Add: map[string]string{"day": "label"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(ctx, nil); err == nil || !strings.Contains(err.Error(), "key column d") {
		t.Errorf("date key: %v", err)
	}
}

func TestPlanErrors(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 1)
	dims := map[string]Dimension{"channels": be.dim("channels", "id")}
	cases := []struct {
		rule Rule
		want string
	}{
		{Rule{Match: "shop.orders", Dim: "channels", On: "nope", Add: map[string]string{"x": "name"}},
			`enrich[0].on: table shop.orders (schema version 1) has no column "nope"`},
		{Rule{Match: "shop.orders", Dim: "channels", On: "channel_id", Add: map[string]string{"note": "name"}},
			`enrich[0].add.note: table shop.orders already has a column "note"`},
	}
	for _, c := range cases {
		op := open(t, dims, []Rule{c.rule})
		if _, err := tryProcess(op, batchOf(ordersSchema(), ins(1, int32(1)))); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
	flag := &pipeline.Schema{Table: ordersID, Columns: []pipeline.Column{{Name: "channel_id", Type: pipeline.TypeBool}}}
	op := open(t, dims, []Rule{channelRule("")})
	if _, err := tryProcess(op, batchOf(flag, pipeline.Record{Op: pipeline.OpInsert, After: []any{true}})); err == nil || !strings.Contains(err.Error(), "cannot hold keys") {
		t.Errorf("bool key column: %v", err)
	}
}

func TestReopen(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 3)
	op := open(t, map[string]Dimension{"channels": be.dim("channels", "id")}, []Rule{channelRule("")})
	b := batchOf(ordersSchema(), ins(1, int32(1)))
	process(t, op, b)
	if st, err := op.Snapshot(context.Background(), 1); st != nil || err != nil {
		t.Fatalf("Snapshot: %v, %v; want no state", st, err)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryProcess(op, b); err == nil {
		t.Fatal("Process after Close succeeded")
	}
	if err := op.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	out := process(t, op, b)
	if out[0].Records[0].After[3] != "ch-1" || op.Stats().Queries != 2 {
		t.Fatalf("after reopening: %v, %d queries (the cache starts empty)", out[0].Records[0].After, op.Stats().Queries)
	}
}

// TestCacheBoundKeepsHotKeys checks the LRU bound with lazy promotion: a
// key hit in every batch survives while new keys push others out.
func TestCacheBoundKeepsHotKeys(t *testing.T) {
	be := mariaBackend(t)
	be.channels(t, 20)
	dim := be.dim("channels", "id")
	dim.Cache.Size = 4
	op := open(t, map[string]Dimension{"channels": dim}, []Rule{channelRule("")})
	in := ordersSchema()
	process(t, op, batchOf(in, ins(1, int32(1)), ins(2, int32(2)), ins(3, int32(3)), ins(4, int32(4))))
	for k := int32(5); k <= 12; k++ {
		out := process(t, op, batchOf(in, ins(int64(k), int32(1)), ins(int64(k), k)))
		if out[0].Records[0].After[3] != "ch-1" {
			t.Fatalf("hot key: %v", out[0].Records[0].After)
		}
	}
	st := op.Stats()
	if st.KeysFetched != 12 || st.Queries != 9 || st.CacheEntries != 4 {
		t.Fatalf("stats %+v: want the hot key fetched once (12 keys in 9 queries), 4 cached", st)
	}
	// A key pushed out is fetched again.
	process(t, op, batchOf(in, ins(99, int32(2))))
	if st := op.Stats(); st.KeysFetched != 13 {
		t.Fatalf("an evicted key was not fetched again: %+v", st)
	}
}
