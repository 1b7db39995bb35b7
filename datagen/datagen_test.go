package datagen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// allTypes is a two-table config that exercises every column type,
// nullability, a composite key, padding and weights.
func allTypes() Config {
	return Config{
		Seed:      42,
		BatchSize: 37,
		Tables: []TableConfig{
			{
				Name: "t.every", Keys: 300, Weight: 2, RowSize: 64,
				Mix: MixConfig{Update: 0.5, Delete: 0.3},
				Key: []string{"tenant", "id"},
				Columns: []ColumnConfig{
					{Name: "tenant", Type: "int"},
					{Name: "id", Type: "string"},
					{Name: "b", Type: "bool", Nullable: true},
					{Name: "i", Type: "int", Nullable: true},
					{Name: "l", Type: "long"},
					{Name: "f", Type: "float"},
					{Name: "d", Type: "double", Nullable: true},
					{Name: "dec", Type: "decimal(9,3)"},
					{Name: "dec2", Type: "decimal"},
					{Name: "s", Type: "string", Nullable: true},
					{Name: "bin", Type: "binary", Nullable: true},
					{Name: "dt", Type: "date"},
					{Name: "tm", Type: "time"},
					{Name: "ts", Type: "timestamp"},
					{Name: "tstz", Type: "timestamptz", Nullable: true},
				},
			},
			{Name: "demo.orders", Preset: "orders", Keys: 200},
			{Name: "x.bin", Keys: 50, Weight: 0.5, Key: []string{"k"}, Columns: []ColumnConfig{
				{Name: "k", Type: "binary"}, {Name: "v", Type: "long"},
			}},
		},
	}
}

type change struct {
	table string
	rec   pipeline.Record
}

// drain reads a source until ErrEndOfInput or max changes.
func drain(t *testing.T, s *Source, max int) []change {
	t.Helper()
	var out []change
	for len(out) < max {
		b, err := s.Read(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			continue
		}
		if len(b.Records) == 0 || b.Bytes <= 0 {
			t.Fatalf("batch with %d records and %d bytes", len(b.Records), b.Bytes)
		}
		for _, r := range b.Records {
			out = append(out, change{b.Schema.Table.String(), r})
		}
	}
	return out
}

func replay(t *testing.T, c Config, n int64) []change {
	t.Helper()
	var out []change
	if err := c.Replay(n, func(s *pipeline.Schema, r pipeline.Record) {
		out = append(out, change{s.Table.String(), r})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, c Config, opts pipeline.OpenOptions) *Source {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	return s
}

func sameChanges(t *testing.T, got, want []change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d changes, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("change %d differs:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestDeterministicAndReplayEqualsRead(t *testing.T) {
	c := allTypes()
	c.Total = 3000
	a := drain(t, open(t, c, pipeline.OpenOptions{}), math.MaxInt)
	b := drain(t, open(t, c, pipeline.OpenOptions{}), math.MaxInt)
	sameChanges(t, a, b)
	sameChanges(t, replay(t, c, c.Total), a)
	// Replay is capped at Total, as the source is.
	sameChanges(t, replay(t, c, c.Total+500), a)
	// A prefix is a prefix.
	sameChanges(t, replay(t, c, 1234), a[:1234])
	for i, ch := range a {
		if want := fmt.Sprintf("seq=%d", i); ch.rec.Position != want {
			t.Fatalf("change %d has position %q", i, ch.rec.Position)
		}
		if want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond); !ch.rec.EventTime.Equal(want) || ch.rec.EventTime.Location() != time.UTC {
			t.Fatalf("change %d has event time %v", i, ch.rec.EventTime)
		}
	}

	// The batch size does not change the stream.
	c2 := c
	c2.BatchSize = 1000
	sameChanges(t, drain(t, open(t, c2, pipeline.OpenOptions{}), math.MaxInt), a)

	// Another seed gives other data.
	c3 := c
	c3.Seed = 43
	if reflect.DeepEqual(drain(t, open(t, c3, pipeline.OpenOptions{}), 100), a[:100]) {
		t.Fatal("seeds 42 and 43 gave the same changes")
	}
}

func TestBatchesHoldOneTableAndSchemasAreStable(t *testing.T) {
	c := allTypes()
	c.Total = 2000
	s := open(t, c, pipeline.OpenOptions{})
	want, err := c.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	ptrs := map[string]*pipeline.Schema{}
	tables := map[string]int{}
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Records) > c.BatchSize {
			t.Fatalf("batch of %d records, batch_size %d", len(b.Records), c.BatchSize)
		}
		name := b.Schema.Table.String()
		if p, ok := ptrs[name]; ok && p != b.Schema {
			t.Fatalf("table %s got a new *Schema", name)
		}
		ptrs[name] = b.Schema
		tables[name] += len(b.Records)
		for _, r := range b.Records {
			if n := len(r.Row()); n != len(b.Schema.Columns) {
				t.Fatalf("row of %d values for %d columns", n, len(b.Schema.Columns))
			}
		}
	}
	for i, w := range want {
		got := ptrs[w.Table.String()]
		if got == nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("schema %d: got %+v, want %+v", i, got, w)
		}
		if w.Version != 1 {
			t.Fatalf("schema version %d", w.Version)
		}
		for _, k := range w.Key {
			if w.Columns[k].Nullable {
				t.Fatalf("key column %s is nullable", w.Columns[k].Name)
			}
		}
	}
	// Weights 2 : 1 : 0.5 over 2000 changes.
	if n := tables["t.every"]; n < 1000 || n > 1300 {
		t.Fatalf("t.every got %d of 2000 changes, want about 1143", n)
	}
	if n := tables["x.bin"]; n < 180 || n > 400 {
		t.Fatalf("x.bin got %d of 2000 changes, want about 286", n)
	}
	if got := want[0].Key; !reflect.DeepEqual(got, []int{0, 1}) {
		t.Fatalf("composite key indexes %v", got)
	}
}

func TestRestartContinuesExactly(t *testing.T) {
	c := allTypes()
	c.Total = 2500
	full := replay(t, c, c.Total)
	for _, reads := range []int{0, 1, 5, 17} {
		t.Run(fmt.Sprint(reads), func(t *testing.T) {
			s := open(t, c, pipeline.OpenOptions{})
			var got []change
			for range reads {
				got = append(got, drain(t, s, 1)...)
			}
			// drain stops after the first batch that reaches max, so
			// got holds whole batches: Snapshot is after them.
			pos, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if next := stateNext(t, pos.State); next != int64(len(got)) {
				t.Fatalf("state %s, want next %d", pos.State, len(got))
			}
			if want := fmt.Sprintf("seq=%d", len(got)); pos.Summary != want {
				t.Fatalf("summary %s, want %s", pos.Summary, want)
			}
			// A restart may use another batch size.
			c2 := c
			c2.BatchSize = 11
			r := open(t, c2, pipeline.OpenOptions{State: pos.State})
			if done, total := r.Progress(); done != int64(len(got)) || total != c.Total {
				t.Fatalf("progress after restore %d/%d", done, total)
			}
			got = append(got, drain(t, r, math.MaxInt)...)
			sameChanges(t, got, full)
		})
	}
	// Reopening a used source restores as well.
	s := open(t, c, pipeline.OpenOptions{})
	drain(t, s, 300)
	if err := s.Open(context.Background(), pipeline.OpenOptions{State: []byte(`{"next":100}`)}); err != nil {
		t.Fatal(err)
	}
	sameChanges(t, drain(t, s, math.MaxInt), full[100:])
}

// TestOpSemantics checks the invariants the exactly-once tests build on,
// and that every value has its column's Go type.
func TestOpSemantics(t *testing.T) {
	c := allTypes()
	const n = 20000
	type rowKey struct{ table, key string }
	state := map[rowKey][]any{}
	ops := map[pipeline.Op]int{}
	nulls := map[string]int{}
	schemas := map[string]*pipeline.Schema{}
	err := c.Replay(n, func(s *pipeline.Schema, r pipeline.Record) {
		schemas[s.Table.String()] = s
		ops[r.Op]++
		row := r.Row()
		checkTypes(t, s, row, r.Op == pipeline.OpDelete, nulls)
		var kb strings.Builder
		for _, k := range s.Key {
			fmt.Fprintf(&kb, "%v|", row[k])
		}
		rk := rowKey{s.Table.String(), kb.String()}
		prev, exists := state[rk]
		switch r.Op {
		case pipeline.OpInsert:
			if exists || r.Before != nil || r.After == nil {
				t.Fatalf("%s: insert of present key %v or with a before image", r.Position, rk)
			}
			state[rk] = r.After
		case pipeline.OpUpdate, pipeline.OpDelete:
			if !exists {
				t.Fatalf("%s: %s of absent key %v", r.Position, r.Op, rk)
			}
			if !reflect.DeepEqual(r.Before, prev) {
				t.Fatalf("%s: before image %v, previous after image %v", r.Position, r.Before, prev)
			}
			if r.Op == pipeline.OpDelete {
				if r.After != nil {
					t.Fatalf("%s: delete with an after image", r.Position)
				}
				delete(state, rk)
			} else {
				if r.After == nil {
					t.Fatalf("%s: update without an after image", r.Position)
				}
				if reflect.DeepEqual(r.After, r.Before) {
					t.Fatalf("%s: update does not change the row", r.Position)
				}
				state[rk] = r.After
			}
		default:
			t.Fatalf("%s: op %s", r.Position, r.Op)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ops %v, nulls %v", ops, nulls)
	if ops[pipeline.OpInsert] == 0 || ops[pipeline.OpUpdate] == 0 || ops[pipeline.OpDelete] == 0 {
		t.Fatalf("ops %v", ops)
	}
	for _, col := range []string{"t.every.b", "t.every.s", "t.every.bin", "demo.orders.note"} {
		if nulls[col] == 0 {
			t.Fatalf("nullable column %s never null", col)
		}
	}
	// Present keys cannot exceed the key space.
	per := map[string]int{}
	for k := range state {
		per[k.table]++
	}
	if per["t.every"] > 300 || per["demo.orders"] > 200 || per["x.bin"] > 50 {
		t.Fatalf("present keys %v", per)
	}
}

// TestMixRatios checks that existing keys are updated and deleted in the
// configured proportion, with Insert counting as update.
func TestMixRatios(t *testing.T) {
	for _, tc := range []struct {
		mix  MixConfig
		pDel float64
	}{
		{MixConfig{}, 0.125}, // defaults 0.7 / 0.1
		{MixConfig{Update: 1}, 0},
		{MixConfig{Delete: 1}, 1},
		{MixConfig{Insert: 0.5, Update: 0.25, Delete: 0.25}, 0.25},
	} {
		c := Config{Tables: []TableConfig{{Name: "a.b", Preset: "bench10", Keys: 1000, Mix: tc.mix}}}
		ops := map[pipeline.Op]int{}
		if err := c.Replay(40000, func(_ *pipeline.Schema, r pipeline.Record) { ops[r.Op]++ }); err != nil {
			t.Fatal(err)
		}
		onExisting := ops[pipeline.OpUpdate] + ops[pipeline.OpDelete]
		got := float64(ops[pipeline.OpDelete]) / float64(onExisting)
		if math.Abs(got-tc.pDel) > 0.02 {
			t.Errorf("mix %+v: delete share of changes to present keys %.3f, want %.3f (%v)", tc.mix, got, tc.pDel, ops)
		}
	}
}

func checkTypes(t *testing.T, s *pipeline.Schema, row []any, deleted bool, nulls map[string]int) {
	t.Helper()
	for i, col := range s.Columns {
		v := row[i]
		if v == nil {
			if !col.Nullable {
				t.Fatalf("%s.%s: null in a non-nullable column", s.Table, col.Name)
			}
			if !deleted {
				nulls[s.Table.String()+"."+col.Name]++
			}
			continue
		}
		ok := false
		switch col.Type {
		case pipeline.TypeBool:
			_, ok = v.(bool)
		case pipeline.TypeInt32:
			_, ok = v.(int32)
		case pipeline.TypeInt64:
			_, ok = v.(int64)
		case pipeline.TypeFloat32:
			var f float32
			f, ok = v.(float32)
			ok = ok && !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
		case pipeline.TypeFloat64:
			var f float64
			f, ok = v.(float64)
			ok = ok && !math.IsNaN(f) && !math.IsInf(f, 0)
		case pipeline.TypeDecimal:
			var d pipeline.Decimal
			d, ok = v.(pipeline.Decimal)
			lim := int64(math.Pow10(col.Precision))
			ok = ok && int(d.Scale) == col.Scale && d.Unscaled > -lim && d.Unscaled < lim
		case pipeline.TypeString:
			_, ok = v.(string)
		case pipeline.TypeBinary:
			_, ok = v.([]byte)
		case pipeline.TypeDate:
			var d time.Time
			d, ok = v.(time.Time)
			ok = ok && d.Location() == time.UTC && d.Equal(d.Truncate(24*time.Hour))
		case pipeline.TypeTime:
			var d time.Duration
			d, ok = v.(time.Duration)
			ok = ok && d >= 0 && d < 24*time.Hour && d%time.Microsecond == 0
		case pipeline.TypeTimestamp, pipeline.TypeTimestampTZ:
			var ts time.Time
			ts, ok = v.(time.Time)
			ok = ok && ts.Location() == time.UTC && ts.Nanosecond()%1000 == 0
		}
		if !ok {
			t.Fatalf("%s.%s (%s, precision %d scale %d): bad value %#v", s.Table, col.Name, col.Type, col.Precision, col.Scale, v)
		}
	}
}

func TestKeyColumnsAndPadding(t *testing.T) {
	c := allTypes()
	seen := 0
	if err := c.Replay(500, func(s *pipeline.Schema, r pipeline.Record) {
		row := r.Row()
		switch s.Table.String() {
		case "t.every":
			id := row[1].(string)
			var k int
			if _, err := fmt.Sscanf(id, "k%08d", &k); err != nil || len(id) != 9 {
				t.Fatalf("string key %q", id)
			}
			if row[0].(int32) != int32(k%100) {
				t.Fatalf("tenant %v for key %d", row[0], k)
			}
			if sv, ok := row[9].(string); ok && len(sv) != 64 {
				t.Fatalf("padded column has %d bytes: %q", len(sv), sv)
			}
			seen++
		case "demo.orders":
			if k := row[0].(int64); k < 0 || k >= 200 {
				t.Fatalf("orders id %d outside the key space", k)
			}
			if !row[9].(time.Time).Equal(r.EventTime) && r.Op != pipeline.OpDelete {
				t.Fatalf("updated_at %v, event time %v", row[9], r.EventTime)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("no t.every changes")
	}
}

func TestTotalAndEndOfInput(t *testing.T) {
	c := Config{Total: 2500, BatchSize: 1000}
	s := open(t, c, pipeline.OpenOptions{})
	var sizes []int
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(b.Records))
	}
	if !reflect.DeepEqual(sizes, []int{1000, 1000, 500}) {
		t.Fatalf("batch sizes %v", sizes)
	}
	if _, err := s.Read(context.Background()); !errors.Is(err, pipeline.ErrEndOfInput) {
		t.Fatalf("read after the end: %v", err)
	}
	if done, total := s.Progress(); done != 2500 || total != 2500 {
		t.Fatalf("progress %d/%d", done, total)
	}
	pos, _ := s.Snapshot()
	if stateNext(t, pos.State) != 2500 {
		t.Fatalf("final state %s", pos.State)
	}
	// Restoring at the end ends at once.
	r := open(t, c, pipeline.OpenOptions{State: pos.State})
	if _, err := r.Read(context.Background()); !errors.Is(err, pipeline.ErrEndOfInput) {
		t.Fatalf("read after restoring the end: %v", err)
	}
}

func TestUnboundedAndAvailableNow(t *testing.T) {
	// Unbounded: keeps going.
	s := open(t, Config{BatchSize: 100}, pipeline.OpenOptions{})
	if got := drain(t, s, 10000); len(got) != 10000 {
		t.Fatalf("unbounded source gave %d changes", len(got))
	}
	if done, total := s.Progress(); done != 10000 || total != 0 {
		t.Fatalf("progress %d/%d", done, total)
	}
	pos, _ := s.Snapshot()

	// AvailableNow without Total: nothing new, from scratch or restored.
	for _, st := range [][]byte{nil, pos.State} {
		a := open(t, Config{}, pipeline.OpenOptions{AvailableNow: true, State: st})
		if b, err := a.Read(context.Background()); !errors.Is(err, pipeline.ErrEndOfInput) {
			t.Fatalf("available-now without total: %v, %v", b, err)
		}
		p, _ := a.Snapshot()
		if want := string(pos.State); st != nil && string(p.State) != want {
			t.Fatalf("available-now moved the position to %s", p.State)
		}
	}

	// AvailableNow with Total reads up to Total.
	c := Config{Total: 777}
	a := open(t, c, pipeline.OpenOptions{AvailableNow: true})
	if got := drain(t, a, math.MaxInt); len(got) != 777 {
		t.Fatalf("available-now with total gave %d changes", len(got))
	}
}

func TestRate(t *testing.T) {
	c := Config{Rate: 200, Total: 100}
	s := open(t, c, pipeline.OpenOptions{})
	start := time.Now()
	got := 0
	for {
		t0 := time.Now()
		b, err := s.Read(context.Background())
		if d := time.Since(t0); d > 900*time.Millisecond {
			t.Fatalf("Read blocked %v", d)
		}
		if errors.Is(err, pipeline.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			if len(b.Records) > 20 {
				t.Fatalf("throttled batch of %d records", len(b.Records))
			}
			got += len(b.Records)
		}
	}
	// 20 come from the initial burst, 80 at 200/s.
	if el := time.Since(start); got != 100 || el < 300*time.Millisecond || el > 2*time.Second {
		t.Fatalf("%d changes in %v at 200/s", got, el)
	}
	// A rate limit does not change the data.
	c.Rate = 0
	sameChanges(t, drain(t, open(t, Config{Rate: 1000, Total: 300}, pipeline.OpenOptions{}), math.MaxInt),
		replay(t, Config{Total: 300}, 300))
}

func TestSlowRateReturnsEmptyReads(t *testing.T) {
	s := open(t, Config{Rate: 1}, pipeline.OpenOptions{})
	ctx := context.Background()
	var empty, full int
	start := time.Now()
	for full < 2 {
		t0 := time.Now()
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > 900*time.Millisecond {
			t.Fatalf("Read blocked %v", d)
		}
		if b == nil {
			empty++
		} else {
			full++
		}
	}
	if empty == 0 || time.Since(start) < 800*time.Millisecond {
		t.Fatalf("1 change/s: %d empty reads, %v for two changes", empty, time.Since(start))
	}

	// A cancelled context ends a throttled wait.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	for {
		_, err := s.Read(cctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			break
		}
	}
}

func TestRestoreIsFast(t *testing.T) {
	c := Config{Tables: []TableConfig{
		{Name: "a.a", Preset: "bench10", Keys: 1_000_000},
		{Name: "a.b", Preset: "orders"},
	}}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Open(context.Background(), pipeline.OpenOptions{State: []byte(`{"next":1000000}`)}); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("restore of 1M changes took %v", el)
	if el > 5*time.Second { // generous: the race detector slows it ~10x
		t.Fatalf("restore of 1M changes took %v", el)
	}
	// Restoring a little earlier and generating the gap must agree; the
	// restart test checks skipping against generation from zero.
	got := drain(t, s, 50)
	early := open(t, c, pipeline.OpenOptions{State: []byte(`{"next":999000}`)})
	want := drain(t, early, 1050)[1000:]
	sameChanges(t, got[:50], want[:50])
}

func TestHugeKeySpaceHasKeyOnlyBeforeImages(t *testing.T) {
	c := Config{Tables: []TableConfig{{Name: "a.b", Preset: "bench10", Keys: maxTrackedKeys + 1_000_000, Mix: MixConfig{Update: 1}}}}
	updates := 0
	if err := c.Replay(200_000, func(s *pipeline.Schema, r pipeline.Record) {
		if r.Op != pipeline.OpUpdate {
			return
		}
		updates++
		if r.Before[0] != r.After[0] {
			t.Fatalf("before key %v, after key %v", r.Before[0], r.After[0])
		}
		for i := 1; i < len(r.Before); i++ {
			if r.Before[i] != nil {
				t.Fatalf("untracked before image has %s = %v", s.Columns[i].Name, r.Before[i])
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if updates == 0 {
		t.Fatal("no updates in 200000 changes over 51M keys")
	}
}

func TestProgressIsRaceFree(t *testing.T) {
	s := open(t, Config{Total: 20000, BatchSize: 100}, pipeline.OpenOptions{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if done, total := s.Progress(); done < 0 || done > total {
					panic(fmt.Sprint(done, total))
				}
			}
		}
	})
	drain(t, s, math.MaxInt)
	close(stop)
	wg.Wait()
	if err := s.Ack(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	if c.Seed != 1 || c.BatchSize != 1024 || len(c.Tables) != 1 {
		t.Fatalf("defaults %+v", c)
	}
	tc := c.Tables[0]
	if tc.Name != "demo.orders" || tc.Preset != "orders" || tc.Keys != 10000 || tc.Weight != 1 ||
		tc.Mix != (MixConfig{Update: 0.7, Delete: 0.1}) || !reflect.DeepEqual(tc.Key, []string{"id"}) {
		t.Fatalf("table defaults %+v", tc)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "datagen" {
		t.Fatalf("name %q", s.Name())
	}
	sc, err := Config{}.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	if len(sc) != 1 || len(sc[0].Columns) != 10 || sc[0].Table != (pipeline.TableID{Namespace: "demo", Name: "orders"}) {
		t.Fatalf("default schema %+v", sc)
	}
	// Replay, Schemas and New leave the caller's config alone.
	orig := Config{Tables: []TableConfig{{Name: "a.b", Preset: "bench10"}}}
	_ = orig.Replay(10, func(*pipeline.Schema, pipeline.Record) {})
	_, _ = orig.Schemas()
	_, _ = New(orig)
	if orig.Tables[0].Keys != 0 || orig.Tables[0].Key != nil {
		t.Fatalf("caller's config was defaulted: %+v", orig.Tables[0])
	}
}

func TestValidate(t *testing.T) {
	tbl := func(f func(*TableConfig)) Config {
		c := Config{Tables: []TableConfig{{Name: "a.b", Preset: "orders"}}}
		f(&c.Tables[0])
		return c
	}
	cols := func(cc ...ColumnConfig) func(*TableConfig) {
		return func(t *TableConfig) { t.Preset, t.Columns, t.Key = "", cc, []string{"id"} }
	}
	id := ColumnConfig{Name: "id", Type: "long"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"rate", Config{Rate: -1}, "source.datagen.rate must be a non-negative number"},
		{"rate nan", Config{Rate: math.NaN()}, "source.datagen.rate"},
		{"total", Config{Total: -1}, "source.datagen.total must not be negative"},
		{"batch", Config{BatchSize: -5}, "source.datagen.batch_size must be positive"},
		{"batch max", Config{BatchSize: 1 << 30}, "source.datagen.batch_size must be at most"},
		{"keys", tbl(func(t *TableConfig) { t.Keys = -1 }), "source.datagen.tables[0].keys must be positive"},
		{"keys max", tbl(func(t *TableConfig) { t.Keys = 1 << 40 }), "source.datagen.tables[0].keys must be at most"},
		{"weight", tbl(func(t *TableConfig) { t.Weight = -1 }), "source.datagen.tables[0].weight must be a positive number"},
		{"row size", tbl(func(t *TableConfig) { t.RowSize = -1 }), "source.datagen.tables[0].row_size"},
		{"mix", tbl(func(t *TableConfig) { t.Mix.Delete = -0.1 }), "source.datagen.tables[0].mix.delete must be a non-negative number"},
		{"name", tbl(func(t *TableConfig) { t.Name = "orders" }), `source.datagen.tables[0].name must be "namespace.table", got "orders"`},
		{"name dot", tbl(func(t *TableConfig) { t.Name = "a." }), "source.datagen.tables[0].name"},
		{"preset", tbl(func(t *TableConfig) { t.Preset = "nope" }), `source.datagen.tables[0].preset must be "orders" or "bench10", got "nope"`},
		{"preset and columns", tbl(func(t *TableConfig) { t.Columns = []ColumnConfig{id} }), "source.datagen.tables[0]: preset and columns are mutually exclusive"},
		{"no columns", tbl(func(t *TableConfig) { t.Preset = "" }), "source.datagen.tables[0] needs a preset or columns"},
		{"preset key", tbl(func(t *TableConfig) { t.Key = []string{"nope"} }), `source.datagen.tables[0].key[0]: no column named "nope"`},
		{"col type", tbl(cols(id, ColumnConfig{Name: "x", Type: "varchar"})), `source.datagen.tables[0].columns[1].type: unknown type "varchar"`},
		{"col name", tbl(cols(id, ColumnConfig{Type: "long"})), "source.datagen.tables[0].columns[1].name must not be empty"},
		{"col dup", tbl(cols(id, id)), `source.datagen.tables[0].columns[1].name "id" is used twice`},
		{"decimal precision", tbl(cols(id, ColumnConfig{Name: "d", Type: "decimal", Precision: 30})), "source.datagen.tables[0].columns[1].type: decimal precision must be between 1 and 18"},
		{"decimal scale", tbl(cols(id, ColumnConfig{Name: "d", Type: "decimal(5,7)"})), "decimal scale must be between 0 and the precision 5"},
		{"decimal syntax", tbl(cols(id, ColumnConfig{Name: "d", Type: "decimal(5)"})), "expected decimal(precision,scale)"},
		{"precision on long", tbl(cols(id, ColumnConfig{Name: "d", Type: "long", Precision: 5})), "precision and scale apply to decimal columns only"},
		{"no key", tbl(func(t *TableConfig) { t.Preset, t.Columns = "", []ColumnConfig{id} }), "source.datagen.tables[0].key must name at least one column"},
		{"nullable key", tbl(cols(ColumnConfig{Name: "id", Type: "long", Nullable: true})), `source.datagen.tables[0].key[0]: key column "id" must not be nullable`},
		{"key type", tbl(cols(ColumnConfig{Name: "id", Type: "double"})), `key column "id" has type double`},
		{"key twice", tbl(func(t *TableConfig) { t.Key = []string{"id", "id"} }), `source.datagen.tables[0].key[1]: column "id" is listed twice`},
		{"int key space", tbl(func(t *TableConfig) {
			cols(ColumnConfig{Name: "id", Type: "int"})(t)
			t.Keys = 1 << 32
		}), `int key column "id" cannot hold`},
		{"decimal key space", tbl(func(t *TableConfig) {
			cols(ColumnConfig{Name: "id", Type: "decimal(3,0)"})(t)
			t.Keys = 5000
		}), `decimal(3,0) key column "id" cannot hold 5000 keys`},
		{"row size without string", tbl(func(t *TableConfig) { cols(id)(t); t.RowSize = 100 }), "source.datagen.tables[0].row_size needs a non-key string column"},
		{"duplicate table", Config{Tables: []TableConfig{{Name: "a.b", Preset: "orders"}, {Name: "a.b", Preset: "bench10"}}}, `source.datagen.tables[1].name "a.b" is already used by source.datagen.tables[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.Defaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := New(tc.cfg); nerr == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestBadState(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err == nil {
		t.Fatal("Read before Open succeeded")
	}
	for _, st := range []string{`nope`, `{}`, `{"next":-1}`} {
		if err := s.Open(context.Background(), pipeline.OpenOptions{State: []byte(st)}); err == nil {
			t.Fatalf("state %s accepted", st)
		}
	}
}

// TestBoxing guards the unsafe boxing in box.go against a change of the
// runtime's interface layout: boxed values must be indistinguishable from
// ordinarily converted ones.
func TestBoxing(t *testing.T) {
	b := newBoxes()
	ts := time.UnixMicro(1_700_000_000_123_456).UTC()
	cases := []struct{ got, want any }{
		{b.i32.box(-7), any(int32(-7))},
		{b.i64.box(1 << 40), any(int64(1 << 40))},
		{b.f32.box(1.5), any(float32(1.5))},
		{b.f64.box(-2.25), any(-2.25)},
		{b.dec.box(pipeline.Decimal{Unscaled: 12345, Scale: 2}), any(pipeline.Decimal{Unscaled: 12345, Scale: 2})},
		{b.str.box("hello"), any("hello")},
		{b.tm.box(ts), any(ts)},
		{b.dur.box(3 * time.Second), any(3 * time.Second)},
	}
	for i := 0; i < 3*boxChunk; i++ { // cross chunk boundaries
		cases = append(cases, struct{ got, want any }{b.i64.box(int64(i)), any(int64(i))})
	}
	for _, c := range cases {
		if c.got != c.want || !reflect.DeepEqual(c.got, c.want) || fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Fatalf("boxed %#v, want %#v", c.got, c.want)
		}
	}
	switch v := cases[6].got.(type) {
	case time.Time:
		if !v.Equal(ts) || v.Location() != time.UTC {
			t.Fatalf("time %v", v)
		}
	default:
		t.Fatalf("type switch saw %T", v)
	}
}

func stateNext(t *testing.T, b []byte) int64 {
	t.Helper()
	var st struct {
		Next int64  `json:"next"`
		Data string `json:"data"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Data == "" {
		t.Fatalf("state %s: %v (want next and data)", b, err)
	}
	return st.Next
}

// A checkpoint taken under one seed or table list must not be restored
// under another: the generated data would silently differ. Rate, batch
// size and total may change.
func TestRestoreRefusesAnotherConfig(t *testing.T) {
	ctx := context.Background()
	base := Config{Seed: 5, Total: 100, Tables: []TableConfig{{Name: "a.b", Preset: "orders", Keys: 50}}}
	s, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, pipeline.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx); err != nil {
		t.Fatal(err)
	}
	pos, _ := s.Snapshot()

	ok := base
	ok.Rate, ok.BatchSize, ok.Total = 10, 7, 1000
	s2, _ := New(ok)
	if err := s2.Open(ctx, pipeline.OpenOptions{State: pos.State}); err != nil {
		t.Fatalf("rate, batch size and total changes must restore: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"seed": func(c *Config) { c.Seed = 6 },
		"keys": func(c *Config) { c.Tables = []TableConfig{{Name: "a.b", Preset: "orders", Keys: 51}} },
		"name": func(c *Config) { c.Tables = []TableConfig{{Name: "a.c", Preset: "orders", Keys: 50}} },
	} {
		c := base
		change(&c)
		s3, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		err = s3.Open(ctx, pipeline.OpenOptions{State: pos.State})
		if err == nil || !strings.Contains(err.Error(), "another seed or other tables") {
			t.Errorf("%s changed: restore error = %v", name, err)
		}
	}
	// States written before the fingerprint existed still restore.
	s4, _ := New(base)
	if err := s4.Open(ctx, pipeline.OpenOptions{State: []byte(`{"next":3}`)}); err != nil {
		t.Errorf("legacy state: %v", err)
	}
}
