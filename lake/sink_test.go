package lake

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

func testConfig(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{
		Catalog:   CatalogConfig{Type: "sql", URI: "sqlite://" + filepath.Join(dir, "catalog.db")},
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Namespace: "test",
		Tables: []TableConfig{{
			Match: "shop.*", ODS: "ods_{db}_{table}", DWD: "dwd_{db}_{table}",
			Partition: []string{"bucket(4, id)"},
		}},
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

var ordersSchema = &pipeline.Schema{
	Table: pipeline.TableID{Namespace: "shop", Name: "orders"},
	Columns: []pipeline.Column{
		{Name: "id", Type: pipeline.TypeInt64},
		{Name: "name", Type: pipeline.TypeString, Nullable: true},
		{Name: "amount", Type: pipeline.TypeDecimal, Precision: 10, Scale: 2, Nullable: true},
		{Name: "ts", Type: pipeline.TypeTimestampTZ, Nullable: true},
	},
	Key:     []int{0},
	Version: 1,
}

func row(id int64, name string, cents int64) []any {
	return []any{id, name, pipeline.Decimal{Unscaled: cents, Scale: 2}, time.Date(2026, 1, 1, 0, 0, int(id), 0, time.UTC)}
}

// scanAll returns the rows of a table keyed by fmt of the first column.
func scanAll(t *testing.T, cfg *Config, name string) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	err := ScanTable(context.Background(), cfg, name, 0, func(cols []string, r []any) error {
		k := fmt.Sprint(r[0])
		if _, dup := out[k]; dup && name != "test.ods_shop_orders" {
			return fmt.Errorf("duplicate key %s in %s", k, name)
		}
		out[k] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countRows(t *testing.T, cfg *Config, name string) int {
	t.Helper()
	n := 0
	if err := ScanTable(context.Background(), cfg, name, 0, func([]string, []any) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSinkUpsertAndAppend(t *testing.T) {
	// Flushing every 2 or 3 rows splits each checkpoint into segments that
	// commit as successive snapshots of one transaction; keys updated and
	// deleted across segments must still end with their last write.
	for _, flush := range []int{250_000, 3, 2} {
		t.Run(fmt.Sprint("flush", flush), func(t *testing.T) { runSinkWorkload(t, testConfig(t), flush) })
	}
}

// testSinkOnBackend is testSinkUpsertAndAppend's scenario, with the rows
// checked column by column and the repeated Commit checked to change
// nothing.
func runSinkWorkload(t *testing.T, cfg *Config, flushRows int) {
	ctx := context.Background()
	cfg.FlushRows = flushRows
	s, err := NewSink(cfg, "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	write := func(recs ...pipeline.Record) {
		t.Helper()
		if err := s.Write(ctx, &pipeline.Batch{Schema: ordersSchema, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	// state is each table's snapshot count and current snapshot id.
	state := func() string {
		t.Helper()
		var out []string
		for _, name := range []string{"dwd_shop_orders", "ods_shop_orders"} {
			tbl, err := s.cat.LoadTable(ctx, []string{"test", name})
			if err != nil {
				t.Fatal(err)
			}
			cur := int64(-1)
			if sn := tbl.CurrentSnapshot(); sn != nil {
				cur = sn.SnapshotID
			}
			out = append(out, fmt.Sprintf("%s:%d snapshots, current %d, metadata %s",
				name, len(tbl.Metadata().Snapshots()), cur, tbl.MetadataLocation()))
		}
		return strings.Join(out, "; ")
	}
	checkpointN := func(id uint64) {
		t.Helper()
		p, err := s.Prepare(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c := pipeline.Commit{ID: id, Job: "job1", Prepared: p, Positions: map[string]string{"src": fmt.Sprint("seq=", id)}}
		began := time.Now()
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Logf("checkpoint %d committed in %v", id, time.Since(began).Round(time.Millisecond))
		before := state()
		// Idempotence: a second commit of the same checkpoint is a no-op.
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		if after := state(); after != before {
			t.Errorf("a second Commit of checkpoint %d changed the tables:\nbefore %s\nafter  %s", id, before, after)
		}
	}

	// checkpoint 1: insert 1..5, update 2 twice in the same checkpoint, delete 3.
	for i := int64(1); i <= 5; i++ {
		write(pipeline.Record{Op: pipeline.OpInsert, After: row(i, fmt.Sprint("n", i), i*100), Position: fmt.Sprint("p", i)})
	}
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(2, "n2", 200), After: row(2, "n2b", 201)})
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(2, "n2b", 201), After: row(2, "n2c", 202)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(3, "n3", 300)})
	checkpointN(1)
	assertRows(t, cfg, "test.dwd_shop_orders", row(1, "n1", 100), row(2, "n2c", 202), row(4, "n4", 400), row(5, "n5", 500))
	if n := countRows(t, cfg, "test.ods_shop_orders"); n != 8 {
		t.Errorf("ods has %d rows after checkpoint 1, want 8", n)
	}

	// checkpoint 2: update 1, delete 4, re-insert 3, delete then re-insert 5.
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(1, "n1", 100), After: row(1, "n1x", 111)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(4, "n4", 400)})
	write(pipeline.Record{Op: pipeline.OpInsert, After: row(3, "n3again", 333)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(5, "n5", 500)})
	write(pipeline.Record{Op: pipeline.OpInsert, After: row(5, "n5new", 555)})
	checkpointN(2)
	assertRows(t, cfg, "test.dwd_shop_orders", row(1, "n1x", 111), row(2, "n2c", 202), row(3, "n3again", 333), row(5, "n5new", 555))
	if n := countRows(t, cfg, "test.ods_shop_orders"); n != 13 {
		t.Errorf("ods has %d rows, want every one of the 13 changes", n)
	}

	tables, err := ListTables(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tables)
	if fmt.Sprint(tables) != "[test.dwd_shop_orders test.ods_shop_orders]" {
		t.Errorf("tables = %v", tables)
	}
	tbl, err := s.cat.LoadTable(ctx, []string{"test", "dwd_shop_orders"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tbl.Location(), strings.TrimSuffix(cfg.Warehouse, "/")+"/") {
		t.Errorf("table location %s is outside the warehouse %s", tbl.Location(), cfg.Warehouse)
	}
	perCheckpoint := map[string]int{}
	for _, sn := range tbl.Metadata().Snapshots() {
		perCheckpoint[sn.Summary.Properties[PropCheckpointID]]++
	}
	if flushRows > 10 && fmt.Sprint(perCheckpoint) != "map[1:1 2:1]" {
		t.Errorf("snapshots per checkpoint = %v, want one each", perCheckpoint)
	}
	if flushRows <= 3 && (perCheckpoint["1"] < 2 || perCheckpoint["2"] < 2) {
		t.Errorf("snapshots per checkpoint = %v, want several segments each", perCheckpoint)
	}
	cur := tbl.CurrentSnapshot().Summary.Properties
	if cur[PropJobID] != "job1" || cur[PropCheckpointID] != "2" || cur[PropPositionPrefix+"src"] != "seq=2" {
		t.Errorf("snapshot summary = %v", cur)
	}
}

// assertRows checks that a table holds exactly want, every column equal.
func assertRows(t *testing.T, cfg *Config, name string, want ...[]any) {
	t.Helper()
	got := scanAll(t, cfg, name)
	var g, w []string
	for _, r := range got {
		g = append(g, renderRow(r))
	}
	for _, r := range want {
		w = append(w, renderRow(r))
	}
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s rows:\n%s\nwant:\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// renderRow prints values with their types; times in UTC, so that equal
// instants compare equal whatever their location.
func renderRow(r []any) string {
	parts := make([]string, len(r))
	for i, v := range r {
		switch x := v.(type) {
		case time.Time:
			parts[i] = "time:" + x.UTC().Format(time.RFC3339Nano)
		case pipeline.Decimal:
			parts[i] = fmt.Sprintf("decimal:%d/scale%d", x.Unscaled, x.Scale)
		default:
			parts[i] = fmt.Sprintf("%T:%v", v, v)
		}
	}
	return strings.Join(parts, " | ")
}

func TestSinkRejectsBadValues(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	s, _ := NewSink(cfg, "job1", nil)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bad := []any{int64(1), 42, nil, nil} // int for a string column
	err := s.Write(ctx, &pipeline.Batch{Schema: ordersSchema, Records: []pipeline.Record{{Op: pipeline.OpInsert, After: bad, Position: "seq=7"}}})
	if err == nil {
		t.Fatal("a value of the wrong type was accepted")
	}
	if want := "seq=7"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "name") {
		t.Errorf("error %q should name the position and the column", err)
	}
	nullKey := []any{nil, "x", nil, nil}
	err = s.Write(ctx, &pipeline.Batch{Schema: ordersSchema, Records: []pipeline.Record{{Op: pipeline.OpInsert, After: nullKey, Position: "seq=8"}}})
	if err == nil || !strings.Contains(err.Error(), "id") {
		t.Fatalf("NULL key: err = %v", err)
	}
}

func TestParsePartitionField(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		err  bool
	}{
		{"id", "id", false},
		{"bucket(16, id)", "id_bucket", false},
		{"truncate(4,name)", "name_truncate", false},
		{"day(ts)", "ts_day", false},
		{"bucket(id)", "", true},
		{"day(3, ts)", "", true},
		{"frob(ts)", "", true},
		{"bucket(0, id)", "", true},
		{"a b", "", true},
	} {
		pf, err := parsePartitionField(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && pf.name != tc.name {
			t.Errorf("%q: name %q, want %q", tc.in, pf.name, tc.name)
		}
	}
}
