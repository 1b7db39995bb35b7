package dedupe

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluice-cdc/sluice/pipeline"
)

func TestConfigValidate(t *testing.T) {
	ok := func() Config { c := Config{Tables: []Rule{{Match: "shop.*"}}}; c.Defaults(); return c }
	cases := []struct {
		name string
		edit func(*Config)
		want string // prefix of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"ttl negative", func(c *Config) { c.Tables[0].TTL = -time.Second }, "tables[0].ttl: must be positive"},
		{"ttl tiny", func(c *Config) { c.Tables[0].TTL = time.Microsecond }, "tables[0].ttl: must be at least 1ms"},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir: "},
		{"small cache", func(c *Config) { c.CacheSize = 1000 }, "cache_size: "},
		{"no rules", func(c *Config) { c.Tables = nil }, "tables: "},
		{"empty match", func(c *Config) { c.Tables = append(c.Tables, Rule{}) }, "tables[1].match: must not be empty"},
		{"bad glob", func(c *Config) { c.Tables[0].Match = "shop.[" }, "tables[0].match: "},
		{"empty key", func(c *Config) { c.Tables[0].Key = []string{"id", ""} }, "tables[0].key[1]: "},
		{"dup key", func(c *Config) { c.Tables[0].Key = []string{"id", "id"} }, "tables[0].key[1]: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
	var c Config
	c.Defaults()
	if c.Dir != DefaultDir || c.CacheSize != DefaultCacheSize {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := New(Config{}, nil); err == nil || !strings.Contains(err.Error(), "tables:") {
		t.Fatalf("New with no rules: %v", err)
	}
}

func TestPassThrough(t *testing.T) {
	o := newOp(t, memCfg(Rule{Match: "shop.orders"}), vfs.NewMem(), nil)
	defer o.Close()
	other := ordersSchema()
	other.Table = pipeline.TableID{Namespace: "shop", Name: "customers"}
	for _, s := range []*pipeline.Schema{other, pipeline.DeadLetterSchema} {
		in := &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(1, 1, "a"), ins(1, 1, "a")}, Bytes: 10}
		var got *pipeline.Batch
		if err := o.Process(context.Background(), in, func(b *pipeline.Batch) error { got = b; return nil }); err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("%s: batch not passed through untouched", s.Table)
		}
	}
	// A dead-letter batch passes even when a rule matches everything.
	o2 := newOp(t, memCfg(Rule{Match: "*"}), vfs.NewMem(), nil)
	defer o2.Close()
	dl := pipeline.DeadLetter(ordersSchema(), &pipeline.Record{Op: pipeline.OpInsert}, "clean", "bad", "")
	out := run(t, o2, pipeline.DeadLetterSchema, dl, dl)
	if len(out) != 2 {
		t.Fatalf("dead letters dropped: %d", len(out))
	}
	if s := o2.Stats(); s.PassThrough != 2 || s.Records != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNotOpen(t *testing.T) {
	o, err := New(memCfg(defaultRules()...), nil, withFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tryRun(o, ordersSchema(), ins(1, 1, "a")); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("Process before Open: %v", err)
	}
	if _, err := o.Snapshot(context.Background(), 1); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("Snapshot before Open: %v", err)
	}
	if o.Name() != "dedupe" {
		t.Fatal(o.Name())
	}
}

func TestNoKey(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	s.Key = nil
	_, err := tryRun(o, s, ins(1, 1, "a"))
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "shop.orders") {
		t.Fatalf("want ErrNoKey naming the table, got %v", err)
	}
	o2 := newOp(t, memCfg(Rule{Match: "shop.*", Key: []string{"nope"}}), vfs.NewMem(), nil)
	defer o2.Close()
	if _, err := tryRun(o2, ordersSchema(), ins(1, 1, "a")); !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing key column: %v", err)
	}
	o3 := newOp(t, memCfg(Rule{Match: "shop.*", Version: "amount2"}), vfs.NewMem(), nil)
	defer o3.Close()
	if _, err := tryRun(o3, ordersSchema(), ins(1, 1, "a")); !errors.Is(err, ErrColumn) {
		t.Fatalf("missing version column: %v", err)
	}
	bad := ordersSchema()
	bad.Columns = append(bad.Columns, pipeline.Column{Name: "f", Type: pipeline.TypeFloat64})
	o4 := newOp(t, memCfg(Rule{Match: "shop.*", Version: "f"}), vfs.NewMem(), nil)
	defer o4.Close()
	if _, err := tryRun(o4, bad, ins(1, 1, "a")); !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), "double") {
		t.Fatalf("float version column: %v", err)
	}
}

func TestSeqRules(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	steps := []struct {
		rec  pipeline.Record
		pass bool
	}{
		{ins(10, 1, "a"), true},
		{ins(10, 1, "a"), false},      // replay
		{ins(5, 1, "old"), false},     // stale
		{upd(11, 1, "a", "a"), false}, // unchanged
		{upd(12, 1, "a", "b"), true},
		{upd(11, 1, "a", "x"), false}, // stale: 11 < 12
		{upd(12, 1, "a", "b"), false}, // replay
		// Same seq, different image: another change of the same
		// transaction (MariaDB GTIDs), must pass.
		{upd(12, 1, "b", "c"), true},
		{del(20, 1, "c"), true},
		{del(20, 1, "c"), false},    // replay of the delete
		{del(21, 1, "c"), false},    // delete of a deleted row
		{ins(15, 1, "late"), false}, // older than the tombstone
		{ins(22, 1, "again"), true},
	}
	for i, st := range steps {
		out := run(t, o, s, st.rec)
		if (len(out) == 1) != st.pass {
			t.Fatalf("step %d (%s seq=%d): passed=%v, want %v", i, st.rec.Op, st.rec.Seq, len(out) == 1, st.pass)
		}
	}
	got := o.Stats()
	if got.Stale != 3 || got.Replay != 3 || got.Unchanged != 2 || got.Records != uint64(len(steps)) || got.Passed != 5 {
		t.Fatalf("stats %+v", got)
	}
	if got.Dropped() != 8 {
		t.Fatalf("dropped %d", got.Dropped())
	}
}

func TestUnchangedRemembersNewerOrder(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	run(t, o, s, ins(5, 1, "a"))
	if out := run(t, o, s, upd(7, 1, "a", "a")); len(out) != 0 {
		t.Fatal("unchanged update passed")
	}
	// 6 happened before 7, whose image is the current one: 6 is stale.
	if out := run(t, o, s, upd(6, 1, "a", "b")); len(out) != 0 {
		t.Fatal("change older than a dropped-unchanged one passed")
	}
}

func TestUnknownOrderHashOnly(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	pass := func(r pipeline.Record) bool { return len(run(t, o, s, r)) == 1 }
	if !pass(ins(0, 1, "a")) || pass(ins(0, 1, "a")) || pass(upd(0, 1, "a", "a")) {
		t.Fatal("hash rules without order")
	}
	if !pass(upd(0, 1, "a", "b")) || !pass(upd(0, 1, "b", "a")) {
		t.Fatal("a change without order was dropped")
	}
	// Known seq against unknown stored order: still only hashes.
	if !pass(upd(3, 1, "a", "c")) {
		t.Fatal("first sequenced change dropped")
	}
	if !pass(upd(0, 1, "c", "d")) {
		t.Fatal("unsequenced change dropped after a sequenced one")
	}
	// The stored seq (3) survives the unsequenced change.
	if pass(upd(2, 1, "x", "e")) {
		t.Fatal("stale change passed")
	}
	if !pass(del(0, 1, "d")) || pass(del(0, 1, "d")) {
		t.Fatal("delete rules without order")
	}
	// Deleting a key never seen passes: the lake may hold it.
	if !pass(del(0, 2, "zz")) {
		t.Fatal("delete of unknown key dropped")
	}
}

func TestVersionColumn(t *testing.T) {
	type col struct {
		typ  pipeline.Type
		vals []any // increasing
	}
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	cols := map[string]col{
		"int":       {pipeline.TypeInt32, []any{int32(1), int32(2), int32(3)}},
		"long":      {pipeline.TypeInt64, []any{int64(-5), int64(0), int64(7)}},
		"decimal":   {pipeline.TypeDecimal, []any{pipeline.Decimal{Unscaled: 150, Scale: 2}, pipeline.Decimal{Unscaled: 16, Scale: 1}, pipeline.Decimal{Unscaled: 2, Scale: 0}}},
		"timestamp": {pipeline.TypeTimestamp, []any{day(1).Add(time.Nanosecond), day(1).Add(2 * time.Nanosecond), day(2)}},
		"date":      {pipeline.TypeDate, []any{day(1), day(2), day(3)}},
		"string":    {pipeline.TypeString, []any{"2026-01-01", "2026-01-02", "2026-01-10"}},
	}
	for name, c := range cols {
		t.Run(name, func(t *testing.T) {
			s := ordersSchema()
			s.Columns[3].Type = c.typ
			o := newOp(t, memCfg(Rule{Match: "shop.orders", Version: "v"}), vfs.NewMem(), nil)
			defer o.Close()
			mk := func(op pipeline.Op, v any, name string) pipeline.Record {
				r := row(1, name)
				r[3] = v
				if op == pipeline.OpDelete {
					return pipeline.Record{Op: op, Before: r}
				}
				return pipeline.Record{Op: op, After: r}
			}
			pass := func(r pipeline.Record) bool { return len(run(t, o, s, r)) == 1 }
			if !pass(mk(pipeline.OpInsert, c.vals[1], "a")) {
				t.Fatal("first insert dropped")
			}
			if pass(mk(pipeline.OpUpdate, c.vals[0], "old")) {
				t.Fatal("older version passed")
			}
			if pass(mk(pipeline.OpInsert, c.vals[1], "a")) {
				t.Fatal("replay passed")
			}
			// The delete of a row carries that row's version: equal, yet a
			// change.
			if !pass(mk(pipeline.OpDelete, c.vals[1], "a")) {
				t.Fatal("delete of the current version dropped")
			}
			if pass(mk(pipeline.OpInsert, c.vals[0], "late")) {
				t.Fatal("late older insert after delete passed")
			}
			if !pass(mk(pipeline.OpInsert, c.vals[2], "new")) {
				t.Fatal("newer insert after delete dropped")
			}
			// NULL version: order unknown, hash rules only.
			if !pass(mk(pipeline.OpUpdate, nil, "other")) {
				t.Fatal("NULL-version change dropped")
			}
		})
	}
	// Seq wins over the version column when both sides have one.
	s := ordersSchema()
	o := newOp(t, memCfg(Rule{Match: "shop.orders", Version: "v"}), vfs.NewMem(), nil)
	defer o.Close()
	a := ins(10, 1, "a")
	a.After[3] = int64(100)
	b := upd(11, 1, "a", "b")
	b.After[3] = int64(1) // version says older, seq says newer
	if len(run(t, o, s, a)) != 1 || len(run(t, o, s, b)) != 1 {
		t.Fatal("seq did not take precedence over version")
	}
	// Without seq the version decides: 50 < 100? The stored version is now
	// 1 (from b), so 50 is newer.
	c := upd(0, 1, "b", "c")
	c.After[3] = int64(50)
	if len(run(t, o, s, c)) != 1 {
		t.Fatal("version order ignored without seq")
	}
	d := upd(0, 1, "c", "d")
	d.After[3] = int64(49)
	if len(run(t, o, s, d)) != 0 {
		t.Fatal("older version passed without seq")
	}
}

func TestCompareVersionsMixed(t *testing.T) {
	dec := versionOf(pipeline.Decimal{Unscaled: 25, Scale: 1}) // 2.5
	if c, ok := compareVersions(versionOf(int64(2)), dec); !ok || c != -1 {
		t.Fatalf("2 vs 2.5: %d %v", c, ok)
	}
	if c, ok := compareVersions(versionOf(int64(3)), dec); !ok || c != 1 {
		t.Fatalf("3 vs 2.5: %d %v", c, ok)
	}
	if c, ok := compareVersions(versionOf(pipeline.Decimal{Unscaled: 2500, Scale: 3}), dec); !ok || c != 0 {
		t.Fatalf("2.500 vs 2.5: %d %v", c, ok)
	}
	if _, ok := compareVersions(versionOf("x"), versionOf(int64(1))); ok {
		t.Fatal("string and int compared")
	}
	if _, ok := compareVersions(versionOf(nil), versionOf(int64(1))); ok {
		t.Fatal("NULL compared")
	}
	if _, ok := compareVersions(versionOf(1.5), versionOf(1.5)); ok {
		t.Fatal("float compared")
	}
}

func TestKeyFromConfigVsSchema(t *testing.T) {
	s := ordersSchema()
	// Schema key (id): two names for one id are one row.
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	if got := seqs(run(t, o, s, ins(1, 1, "a"), ins(2, 1, "b"), ins(1, 1, "c"))); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("schema key: passed %v", got)
	}
	// Configured key (name): one name for two ids is one row.
	o2 := newOp(t, memCfg(Rule{Match: "shop.orders", Key: []string{"name"}}), vfs.NewMem(), nil)
	defer o2.Close()
	if got := seqs(run(t, o2, s, ins(5, 1, "a"), ins(6, 2, "a"), ins(5, 3, "b"))); !slices.Equal(got, []uint64{5, 6, 5}) {
		t.Fatalf("config key: passed %v", got)
	}
	if got := seqs(run(t, o2, s, ins(4, 9, "b"))); len(got) != 0 {
		t.Fatalf("config key: stale passed %v", got)
	}
}

func TestCompositeKey(t *testing.T) {
	s := ordersSchema()
	s.Key = []int{0, 1} // (id, name)
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	out := run(t, o, s, ins(5, 1, "a"), ins(5, 1, "b"), ins(5, 2, "a"))
	if len(out) != 3 {
		t.Fatalf("distinct composite keys dropped: %s", render(out))
	}
	if out := run(t, o, s, ins(4, 1, "b")); len(out) != 0 {
		t.Fatal("stale change of composite key passed")
	}
	// "ab"+"c" vs "a"+"bc" must not collide.
	s2 := ordersSchema()
	s2.Columns[2] = pipeline.Column{Name: "amount", Type: pipeline.TypeString}
	s2.Key = []int{1, 2}
	o2 := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o2.Close()
	r1 := pipeline.Record{Op: pipeline.OpInsert, Seq: 5, After: []any{int64(1), "ab", "c", nil, nil}}
	r2 := pipeline.Record{Op: pipeline.OpInsert, Seq: 4, After: []any{int64(1), "a", "bc", nil, nil}}
	if out := run(t, o2, s2, r1, r2); len(out) != 2 {
		t.Fatal("composite string keys collided")
	}
}

func TestNullKeyAndNullValues(t *testing.T) {
	s := ordersSchema()
	s.Key = []int{0, 1}
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	// A NULL key column identifies nothing: identical records all pass.
	out := run(t, o, s, ins(1, 1, nil), ins(1, 1, nil))
	out = append(out, run(t, o, s, ins(1, 1, nil))...)
	if len(out) != 3 {
		t.Fatalf("NULL-key records dropped: %d passed", len(out))
	}
	if st := o.Stats(); st.NullKey != 3 {
		t.Fatalf("NullKey %d", st.NullKey)
	}

	// NULL in a hashed column is neither "" nor 0.
	s2 := ordersSchema()
	o2 := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o2.Close()
	pass := func(r pipeline.Record) bool { return len(run(t, o2, s2, r)) == 1 }
	if !pass(ins(0, 1, "")) || !pass(upd(0, 1, "", nil)) || pass(upd(0, 1, nil, nil)) || !pass(upd(0, 1, nil, "")) {
		t.Fatal("NULL vs empty string in row hash")
	}
	z := upd(0, 1, "", "")
	z.After[2] = nil
	if !pass(z) {
		t.Fatal("NULL amount hashed like 1.00")
	}
}

func TestValueEncodingDistinct(t *testing.T) {
	vals := []any{nil, false, true, int64(0), int64(1), int64(-1), uint64(1 << 63), 0.0, 1.5, float32(1.5),
		pipeline.Decimal{Unscaled: 1, Scale: 0}, pipeline.Decimal{Unscaled: 1, Scale: 1}, "", "a", []byte("a"),
		time.Unix(0, 0), time.Unix(0, 1), time.Duration(1), struct{ X int }{1}}
	seen := map[string]int{}
	for i, v := range vals {
		k := string(appendValue(nil, v))
		if j, ok := seen[k]; ok {
			// float32(1.5) and 1.5 are one value by design.
			if !(i == 9 && j == 8) {
				t.Fatalf("values %d (%#v) and %d (%#v) encode alike", j, vals[j], i, v)
			}
		}
		seen[k] = i
	}
	same := [][2]any{
		{int32(7), int64(7)},
		{pipeline.Decimal{Unscaled: 150, Scale: 2}, pipeline.Decimal{Unscaled: 15, Scale: 1}},
		{time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("x", 3600)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, p := range same {
		if string(appendValue(nil, p[0])) != string(appendValue(nil, p[1])) {
			t.Fatalf("%#v and %#v should encode alike", p[0], p[1])
		}
	}
	// Increasing ids give increasing keys, negative ones included.
	if string(appendValue(nil, int64(-1))) >= string(appendValue(nil, int64(0))) ||
		string(appendValue(nil, int64(255))) >= string(appendValue(nil, int64(256))) {
		t.Fatal("integer keys do not sort numerically")
	}
}

func TestStateEncodingRoundTrip(t *testing.T) {
	cases := []state{
		{exists: true, hash: 42, touched: 1700000000000},
		{exists: true, tomb: true, seq: 99, touched: -5},
		{exists: true, hash: 1, seq: 7, ver: version{kind: verString, s: []byte("abc")}},
		{exists: true, hash: 1, ver: version{kind: verDecimal, i: -12, aux: 3}},
		{exists: true, hash: 1, ver: version{kind: verTime, i: 1700000000, aux: 999999999}},
	}
	for i, c := range cases {
		b := appendState(nil, &c)
		var got state
		if err := decodeState(b, &got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got.tomb != c.tomb || got.hash != c.hash || got.seq != c.seq ||
			got.touched != c.touched || got.ver.kind != c.ver.kind || got.ver.i != c.ver.i ||
			got.ver.aux != c.ver.aux || string(got.ver.s) != string(c.ver.s) {
			t.Fatalf("case %d: %+v != %+v", i, got, c)
		}
	}
	// A live row with a sequence and no TTL: flags, hash, seq.
	if n := len(appendState(nil, &state{exists: true, hash: 1, seq: 1 << 40})); n != 1+8+6 {
		t.Fatalf("state takes %d bytes", n)
	}
	var s state
	for _, bad := range [][]byte{nil, {0xff}, {0}, {flagSeq, 1, 2, 0, 0, 0, 0, 0, 0}, {flagVer | flagTomb, 9}} {
		if err := decodeState(bad, &s); err == nil {
			t.Fatalf("corrupt %x decoded", bad)
		}
	}
}

func TestSameKeyInOneBatch(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	in := []pipeline.Record{
		ins(1, 3, "a"),
		ins(2, 1, "x"),
		upd(3, 3, "a", "b"),
		upd(3, 3, "a", "b"), // replay of the previous record
		ins(4, 2, "y"),
		upd(2, 3, "b", "old"), // stale against seq 3 from this batch
		del(5, 1, "x"),
		ins(3, 1, "x"), // older than the delete in this batch
		upd(6, 3, "b", "b"),
	}
	out := run(t, o, s, in...)
	if got := seqs(out); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("passed %v\n%s", got, render(out))
	}
	// Original order kept even when keys arrive unsorted.
	if out[0].After[0] != int64(3) || out[1].After[0] != int64(1) {
		t.Fatalf("order changed:\n%s", render(out))
	}
	// The batch's final state was stored.
	if out := run(t, o, s, upd(5, 3, "b", "zzz"), ins(6, 1, "x")); len(out) != 1 || out[0].Seq != 6 {
		t.Fatalf("after batch: %s", render(out))
	}
}

func TestPrimaryKeyChange(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	run(t, o, s, ins(1, 1, "a"), ins(2, 2, "b"))
	move := pipeline.Record{Op: pipeline.OpUpdate, Seq: 3, Before: row(1, "a"), After: row(2, "a")}
	if out := run(t, o, s, move); len(out) != 1 {
		t.Fatal("key-changing update dropped")
	}
	// Key 1 is forgotten: re-inserting the old image passes (the lake no
	// longer has it), even at an older seq.
	if out := run(t, o, s, ins(1, 1, "a")); len(out) != 1 {
		t.Fatal("insert of the moved-away key dropped")
	}
	// Key 2 holds the moved image now.
	if out := run(t, o, s, upd(4, 2, "a", "a")); len(out) != 0 {
		t.Fatal("unchanged update of the moved row passed")
	}
	if out := run(t, o, s, upd(2, 2, "a", "b")); len(out) != 0 {
		t.Fatal("stale update of the new key passed")
	}
}

func TestNewSchemaPointer(t *testing.T) {
	o := newOp(t, memCfg(Rule{Match: "shop.orders", Key: []string{"id"}, Version: "v"}), vfs.NewMem(), nil)
	defer o.Close()
	s1 := ordersSchema()
	r := ins(0, 1, "a")
	r.After[3] = int64(10)
	run(t, o, s1, r)
	// The shape changes: a column is added in front, so every index moves.
	s2 := ordersSchema()
	s2.Columns = append([]pipeline.Column{{Name: "tenant", Type: pipeline.TypeString}}, s2.Columns...)
	s2.Key = []int{1}
	s2.Version = 2
	mk := func(v int64, name string) pipeline.Record {
		return pipeline.Record{Op: pipeline.OpUpdate, After: []any{"t", int64(1), name, pipeline.Decimal{Unscaled: 100, Scale: 2}, v, nil}}
	}
	if out := run(t, o, s2, mk(9, "old")); len(out) != 0 {
		t.Fatal("stale change passed after schema change: key or version index not recomputed")
	}
	if out := run(t, o, s2, mk(11, "new")); len(out) != 1 {
		t.Fatal("newer change dropped after schema change")
	}
	// The old pointer still works.
	r2 := ins(0, 1, "b")
	r2.After[3] = int64(10)
	if out := run(t, o, s1, r2); len(out) != 0 {
		t.Fatal("stale change through the old schema passed")
	}
}

func TestBatchBookkeeping(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	in := &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(1, 1, "a"), ins(1, 1, "a"), ins(1, 2, "a"), ins(1, 2, "a")}, Bytes: 400}
	var got *pipeline.Batch
	if err := o.Process(context.Background(), in, func(b *pipeline.Batch) error { got = b; return nil }); err != nil {
		t.Fatal(err)
	}
	if got == in || got.Bytes != 200 || len(got.Records) != 2 || got.Schema != s {
		t.Fatalf("filtered batch: %+v", got)
	}
	// Everything dropped: nothing emitted.
	called := false
	in2 := &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(1, 1, "a")}}
	if err := o.Process(context.Background(), in2, func(*pipeline.Batch) error { called = true; return nil }); err != nil || called {
		t.Fatalf("emit called for an empty result (err %v)", err)
	}
	// emit's error comes back.
	boom := errors.New("boom")
	in3 := &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(2, 1, "b")}}
	if err := o.Process(context.Background(), in3, func(*pipeline.Batch) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("emit error: %v", err)
	}
}

func TestTTL(t *testing.T) {
	clk := newClock()
	o := newOp(t, memCfg(Rule{Match: "shop.*", TTL: time.Hour}), vfs.NewMem(), nil, WithClock(clk.now))
	defer o.Close()
	s := ordersSchema()
	pass := func(r pipeline.Record) bool { return len(run(t, o, s, r)) == 1 }
	run(t, o, s, ins(10, 1, "a"), del(10, 2, "b"))
	clk.add(59 * time.Minute)
	if pass(ins(10, 1, "a")) || pass(ins(5, 2, "b")) {
		t.Fatal("dropped-before-TTL rules not applied")
	}
	// Dropped records do not refresh a key: the hour runs from the last
	// change that passed.
	clk.add(2 * time.Minute)
	if !pass(ins(10, 1, "a")) {
		t.Fatal("expired key still deduplicated")
	}
	if !pass(ins(5, 2, "b")) {
		t.Fatal("expired tombstone still dropped an older insert")
	}
	if st := o.Stats(); st.Expired != 2 {
		t.Fatalf("expired %d", st.Expired)
	}
	// A passing change refreshes the key.
	clk.add(30 * time.Minute)
	if pass(ins(10, 1, "a")) {
		t.Fatal("refreshed key forgotten")
	}
	// The sweep removes expired entries from disk at Snapshot.
	for id := int64(100); id < 110; id++ {
		run(t, o, s, ins(1, id, "x"))
	}
	clk.add(2 * time.Hour)
	snapshot(t, o, 1)
	if st := o.Stats(); st.Swept != 12 {
		t.Fatalf("swept %d, want 12", st.Swept)
	}
	if n := countState(t, o); n != 0 {
		t.Fatalf("%d state entries left after sweep", n)
	}
}

func TestTTLSweepBudgetResumes(t *testing.T) {
	clk := newClock()
	o := newOp(t, memCfg(Rule{Match: "shop.*", TTL: time.Minute}), vfs.NewMem(), nil, WithClock(clk.now))
	defer o.Close()
	s := ordersSchema()
	n := sweepBudget + sweepBudget/2
	recs := make([]pipeline.Record, 0, 4096)
	for id := 0; id < n; id++ {
		recs = append(recs, ins(1, int64(id), "x"))
		if len(recs) == cap(recs) || id == n-1 {
			run(t, o, s, recs...)
			recs = recs[:0]
		}
	}
	clk.add(time.Hour)
	snapshot(t, o, 1)
	if st := o.Stats(); st.Swept != sweepBudget {
		t.Fatalf("first sweep removed %d, want %d", st.Swept, sweepBudget)
	}
	snapshot(t, o, 2)
	if st := o.Stats(); st.Swept != uint64(n) {
		t.Fatalf("second sweep: total %d, want %d", st.Swept, n)
	}
}

// countState counts the state entries on disk.
func countState(t *testing.T, o *Operator) int {
	t.Helper()
	it, err := o.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if it.Key()[0] == prefixState {
			n++
		}
	}
	return n
}

func TestSortEvents(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	o := &Operator{}
	for round := range 200 {
		o.keys, o.events = o.keys[:0], o.events[:0]
		n := rng.Intn(300)
		next := 0
		for i := range n {
			var k int
			switch {
			case round%3 == 0:
				k = rng.Intn(20) // many duplicates
			case rng.Intn(10) == 0:
				k = rng.Intn(next + 1) // an older key
			default:
				next += rng.Intn(3)
				k = next
			}
			off := len(o.keys)
			o.keys = appendValue(o.keys, int64(k))
			o.events = append(o.events, event{off: int32(off), end: int32(len(o.keys)), rec: int32(i)})
		}
		o.sortEvents()
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int { return bytes.Compare(o.eventKey(a), o.eventKey(b)) })
		if !slices.Equal(o.order, want) {
			t.Fatalf("round %d: order %v, want %v", round, o.order, want)
		}
	}
}

// TestTTLAddedLater: keys stored while a rule had no TTL carry no time; once
// a TTL is configured they count as expired (forgetting is the safe side).
func TestTTLAddedLater(t *testing.T) {
	fs := vfs.NewMem()
	s := ordersSchema()
	o := newOp(t, memCfg(defaultRules()...), fs, nil)
	run(t, o, s, ins(1, 1, "a"))
	st := snapshot(t, o, 1)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = newOp(t, memCfg(Rule{Match: "shop.*", TTL: time.Hour}), fs, st)
	defer o.Close()
	if out := run(t, o, s, ins(1, 1, "a")); len(out) != 1 {
		t.Fatal("key without a time was not treated as expired")
	}
	if out := run(t, o, s, ins(1, 1, "a")); len(out) != 0 {
		t.Fatal("rewritten key expired at once")
	}
}
