package lake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"
	"go.uber.org/zap"
)

// MaintainOptions selects and tunes the table maintenance actions of
// `sluice maintain`. Zero values mean the documented defaults.
type MaintainOptions struct {
	// Compact rewrites small data files and applies (then drops) equality
	// and position delete files, in one snapshot per table.
	Compact bool
	// TargetFileSize of compacted files; 0 means Config.TargetFileSize.
	TargetFileSize int64
	// MinInputFiles: a partition is compacted only when it has at least
	// this many small files, or any delete files (default 5).
	MinInputFiles int

	// ExpireSnapshots turns snapshot expiry on.
	ExpireSnapshots bool
	// ExpireOlderThan: snapshots older than this are expired (default 24h).
	ExpireOlderThan time.Duration
	// RetainLast snapshots of the main branch are always kept (default 5).
	RetainLast int

	// RemoveOrphans deletes files under the table location that no
	// snapshot references.
	RemoveOrphans bool
	// OrphanOlderThan: only files older than this are orphan candidates
	// (default 1h). A running job's prepared-but-uncommitted files are
	// younger, so they survive.
	OrphanOlderThan time.Duration

	// DryRun changes nothing; the report says what would have happened.
	DryRun bool
}

// TableReport is the outcome of maintaining one table. File and row counts
// describe the main branch's current snapshot; in a dry run the "after"
// counts are what the run would have produced.
type TableReport struct {
	Table string
	// FilesBefore/After count live data files; DeleteFilesBefore/After
	// live position and equality delete files (deletion vectors included).
	FilesBefore, FilesAfter             int
	DeleteFilesBefore, DeleteFilesAfter int
	SnapshotsExpired                    int
	OrphansRemoved                      int
	// Rows is the record count of the live data files afterwards; rows
	// shadowed by delete files are included until compaction applies them.
	Rows int64
	// Conflict is set when compaction was skipped because a concurrent
	// commit (a running job's row delta) touched the files it rewrote. It
	// is not an error: the next maintain run redoes the compaction.
	Conflict string
}

const (
	maintDefaultMinInputFiles   = 5
	maintDefaultExpireOlderThan = 24 * time.Hour
	maintDefaultRetainLast      = 5
	maintDefaultOrphanOlderThan = time.Hour
	maintDefaultTargetFileSize  = 128 << 20

	// maintPropPrefix marks sluice's snapshot-summary keys; maintenance
	// snapshots carry every such key of the snapshot they replace as head,
	// so that the sink's idempotence check reads the same checkpoint.
	maintPropPrefix = "sluice."
)

// maintTestHookBeforeCommit, when set, runs before every compaction commit
// attempt. Tests use it to commit concurrently at the worst moment.
var maintTestHookBeforeCommit func(ctx context.Context, attempt int)

func (o MaintainOptions) withDefaults(cfg *Config) (MaintainOptions, error) {
	if o.TargetFileSize < 0 || o.MinInputFiles < 0 || o.ExpireOlderThan < 0 || o.RetainLast < 0 || o.OrphanOlderThan < 0 {
		return o, errors.New("maintain: sizes, counts and ages must not be negative")
	}
	if o.TargetFileSize == 0 {
		o.TargetFileSize = cmp.Or(cfg.TargetFileSize, maintDefaultTargetFileSize)
	}
	o.MinInputFiles = cmp.Or(o.MinInputFiles, maintDefaultMinInputFiles)
	o.ExpireOlderThan = cmp.Or(o.ExpireOlderThan, maintDefaultExpireOlderThan)
	o.RetainLast = cmp.Or(o.RetainLast, maintDefaultRetainLast)
	o.OrphanOlderThan = cmp.Or(o.OrphanOlderThan, maintDefaultOrphanOlderThan)
	return o, nil
}

// Maintain runs the selected actions on every table of job: with tables
// empty, the tables in the namespaces cfg.Tables can route to whose
// properties or newest snapshot name job; otherwise exactly the given
// "ns.table" names (a name without a dot is in cfg.Namespace).
//
// Per table the order is compaction, snapshot expiry, orphan removal, so
// that expiry can free the files compaction replaced. A failing table
// does not stop the others: the returned error joins every table's error,
// and the reports cover every table that was attempted.
func Maintain(ctx context.Context, cfg *Config, job string, tables []string, opts MaintainOptions, log *zap.Logger) ([]TableReport, error) {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("component", "maintain"))
	opts, err := opts.withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	if job == "" && len(tables) == 0 {
		// Without a job id every table of a shared catalog would qualify,
		// including ones other systems write.
		return nil, errors.New("maintain: a job id or an explicit table list is required")
	}
	cat, err := OpenCatalog(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := CloseCatalog(cat); err != nil {
			log.Warn("close catalog", zap.Error(err))
		}
	}()

	idents, err := maintSelectTables(ctx, cat, cfg, job, tables)
	if err != nil {
		return nil, err
	}
	if len(idents) == 0 {
		log.Info("no tables to maintain", zap.String("job", job))
	}

	var (
		reports []TableReport
		errs    []error
	)
	for _, ident := range idents {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		name := strings.Join(ident, ".")
		tlog := log.With(zap.String("table", name))
		rep, err := maintainTable(ctx, cat, ident, cfg, opts, tlog)
		reports = append(reports, rep)
		if err != nil {
			tlog.Error("maintenance failed", zap.Error(err))
			errs = append(errs, fmt.Errorf("maintain %s: %w", name, err))
		}
	}
	return reports, errors.Join(errs...)
}

// maintSelectTables resolves which tables to maintain.
func maintSelectTables(ctx context.Context, cat catalog.Catalog, cfg *Config, job string, names []string) ([]table.Identifier, error) {
	if len(names) > 0 {
		out := make([]table.Identifier, 0, len(names))
		for _, n := range names {
			ns, tbl := cfg.Namespace, n
			if i := strings.LastIndex(n, "."); i >= 0 {
				ns, tbl = n[:i], n[i+1:]
			}
			if ns == "" || tbl == "" {
				return nil, fmt.Errorf("maintain: table %q: expected namespace.table", n)
			}
			out = append(out, append(catalog.ToIdentifier(ns), tbl))
		}
		return out, nil
	}

	namespaces, err := maintNamespaces(ctx, cat, cfg)
	if err != nil {
		return nil, err
	}
	var out []table.Identifier
	for _, ns := range namespaces {
		for ident, err := range cat.ListTables(ctx, ns) {
			if errors.Is(err, catalog.ErrNoSuchNamespace) {
				// The job has not created this namespace yet.
				break
			}
			if err != nil {
				return nil, fmt.Errorf("maintain: list tables of %s: %w", strings.Join(ns, "."), err)
			}
			tbl, err := cat.LoadTable(ctx, ident)
			if err != nil {
				return nil, fmt.Errorf("maintain: load %s: %w", strings.Join(ident, "."), err)
			}
			if maintOwnedBy(tbl, job) {
				out = append(out, ident)
			}
		}
	}
	slices.SortFunc(out, func(a, b table.Identifier) int { return slices.Compare(a, b) })
	return out, nil
}

// maintNamespaces returns the namespaces cfg.Tables can route to. A
// template whose namespace depends on the source ({db}) can reach any
// namespace, so then every namespace of the catalog is listed.
func maintNamespaces(ctx context.Context, cat catalog.Catalog, cfg *Config) ([]table.Identifier, error) {
	set := map[string]struct{}{}
	all := false
	for _, tc := range cfg.Tables {
		for _, tmpl := range []string{tc.ODS, tc.DWD} {
			if tmpl == "" {
				continue
			}
			ns, _, ok := strings.Cut(tmpl, ".")
			if !ok {
				set[cfg.Namespace] = struct{}{}
				continue
			}
			if strings.Contains(ns, "{") {
				all = true
				continue
			}
			set[ns] = struct{}{}
		}
	}
	if all {
		nss, err := cat.ListNamespaces(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("maintain: list namespaces: %w", err)
		}
		return nss, nil
	}
	out := make([]table.Identifier, 0, len(set))
	for _, ns := range slices.Sorted(maps.Keys(set)) {
		out = append(out, catalog.ToIdentifier(ns))
	}
	return out, nil
}

// maintOwnedBy reports whether job writes tbl: the sink sets the job id as
// a table property at creation and records its checkpoints in a table
// property and in snapshot summaries; any of them is enough.
func maintOwnedBy(tbl *table.Table, job string) bool {
	props := tbl.Properties()
	if props[PropJobID] == job {
		return true
	}
	if _, ok := props[PropTableCheckpointPrefix+job]; ok {
		return true
	}
	if s := tbl.CurrentSnapshot(); s != nil && s.Summary != nil && s.Summary.Properties[PropJobID] == job {
		return true
	}
	return false
}

func maintainTable(ctx context.Context, cat catalog.Catalog, ident table.Identifier, cfg *Config, opts MaintainOptions, log *zap.Logger) (TableReport, error) {
	rep := TableReport{Table: strings.Join(ident, ".")}
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return rep, fmt.Errorf("load table: %w", err)
	}
	before, err := maintCountFiles(ctx, tbl)
	if err != nil {
		return rep, err
	}
	rep.FilesBefore, rep.DeleteFilesBefore = before.data, before.deletes
	rep.FilesAfter, rep.DeleteFilesAfter, rep.Rows = before.data, before.deletes, before.rows

	if opts.Compact {
		res, err := maintCompact(ctx, cat, tbl, cfg, opts, log)
		if err != nil {
			return rep, fmt.Errorf("compact: %w", err)
		}
		rep.Conflict = res.conflict
		switch {
		case res.table != nil:
			tbl = res.table
			after, err := maintCountFiles(ctx, tbl)
			if err != nil {
				return rep, err
			}
			rep.FilesAfter, rep.DeleteFilesAfter, rep.Rows = after.data, after.deletes, after.rows
		case opts.DryRun && res.planned:
			rep.FilesAfter = before.data - res.rewritten + res.estOutput
			rep.DeleteFilesAfter = before.deletes - res.deletesDropped
		}
	}

	// Deleting files of a table with gc.enabled=false may corrupt another
	// table that shares them (Iceberg's rule, which the library enforces
	// for expiry); orphan removal honours it too.
	gc := strings.EqualFold(tbl.Properties().Get(table.GCEnabledKey, "true"), "true")
	if (opts.ExpireSnapshots || opts.RemoveOrphans) && !gc {
		log.Warn("gc.enabled is false; skipping snapshot expiry and orphan removal")
		return rep, nil
	}

	if opts.ExpireSnapshots {
		n, err := maintExpire(ctx, cat, ident, cfg, opts, log)
		if err != nil {
			return rep, fmt.Errorf("expire snapshots: %w", err)
		}
		rep.SnapshotsExpired = n
	}

	if opts.RemoveOrphans {
		n, err := maintRemoveOrphans(ctx, cat, ident, opts, log)
		if err != nil {
			return rep, fmt.Errorf("remove orphans: %w", err)
		}
		rep.OrphansRemoved = n
	}
	return rep, nil
}

type maintFileCounts struct {
	data, deletes int
	rows          int64
}

// maintCountFiles counts the live files of the current snapshot from its
// manifests: exact, and cheap next to any rewrite.
func maintCountFiles(ctx context.Context, tbl *table.Table) (maintFileCounts, error) {
	var c maintFileCounts
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return c, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return c, fmt.Errorf("open table io: %w", err)
	}
	mans, err := snap.Manifests(fs)
	if err != nil {
		return c, fmt.Errorf("read manifest list: %w", err)
	}
	for _, m := range mans {
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return c, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
			}
			df := e.DataFile()
			if df.ContentType() == iceberg.EntryContentData {
				c.data++
				c.rows += df.Count()
			} else {
				c.deletes++
			}
		}
		if err := ctx.Err(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maintSummaryProps returns the sluice keys of a snapshot's summary. The
// sink reads the newest snapshot's sluice.job-id and sluice.checkpoint-id
// to decide whether a checkpoint is committed; a maintenance snapshot that
// lacked them would hide the checkpoint and cause a duplicate commit.
func maintSummaryProps(s *table.Snapshot) iceberg.Properties {
	props := iceberg.Properties{}
	if s == nil || s.Summary == nil {
		return props
	}
	for k, v := range s.Summary.Properties {
		if strings.HasPrefix(k, maintPropPrefix) {
			props[k] = v
		}
	}
	return props
}

type maintCompactResult struct {
	// table is the committed table, nil when nothing was committed.
	table *table.Table
	// planned is set when there was something to compact; the counts
	// below describe the plan.
	planned        bool
	rewritten      int
	estOutput      int
	deletesDropped int
	conflict       string
}

// maintCompact rewrites the small files of every partition that has at
// least MinInputFiles of them, or any delete files, applying deletes while
// reading, and drops the delete files that no surviving data file needs.
// Everything is planned from one snapshot and committed as one rewrite
// snapshot, so a reader never sees rows twice or deletes lost.
func maintCompact(ctx context.Context, cat catalog.Catalog, tbl *table.Table, cfg *Config, opts MaintainOptions, log *zap.Logger) (maintCompactResult, error) {
	var res maintCompactResult
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return res, nil
	}
	tasks, err := tbl.Scan(table.WithSnapshotID(snap.SnapshotID)).PlanFiles(ctx)
	if err != nil {
		return res, fmt.Errorf("plan files: %w", err)
	}
	groups, rewritten, err := maintPlan(maintWholeFiles(tasks), opts)
	if err != nil {
		return res, err
	}
	if len(groups) == 0 {
		log.Info("nothing to compact", zap.Int("data_files", len(rewritten)))
		return res, nil
	}

	fs, err := tbl.FS(ctx)
	if err != nil {
		return res, fmt.Errorf("open table io: %w", err)
	}
	paths := make(map[string]struct{}, len(rewritten))
	for _, df := range rewritten {
		paths[df.FilePath()] = struct{}{}
	}
	// Dead deletes are decided against the planning snapshot: the rewrite
	// validator rejects any delete committed after it, and data committed
	// after it has a higher sequence number than every delete we drop.
	deadEq, err := compaction.CollectDeadEqualityDeletesWithSpecs(ctx, fs, tbl.Metadata(), snap, paths)
	if err != nil {
		return res, fmt.Errorf("collect dead equality deletes: %w", err)
	}
	deadPos, err := compaction.CollectDeadPositionDeletes(ctx, fs, snap, paths)
	if err != nil {
		return res, fmt.Errorf("collect dead position deletes: %w", err)
	}
	var estOutput int
	var bytesIn int64
	for _, g := range groups {
		estOutput += int(max(1, (g.TotalSizeBytes+opts.TargetFileSize-1)/opts.TargetFileSize))
		bytesIn += g.TotalSizeBytes
	}
	res.planned = true
	res.rewritten = len(rewritten)
	res.estOutput = estOutput

	if opts.DryRun {
		dead := maintDedupeDeletes(deadEq, deadPos, nil)
		res.deletesDropped = len(dead)
		log.Info("dry run: would compact",
			zap.Int("groups", len(groups)), zap.Int("data_files", len(rewritten)),
			zap.Int64("bytes", bytesIn), zap.Int("est_output_files", estOutput),
			zap.Int("delete_files_dropped", len(dead)))
		return res, nil
	}

	started := time.Now()
	groupOpts := []table.CompactionGroupOption{table.WithCompactionTargetFileSize(opts.TargetFileSize)}
	if cfg.RowGroupRows > 0 {
		// File sizes are only checked between row groups.
		groupOpts = append(groupOpts, table.WithCompactionParquetRowGroupLimit(cfg.RowGroupRows))
	}
	var (
		added []iceberg.DataFile
		dvs   []iceberg.DataFile
	)
	for _, g := range groups {
		gr, err := table.ExecuteCompactionGroup(ctx, tbl, g, groupOpts...)
		added = append(added, gr.NewDataFiles...)
		if err != nil {
			maintRemoveFiles(fs, added, log)
			return res, fmt.Errorf("rewrite group %q: %w", g.PartitionKey, err)
		}
		// A deletion vector belongs to exactly one data file, and scan
		// planning attaches it only to that file's task, so it is dead once
		// the task is rewritten.
		dvs = append(dvs, gr.SafeDeletionVectors...)
	}
	dropped := maintDedupeDeletes(deadEq, deadPos, dvs)
	res.deletesDropped = len(dropped)

	committed, conflict, err := maintCommitRewrite(ctx, cat, tbl, snap, rewritten, added, dropped, cfg.CommitRetries, log)
	if errors.Is(err, errMaintNotCommitted) {
		maintRemoveFiles(fs, added, log)
	}
	if err != nil {
		return res, err
	}
	if conflict != "" {
		// Nothing was committed, so the new files are garbage right away.
		maintRemoveFiles(fs, added, log)
		log.Warn("compaction skipped: concurrent commit conflicts; the next run redoes it", zap.String("reason", conflict))
		res.conflict = conflict
		return res, nil
	}
	res.table = committed
	log.Info("compacted",
		zap.Int("groups", len(groups)), zap.Int("data_files_removed", len(rewritten)),
		zap.Int("data_files_added", len(added)), zap.Int("delete_files_removed", len(dropped)),
		zap.Int64("bytes_in", bytesIn), zap.Duration("took", time.Since(started)))
	return res, nil
}

// maintWholeFiles merges the byte-range splits that scan planning makes of
// large Parquet files back into one task per file: a rewrite replaces whole
// files, and ReplaceFiles rejects a file listed twice.
func maintWholeFiles(tasks []table.FileScanTask) []table.FileScanTask {
	out := make([]table.FileScanTask, 0, len(tasks))
	seen := make(map[string]struct{}, len(tasks))
	for _, t := range tasks {
		p := t.File.FilePath()
		if _, ok := seen[p]; ok {
			continue
		}
		seen[p] = struct{}{}
		t.Start, t.Length = 0, t.File.FileSizeBytes()
		out = append(out, t)
	}
	return out
}

// maintPlan picks the files to rewrite. The library's bin-pack planner
// selects undersized files and every file with a delete attached (so
// that the partition's deletes become dead) and packs them per partition
// into target-size groups; a partition then qualifies only with enough
// small files or any delete file, which is our MinInputFiles rule.
func maintPlan(tasks []table.FileScanTask, opts MaintainOptions) ([]table.CompactionTaskGroup, []iceberg.DataFile, error) {
	target := opts.TargetFileSize
	pc := compaction.DefaultConfig()
	pc.TargetFileSizeBytes = target
	pc.MinFileSizeBytes = target * 3 / 4
	pc.MaxFileSizeBytes = target * 9 / 5
	pc.MinInputFiles = 1
	pc.DeleteFileThreshold = 1
	plan, err := pc.PlanCompaction(tasks)
	if err != nil {
		return nil, nil, fmt.Errorf("plan compaction: %w", err)
	}
	type partition struct {
		files, deletes int
	}
	parts := map[string]*partition{}
	for _, g := range plan.Groups {
		p := parts[g.PartitionKey]
		if p == nil {
			p = &partition{}
			parts[g.PartitionKey] = p
		}
		p.files += len(g.Tasks)
		p.deletes += g.DeleteFileCount
	}
	var (
		groups    []table.CompactionTaskGroup
		rewritten []iceberg.DataFile
	)
	for _, g := range plan.Groups {
		p := parts[g.PartitionKey]
		if p.files < opts.MinInputFiles && p.deletes == 0 {
			continue
		}
		// Rewriting one file without deletes into one file gains nothing.
		if len(g.Tasks) == 1 && g.DeleteFileCount == 0 {
			continue
		}
		groups = append(groups, table.CompactionTaskGroup{
			PartitionKey: g.PartitionKey, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes,
		})
		for _, t := range g.Tasks {
			rewritten = append(rewritten, t.File)
		}
	}
	return groups, rewritten, nil
}

// maintDedupeDeletes merges delete-file lists, each file once: the dead
// lists overlap, and ReplaceFiles rejects duplicate removals.
func maintDedupeDeletes(lists ...[]iceberg.DataFile) []iceberg.DataFile {
	var out []iceberg.DataFile
	seen := map[string]struct{}{}
	for _, l := range lists {
		for _, df := range l {
			key := df.FilePath()
			if ref := df.ReferencedDataFile(); ref != nil && table.IsDeletionVector(df) {
				// Several deletion vectors can share one Puffin file.
				key += "\x00" + *ref
			}
			if _, ok := seen[key]; ok {
				continue
			}
			seen[key] = struct{}{}
			out = append(out, df)
		}
	}
	return out
}

// errMaintNotCommitted marks compaction errors after which the rewrite
// certainly did not land, so its output files can be deleted at once.
var errMaintNotCommitted = errors.New("not committed")

// maintCommitRewrite commits the rewrite on top of the planning snapshot,
// rebasing it over concurrent appends. It returns a non-empty conflict
// when a concurrent commit makes the rewrite unsafe or the retries are
// spent; then nothing was committed. An error wrapping
// errMaintNotCommitted failed before the catalog took the commit; any
// other error leaves the outcome unknown, so the new files must stay
// (orphan removal deletes them later if they were not committed).
func maintCommitRewrite(ctx context.Context, cat catalog.Catalog, tbl *table.Table, planned *table.Snapshot,
	oldFiles, newFiles, deletes []iceberg.DataFile, retries int, log *zap.Logger,
) (*table.Table, string, error) {
	ident := tbl.Identifier()
	base := tbl
	for attempt := 0; ; attempt++ {
		if maintTestHookBeforeCommit != nil {
			maintTestHookBeforeCommit(ctx, attempt)
		}
		txn := base.NewTransaction()
		// Pin the branch head: our summary copies the head's checkpoint, and
		// a catalog that replays a commit over a newer head (REST) would
		// leave the newest snapshot naming an older checkpoint.
		if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
			return nil, "", fmt.Errorf("%w: pin branch: %w", errMaintNotCommitted, err)
		}
		rw := txn.NewRewrite(maintSummaryProps(base.CurrentSnapshot()))
		for _, df := range oldFiles {
			rw.DeleteFile(df)
		}
		for _, df := range newFiles {
			rw.AddDataFile(df)
		}
		for _, df := range deletes {
			rw.DeleteFile(df)
		}
		if err := rw.Commit(ctx); err != nil {
			if attempt > 0 {
				// Staging on a rebased head fails when a concurrent commit
				// removed a file we replace (another compaction, a delete).
				return nil, "rebase: " + err.Error(), nil
			}
			return nil, "", fmt.Errorf("%w: stage rewrite: %w", errMaintNotCommitted, err)
		}
		committed, err := txn.Commit(ctx)
		if err == nil || committed != nil {
			if err != nil {
				// The catalog accepted the commit; only a post-commit hook
				// (old metadata cleanup) failed.
				log.Warn("post-commit cleanup failed", zap.Error(err))
			}
			return committed, "", nil
		}
		if maintRefused(err) {
			return nil, err.Error(), nil
		}
		if !maintLostRace(err) {
			return nil, "", fmt.Errorf("commit rewrite (outcome unknown): %w", err)
		}
		if attempt >= retries {
			return nil, fmt.Sprintf("gave up after %d concurrent commits: %v", attempt+1, err), nil
		}
		fresh, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return nil, "", fmt.Errorf("%w: reload table after lost race: %w", errMaintNotCommitted, err)
		}
		if reason := maintRebaseBlocker(tbl, planned, fresh); reason != "" {
			return nil, reason, nil
		}
		log.Info("lost commit race to an append; rebasing compaction", zap.Int("attempt", attempt+1))
		base = fresh
	}
}

// maintRefused reports a commit that the library's conflict validation
// rejected: a concurrent commit added deletes for, or removed, files the
// rewrite replaces.
func maintRefused(err error) bool {
	return errors.Is(err, table.ErrConflictingDeleteFiles) || errors.Is(err, table.ErrConflictingDataFiles) ||
		errors.Is(err, table.ErrDataFilesMissing) || errors.Is(err, table.ErrCommitDiverged)
}

// maintLostRace reports a commit that certainly did not land because the
// branch moved. The SQL catalog reports a failed requirement as a plain
// error, not table.ErrCommitFailed, so its text is the only signal.
func maintLostRace(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || strings.Contains(strings.ToLower(err.Error()), "requirement failed")
}

// maintRebaseBlocker returns why the rewrite planned on snapshot planned
// cannot be committed on fresh, or "" when every snapshot committed since
// is a plain append. Appended data carries higher sequence numbers than
// every delete the rewrite drops, so neither the rewritten rows nor the
// appended ones change meaning. Any other operation (a row delta with
// equality deletes, an overwrite, another compaction) may delete rows we
// rewrote, and a schema or spec change may not fit our files.
func maintRebaseBlocker(tbl *table.Table, planned *table.Snapshot, fresh *table.Table) string {
	if fresh.Metadata().TableUUID() != tbl.Metadata().TableUUID() {
		return "table was replaced"
	}
	if fresh.Schema().ID != tbl.Schema().ID {
		return "schema changed concurrently"
	}
	if fresh.Metadata().DefaultPartitionSpec() != tbl.Metadata().DefaultPartitionSpec() {
		return "partition spec changed concurrently"
	}
	for s := fresh.CurrentSnapshot(); ; {
		if s == nil {
			return "planning snapshot is no longer an ancestor of main"
		}
		if s.SnapshotID == planned.SnapshotID {
			return ""
		}
		if s.Summary == nil || s.Summary.Operation != table.OpAppend {
			op := "unknown"
			if s.Summary != nil {
				op = string(s.Summary.Operation)
			}
			return fmt.Sprintf("concurrent %s snapshot %d may delete rewritten rows", op, s.SnapshotID)
		}
		if s.ParentSnapshotID == nil {
			return "planning snapshot is no longer an ancestor of main"
		}
		s = fresh.SnapshotByID(*s.ParentSnapshotID)
	}
}

// maintRemoveFiles deletes files written by a rewrite that did not commit.
// Failures are only logged: orphan removal catches what remains.
func maintRemoveFiles(fs iceio.IO, files []iceberg.DataFile, log *zap.Logger) {
	for _, df := range files {
		if err := fs.Remove(df.FilePath()); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			log.Warn("remove uncommitted compaction output", zap.String("file", df.FilePath()), zap.Error(err))
		}
	}
}

// maintExpire expires snapshots older than ExpireOlderThan beyond the
// newest RetainLast. The library deletes the manifests, manifest lists and
// data files only the expired snapshots referenced once the commit lands.
// Expiry writes no files, so a lost race is simply redone on the fresh
// table; it never touches table properties, so sluice.checkpoint.<job>
// survives, and the head snapshot (with its sluice summary) is always kept.
func maintExpire(ctx context.Context, cat catalog.Catalog, ident table.Identifier, cfg *Config, opts MaintainOptions, log *zap.Logger) (int, error) {
	for attempt := 0; ; attempt++ {
		tbl, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return 0, fmt.Errorf("load table: %w", err)
		}
		txn := tbl.NewTransaction()
		if err := txn.ExpireSnapshots(table.WithRetainLast(opts.RetainLast), table.WithOlderThan(opts.ExpireOlderThan)); err != nil {
			return 0, err
		}
		staged, err := txn.StagedTable()
		if err != nil {
			return 0, fmt.Errorf("stage expiry: %w", err)
		}
		n := len(tbl.Metadata().Snapshots()) - len(staged.Metadata().Snapshots())
		if n <= 0 {
			log.Info("no snapshots to expire", zap.Int("snapshots", len(tbl.Metadata().Snapshots())))
			return 0, nil
		}
		if opts.DryRun {
			log.Info("dry run: would expire snapshots", zap.Int("expired", n))
			return n, nil
		}
		committed, err := txn.Commit(ctx)
		if err == nil || committed != nil {
			if err != nil {
				log.Warn("expired snapshots, but deleting their files failed; orphan removal will", zap.Error(err))
			}
			log.Info("expired snapshots", zap.Int("expired", n), zap.Int("kept", len(staged.Metadata().Snapshots())))
			return n, nil
		}
		if !maintLostRace(err) || attempt >= cfg.CommitRetries {
			return 0, fmt.Errorf("commit expiry: %w", err)
		}
		log.Info("lost commit race; retrying snapshot expiry", zap.Int("attempt", attempt+1))
	}
}

// maintRemoveOrphans deletes files under the table location that no
// snapshot references and that are older than OrphanOlderThan. The age
// bound is what protects a running job: files it prepared for a checkpoint
// not yet committed are unreferenced but young.
func maintRemoveOrphans(ctx context.Context, cat catalog.Catalog, ident table.Identifier, opts MaintainOptions, log *zap.Logger) (int, error) {
	// Load after compaction and expiry so that their changes count.
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return 0, fmt.Errorf("load table: %w", err)
	}
	res, err := tbl.DeleteOrphanFiles(ctx,
		table.WithFilesOlderThan(opts.OrphanOlderThan),
		table.WithDryRun(opts.DryRun))
	if err != nil {
		return 0, err
	}
	if opts.DryRun {
		for _, p := range res.OrphanFileLocations {
			log.Debug("dry run: would remove orphan", zap.String("file", p))
		}
		log.Info("dry run: would remove orphans", zap.Int("files", len(res.OrphanFileLocations)), zap.Int64("bytes", res.TotalSizeBytes))
		return len(res.OrphanFileLocations), nil
	}
	log.Info("removed orphans", zap.Int("files", len(res.DeletedFiles)), zap.Int64("bytes", res.TotalSizeBytes))
	return len(res.DeletedFiles), nil
}
