package lake

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// maintRow is one row of the test table (id is the primary key).
type maintRow struct {
	ID     int64
	Name   string
	Amount int64
}

type maintFixture struct {
	t     *testing.T
	cfg   *Config
	cat   catalog.Catalog
	ident table.Identifier
	tbl   *table.Table
	job   string
	// checkpoint is the last checkpoint id committed by job.
	checkpoint int
}

func maintTestConfig(t *testing.T) *Config {
	dir := t.TempDir()
	cfg := &Config{
		Catalog:   CatalogConfig{URI: "sqlite://" + filepath.Join(dir, "catalog.db")},
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Namespace: "shop",
	}
	cfg.Defaults()
	return cfg
}

// newMaintFixture creates a format-v2 upsert-shaped table (identifier
// field id) the way the sink does, owned by job.
func newMaintFixture(t *testing.T, cfg *Config, name, job string, opts ...catalog.CreateTableOpt) *maintFixture {
	t.Helper()
	ctx := t.Context()
	cat, err := OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = CloseCatalog(cat) })
	ns := catalog.ToIdentifier(cfg.Namespace)
	if ok, err := cat.CheckNamespaceExists(ctx, ns); err != nil {
		t.Fatal(err)
	} else if !ok {
		if err := cat.CreateNamespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{1},
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "amount", Type: iceberg.PrimitiveTypes.Int64},
	)
	ident := slices.Concat(ns, table.Identifier{name})
	opts = append([]catalog.CreateTableOpt{catalog.WithProperties(iceberg.Properties{
		table.PropertyFormatVersion: "2",
		PropJobID:                   job,
	})}, opts...)
	tbl, err := cat.CreateTable(ctx, ident, sc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &maintFixture{t: t, cfg: cfg, cat: cat, ident: ident, tbl: tbl, job: job}
}

func (f *maintFixture) reload() *table.Table {
	f.t.Helper()
	tbl, err := f.cat.LoadTable(f.t.Context(), f.ident)
	if err != nil {
		f.t.Fatal(err)
	}
	f.tbl = tbl
	return tbl
}

func maintSeq(rec arrow.RecordBatch) func(func(arrow.RecordBatch, error) bool) {
	return func(yield func(arrow.RecordBatch, error) bool) { yield(rec, nil) }
}

// writeRows writes rows as one data file of the current table.
func (f *maintFixture) writeRows(rows []maintRow) []iceberg.DataFile {
	f.t.Helper()
	sc, err := table.SchemaToArrowSchema(f.tbl.Schema(), nil, true, false)
	if err != nil {
		f.t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.ID)
		b.Field(1).(*array.StringBuilder).Append(r.Name)
		b.Field(2).(*array.Int64Builder).Append(r.Amount)
	}
	rec := b.NewRecordBatch()
	var out []iceberg.DataFile
	for df, err := range table.WriteRecords(f.t.Context(), f.tbl, sc, maintSeq(rec)) {
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, df)
	}
	return out
}

// commit commits one checkpoint of the fixture's job as the sink does: the rows,
// equality deletes on id for deleteIDs (a row delta), the checkpoint in
// the snapshot summary and in the table property.
func (f *maintFixture) commit(rows []maintRow, deleteIDs []int64) {
	f.t.Helper()
	ctx := f.t.Context()
	f.checkpoint++
	cp := strconv.Itoa(f.checkpoint)
	props := iceberg.Properties{PropJobID: f.job, PropCheckpointID: cp, PropPositionPrefix + "src": "pos-" + cp}
	var data []iceberg.DataFile
	if len(rows) > 0 {
		data = f.writeRows(rows)
	}
	tx := f.tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{PropTableCheckpointPrefix + f.job: cp}); err != nil {
		f.t.Fatal(err)
	}
	if len(deleteIDs) > 0 {
		delSc, err := table.SchemaToArrowSchema(iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true}), nil, true, false)
		if err != nil {
			f.t.Fatal(err)
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, delSc)
		b.Field(0).(*array.Int64Builder).AppendValues(deleteIDs, nil)
		rec := b.NewRecordBatch()
		b.Release()
		dels, err := tx.WriteEqualityDeletes(ctx, []int{1}, maintSeq(rec))
		rec.Release()
		if err != nil {
			f.t.Fatal(err)
		}
		if err := tx.NewRowDelta(props).AddRows(data...).AddDeletes(dels...).Commit(ctx); err != nil {
			f.t.Fatal(err)
		}
	} else if err := tx.AddDataFiles(ctx, data, props); err != nil {
		f.t.Fatal(err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.tbl = tbl
}

// seed commits five appends of six rows (ids 1..30), then a row delta
// that updates ids 7 and 12, deletes id 2 and inserts id 31, then a
// delete-only row delta for id 20: seven snapshots, six data files and
// two equality delete files, the newest at checkpoint 7.
func (f *maintFixture) seed() {
	f.t.Helper()
	for c := range 5 {
		var rows []maintRow
		for i := range 6 {
			id := int64(c*6 + i + 1)
			rows = append(rows, maintRow{ID: id, Name: fmt.Sprintf("row-%d", id), Amount: id * 10})
		}
		f.commit(rows, nil)
	}
	f.commit([]maintRow{{7, "updated-7", 700}, {12, "updated-12", 1200}, {31, "row-31", 310}}, []int64{2, 7, 12})
	f.commit(nil, []int64{20})
}

// scan reads the table with deletes applied, sorted by id.
func maintScan(t *testing.T, tbl *table.Table) []maintRow {
	t.Helper()
	_, itr, err := tbl.Scan().ToArrowRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []maintRow
	for rec, err := range itr {
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
		ids, names, amounts := col("id").(*array.Int64), col("name").(*array.String), col("amount").(*array.Int64)
		for i := range int(rec.NumRows()) {
			out = append(out, maintRow{ids.Value(i), names.Value(i), amounts.Value(i)})
		}
		rec.Release()
	}
	slices.SortFunc(out, func(a, b maintRow) int { return int(a.ID - b.ID) })
	return out
}

func maintExpectRows(t *testing.T, got, want []maintRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// maintTaskFiles counts the data files and distinct delete files a scan
// of the current snapshot plans.
func maintTaskFiles(t *testing.T, tbl *table.Table) (data, deletes int) {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]struct{}{}
	files := map[string]struct{}{}
	for _, task := range tasks {
		files[task.File.FilePath()] = struct{}{}
		for _, l := range [][]iceberg.DataFile{task.DeleteFiles, task.EqualityDeleteFiles, task.DeletionVectorFiles} {
			for _, df := range l {
				seen[df.FilePath()] = struct{}{}
			}
		}
	}
	return len(files), len(seen)
}

// maintReferencedPaths lists the local paths of the data and delete files
// of the current snapshot.
func maintReferencedPaths(t *testing.T, tbl *table.Table) []string {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]struct{}{}
	for _, task := range tasks {
		for _, df := range slices.Concat([]iceberg.DataFile{task.File}, task.DeleteFiles, task.EqualityDeleteFiles, task.DeletionVectorFiles) {
			set[strings.TrimPrefix(df.FilePath(), "file://")] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// maintLocalFiles lists the regular files under dir of the table location.
func maintLocalFiles(t *testing.T, tbl *table.Table, dir string) []string {
	t.Helper()
	root := filepath.Join(strings.TrimPrefix(tbl.Location(), "file://"), dir)
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func maintExpectSluiceSummary(t *testing.T, tbl *table.Table, checkpoint string) {
	t.Helper()
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		t.Fatal("no current snapshot")
	}
	p := s.Summary.Properties
	if p[PropJobID] != "j" || p[PropCheckpointID] != checkpoint || p[PropPositionPrefix+"src"] != "pos-"+checkpoint {
		t.Fatalf("newest snapshot (%s) lost sluice properties: %v", s.Summary.Operation, p)
	}
	if got := tbl.Properties()[PropTableCheckpointPrefix+"j"]; got != checkpoint {
		t.Fatalf("table property %s = %q, want %q", PropTableCheckpointPrefix+"j", got, checkpoint)
	}
}

func TestMaintainCompactAppliesEqualityDeletes(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()
	// A table of another job in the same namespace must be left alone.
	other := newMaintFixture(t, cfg, "other", "someone-else")
	for range 6 {
		other.commit([]maintRow{{1, "x", 1}}, nil)
	}

	want := maintScan(t, f.tbl)
	if len(want) != 29 { // 30 - id 2 - id 20 + id 31
		t.Fatalf("seed: %d rows", len(want))
	}
	if d, del := maintTaskFiles(t, f.tbl); d != 6 || del != 2 {
		t.Fatalf("seed: %d data files, %d delete files; want 6 and 2", d, del)
	}
	seededSnap := f.tbl.CurrentSnapshot().SnapshotID

	// Dry run: a plan, no change.
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{Compact: true, DryRun: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Table != "shop.orders" || reps[0].FilesBefore != 6 || reps[0].FilesAfter != 1 ||
		reps[0].DeleteFilesBefore != 2 || reps[0].DeleteFilesAfter != 0 {
		t.Fatalf("dry run report: %+v", reps)
	}
	if f.reload().CurrentSnapshot().SnapshotID != seededSnap {
		t.Fatal("dry run committed a snapshot")
	}

	reps, err = Maintain(t.Context(), cfg, "j", nil, MaintainOptions{Compact: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want29 := TableReport{Table: "shop.orders", FilesBefore: 6, FilesAfter: 1, DeleteFilesBefore: 2, DeleteFilesAfter: 0, Rows: 29}
	if len(reps) != 1 || reps[0] != want29 {
		t.Fatalf("report: %+v, want [%+v]", reps, want29)
	}

	tbl := f.reload()
	maintExpectRows(t, maintScan(t, tbl), want)
	if d, del := maintTaskFiles(t, tbl); d != 1 || del != 0 {
		t.Fatalf("after compaction: %d data files, %d delete files; want 1 and 0", d, del)
	}
	s := tbl.CurrentSnapshot()
	if s.Summary.Operation != table.OpReplace || s.ParentSnapshotID == nil || *s.ParentSnapshotID != seededSnap {
		t.Fatalf("compaction snapshot: %s, parent %v", s.Summary.Operation, s.ParentSnapshotID)
	}
	maintExpectSluiceSummary(t, tbl, "7")

	// A second run finds one right-sized-for-its-data file and nothing to do.
	reps, err = Maintain(t.Context(), cfg, "", []string{"shop.orders"}, MaintainOptions{Compact: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].FilesAfter != 1 || f.reload().CurrentSnapshot().SnapshotID != s.SnapshotID {
		t.Fatalf("second run changed the table: %+v", reps[0])
	}
}

func TestMaintainCompactSkipsOnConcurrentDelete(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()

	maintTestHookBeforeCommit = func(ctx context.Context, attempt int) {
		if attempt == 0 {
			// A running job commits checkpoint 8 (deleting id 1) while
			// compaction was rewriting: its delete must not be lost.
			f.commit([]maintRow{{1, "updated-1", 11}}, []int64{1})
		}
	}
	t.Cleanup(func() { maintTestHookBeforeCommit = nil })
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{Compact: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Conflict == "" || reps[0].FilesAfter != reps[0].FilesBefore {
		t.Fatalf("want a conflict report, got %+v", reps)
	}
	t.Logf("conflict: %s", reps[0].Conflict)
	tbl := f.reload()
	if tbl.CurrentSnapshot().Summary.Properties[PropCheckpointID] != "8" {
		t.Fatal("the concurrent commit is not the head")
	}
	rows := maintScan(t, tbl)
	if rows[0] != (maintRow{1, "updated-1", 11}) {
		t.Fatalf("concurrent update lost: %+v", rows[0])
	}
	// The rewrite's output was removed again: every file on disk is one
	// the table references.
	if got, want := maintLocalFiles(t, tbl, "data"), maintReferencedPaths(t, tbl); !slices.Equal(got, want) {
		t.Fatalf("uncommitted compaction output left behind:\n got %v\nwant %v", got, want)
	}
}

func TestMaintainCompactRebasesOverConcurrentAppend(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()
	want := maintScan(t, f.tbl)

	maintTestHookBeforeCommit = func(ctx context.Context, attempt int) {
		if attempt == 0 {
			f.commit([]maintRow{{40, "row-40", 400}}, nil) // checkpoint 8, an append
		}
	}
	t.Cleanup(func() { maintTestHookBeforeCommit = nil })
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{Compact: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Conflict != "" || reps[0].FilesAfter != 2 || reps[0].DeleteFilesAfter != 0 {
		t.Fatalf("report: %+v", reps)
	}
	tbl := f.reload()
	maintExpectRows(t, maintScan(t, tbl), append(want, maintRow{40, "row-40", 400}))
	if tbl.CurrentSnapshot().Summary.Operation != table.OpReplace {
		t.Fatalf("head is %s, want the compaction", tbl.CurrentSnapshot().Summary.Operation)
	}
	// The compaction landed after checkpoint 8, so it must name 8, not the
	// 7 it was planned on.
	maintExpectSluiceSummary(t, tbl, "8")
}

func TestMaintainExpireSnapshots(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()
	want := maintScan(t, f.tbl)
	if n := len(f.tbl.Metadata().Snapshots()); n != 7 {
		t.Fatalf("seed: %d snapshots", n)
	}
	time.Sleep(5 * time.Millisecond)

	// Young snapshots stay with the default age.
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{ExpireSnapshots: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].SnapshotsExpired != 0 || len(f.reload().Metadata().Snapshots()) != 7 {
		t.Fatalf("expired young snapshots: %+v", reps[0])
	}

	opts := MaintainOptions{ExpireSnapshots: true, ExpireOlderThan: time.Millisecond, RetainLast: 3, DryRun: true}
	reps, err = Maintain(t.Context(), cfg, "j", nil, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].SnapshotsExpired != 4 || len(f.reload().Metadata().Snapshots()) != 7 {
		t.Fatalf("dry run: %+v", reps[0])
	}

	oldLists := map[string]bool{}
	for _, s := range f.tbl.Metadata().Snapshots() {
		oldLists[strings.TrimPrefix(s.ManifestList, "file://")] = true
	}
	opts.DryRun = false
	reps, err = Maintain(t.Context(), cfg, "j", nil, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tbl := f.reload()
	if reps[0].SnapshotsExpired != 4 || len(tbl.Metadata().Snapshots()) != 3 {
		t.Fatalf("expiry: %+v, %d snapshots left", reps[0], len(tbl.Metadata().Snapshots()))
	}
	maintExpectRows(t, maintScan(t, tbl), want)
	maintExpectSluiceSummary(t, tbl, "7")
	// The expired snapshots' manifest lists are deleted with them.
	kept := 0
	for p := range oldLists {
		if _, err := os.Stat(p); err == nil {
			kept++
		}
	}
	if kept != 3 {
		t.Fatalf("%d manifest lists remain, want 3", kept)
	}
}

// Compaction plus expiry of everything but the head leaves exactly the
// compacted file on disk: expiry deletes the replaced data and delete files.
func TestMaintainCompactThenExpireFreesReplacedFiles(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()
	want := maintScan(t, f.tbl)
	time.Sleep(5 * time.Millisecond)
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{
		Compact: true, ExpireSnapshots: true, ExpireOlderThan: time.Millisecond, RetainLast: 1,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tbl := f.reload()
	if reps[0].SnapshotsExpired != 7 || len(tbl.Metadata().Snapshots()) != 1 {
		t.Fatalf("report %+v, %d snapshots", reps[0], len(tbl.Metadata().Snapshots()))
	}
	maintExpectRows(t, maintScan(t, tbl), want)
	maintExpectSluiceSummary(t, tbl, "7")
	if files := maintLocalFiles(t, tbl, "data"); len(files) != 1 {
		t.Fatalf("data directory holds %d files, want the compacted one: %v", len(files), files)
	}
}

func TestMaintainRemoveOrphans(t *testing.T) {
	cfg := maintTestConfig(t)
	f := newMaintFixture(t, cfg, "orders", "j")
	f.seed()
	want := maintScan(t, f.tbl)
	loc := strings.TrimPrefix(f.tbl.Location(), "file://")

	// Age every file of the table, so that only reachability protects the
	// referenced ones.
	old := time.Now().Add(-3 * time.Hour)
	err := filepath.WalkDir(loc, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A crashed job's leftover, and a file a running job just prepared.
	stale := filepath.Join(loc, "data", "00000-0-stale.parquet")
	fresh := filepath.Join(loc, "data", "00000-0-prepared.parquet")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("PAR1 not really"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{RemoveOrphans: true, DryRun: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].OrphansRemoved != 1 || !exists(stale) || !exists(fresh) {
		t.Fatalf("dry run: %+v, stale exists %v", reps[0], exists(stale))
	}

	reps, err = Maintain(t.Context(), cfg, "j", nil, MaintainOptions{RemoveOrphans: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].OrphansRemoved != 1 || exists(stale) || !exists(fresh) {
		t.Fatalf("orphans: %+v, stale exists %v, fresh exists %v", reps[0], exists(stale), exists(fresh))
	}
	tbl := f.reload()
	maintExpectRows(t, maintScan(t, tbl), want)
	maintExpectSluiceSummary(t, tbl, "7")
}

func TestMaintainSelectsTables(t *testing.T) {
	cfg := maintTestConfig(t)
	cfg.Tables = []TableConfig{{Match: "*", ODS: "raw.ods_{table}", DWD: "dwd_{table}"}}
	a := newMaintFixture(t, cfg, "a", "j")
	a.commit([]maintRow{{1, "a", 1}}, nil)
	newMaintFixture(t, cfg, "b", "other")
	// A table created by the job but not yet written: the property names it.
	newMaintFixture(t, cfg, "c", "j")

	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range reps {
		names = append(names, r.Table)
	}
	if !slices.Equal(names, []string{"shop.a", "shop.c"}) {
		t.Fatalf("maintained %v", names)
	}
	if _, err := Maintain(t.Context(), cfg, "", nil, MaintainOptions{}, nil); err == nil {
		t.Fatal("no job and no tables must be refused")
	}
	if _, err := Maintain(t.Context(), cfg, "", []string{"shop.missing"}, MaintainOptions{}, nil); err == nil {
		t.Fatal("a missing table must be an error")
	}
}

// A partitioned table whose files scan planning splits into row-group
// ranges: compaction works per partition, rewrites whole files, and still
// drops every equality delete.
func TestMaintainCompactPartitionedSplitFiles(t *testing.T) {
	cfg := maintTestConfig(t)
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
		SourceIDs: []int{1}, FieldID: 1000, Name: "id_bucket", Transform: iceberg.BucketTransform{NumBuckets: 2},
	})
	f := newMaintFixture(t, cfg, "orders", "j",
		catalog.WithPartitionSpec(&spec),
		catalog.WithProperties(iceberg.Properties{
			table.PropertyFormatVersion:   "2",
			PropJobID:                     "j",
			table.ParquetRowGroupLimitKey: "2",
			table.ReadSplitTargetSizeKey:  "64",
		}))
	f.seed()
	want := maintScan(t, f.tbl)
	tasks, err := f.tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data, dels := maintTaskFiles(t, f.tbl)
	if len(tasks) <= data || dels == 0 {
		t.Fatalf("seed: %d tasks for %d files, %d delete files: expected split tasks and deletes", len(tasks), data, dels)
	}

	reps, err := Maintain(t.Context(), cfg, "j", nil, MaintainOptions{Compact: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tbl := f.reload()
	maintExpectRows(t, maintScan(t, tbl), want)
	maintExpectSluiceSummary(t, tbl, "7")
	if d, del := maintTaskFiles(t, tbl); d != 2 || del != 0 || reps[0].FilesAfter != 2 || reps[0].DeleteFilesAfter != 0 {
		t.Fatalf("after compaction: %d data files, %d delete files (report %+v); want one per bucket and none", d, del, reps[0])
	}
}
