package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/codec"
	"github.com/apache/iceberg-go/table"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// Snapshot summary keys and the table property that make commits idempotent.
const (
	PropJobID        = "sluice.job-id"
	PropCheckpointID = "sluice.checkpoint-id"
	// PropPositionPrefix + source name holds that source's position summary.
	PropPositionPrefix = "sluice.position."
	// PropTableCheckpointPrefix + job id is a table property holding the
	// newest checkpoint of that job the table contains. It is set in the same
	// commit as the data, so it survives snapshot expiry.
	PropTableCheckpointPrefix = "sluice.checkpoint."
)

// Sink is the two-phase Iceberg sink.
type Sink struct {
	cfg *Config
	job string
	log *zap.Logger
	cat catalog.Catalog

	// by source schema pointer: the targets of that source table
	routes map[routeKey][]*target
	// by "ns.table": every table written since Open
	targets map[string]*target
	// inflight are the segments being written in the background, oldest
	// first: one while the task loop keeps buffering, two at Prepare, when
	// the last segment is written beside the one still in flight (both are
	// in memory already). Prepare and Close join them.
	inflight []*flushJob
	// hints are the renames source schemas announced, by table, in
	// version order (see evolve.go).
	hints map[pipeline.TableID][]renameHint
}

// flushJob writes one drained segment. done is closed when seg and err are set.
type flushJob struct {
	t    *target
	w    segWriter
	done chan struct{}
	seg  preparedSegment
	err  error
}

// segWriter is what a segment is written against, fixed when it is
// drained: a schema change may follow while it is written.
type segWriter struct {
	tbl    *table.Table // the table as the files' schema has it (staged changes included)
	schema *arrow.Schema
	eqIDs  []int
}

type target struct {
	Target
	ident table.Identifier
	// tbl is the table as committed; wtbl is tbl with the schema changes
	// staged since (see evolve.go), the one files are written against.
	tbl    *table.Table
	wtbl   *table.Table
	buf    *buffer
	src    *pipeline.Schema
	eqIDs  []int
	logger *zap.Logger
	// ghosts are the field ids of columns added and dropped within the
	// checkpoint being buffered: staged under a placeholder name, deleted
	// by the next checkpoint (see evolve.go).
	ghosts []int
	// segments flushed since the last Prepare, in order
	segments []preparedSegment
}

// NewSink checks the configuration; Open connects.
func NewSink(cfg *Config, job string, log *zap.Logger) (*Sink, error) {
	if job == "" {
		return nil, errors.New("lake: job id is required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Sink{
		cfg: cfg, job: job, log: log.With(zap.String("component", "lake")),
		routes: map[routeKey][]*target{}, targets: map[string]*target{},
		hints: map[pipeline.TableID][]renameHint{},
	}, nil
}

// Open connects to the catalog.
func (s *Sink) Open(ctx context.Context) error {
	cat, err := OpenCatalog(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.cat = cat
	return nil
}

// Close releases buffers and the catalog.
func (s *Sink) Close() error {
	joinErr := s.join() // its files are orphans unless a later run commits them
	for _, t := range s.targets {
		if t.buf != nil {
			t.buf.release()
		}
	}
	if s.cat == nil {
		return joinErr
	}
	return errors.Join(joinErr, CloseCatalog(s.cat))
}

// TablesWritten returns the "ns.table" names this sink has written to.
func (s *Sink) TablesWritten() []string {
	return slices.Sorted(maps.Keys(s.targets))
}

// Write routes a batch to its tables' buffers, creating tables on first sight.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	rk := routeKey{b.Schema, b.Layer}
	ts, ok := s.routes[rk]
	if !ok {
		var err error
		if ts, err = s.route(ctx, b.Schema, b.Layer); err != nil {
			return err
		}
		s.routes[rk] = ts
	}
	s.noteRenames(b.Schema)
	for _, t := range ts {
		if t.src != b.Schema {
			if err := s.evolve(ctx, t, b); err != nil {
				return err
			}
		}
		for i := range b.Records {
			if err := t.buf.add(&b.Records[i]); err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
			if t.buf.rows >= int64(s.cfg.FlushRows) {
				if err := s.flush(ctx, t); err != nil {
					return fmt.Errorf("table %s: %w", t, err)
				}
			}
		}
	}
	return nil
}

// routeKey keys the routing cache: a schema's batches go to different
// tables by layer.
type routeKey struct {
	schema *pipeline.Schema
	layer  pipeline.Layer
}

// takes reports whether a batch of layer l is for a table of mode m: the
// changelog takes the raw layer, the current-state table the clean one.
func takes(l pipeline.Layer, m Mode) bool {
	switch l {
	case pipeline.LayerAll:
		return true
	case pipeline.LayerRaw:
		return m == ModeAppend
	default:
		return m == ModeUpsert
	}
}

func (s *Sink) route(ctx context.Context, ps *pipeline.Schema, layer pipeline.Layer) ([]*target, error) {
	var routes []Target
	if ps.Table == pipeline.DeadLetterTable {
		// Dead letters go to their table whatever their layer.
		routes = []Target{s.cfg.DeadLetterTarget(s.job)}
	} else {
		all, err := s.cfg.Route(ps.Table)
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			if takes(layer, r.Mode) {
				routes = append(routes, r)
			}
		}
	}
	var err error
	var out []*target
	for _, r := range routes {
		key := r.String()
		t, ok := s.targets[key]
		// A target already open for another schema version of the table
		// evolves when a batch with this one reaches it (Write).
		if !ok {
			if t, err = s.openTarget(ctx, r, ps); err != nil {
				return nil, err
			}
			s.targets[key] = t
		}
		out = append(out, t)
	}
	return out, nil
}

func sameShape(a, b *pipeline.Schema) bool {
	return slices.Equal(a.Columns, b.Columns) && slices.Equal(a.Key, b.Key)
}

// evolve moves target t to the schema of batch b: the rows buffered under
// the old schema become a segment, the schema change is staged, and a new
// buffer takes the new shape (see evolve.go).
func (s *Sink) evolve(ctx context.Context, t *target, b *pipeline.Batch) error {
	ps := b.Schema
	renames := s.renamesFor(ps, t.src.Version)
	if sameShape(t.src, ps) && len(renames) == 0 {
		t.src, t.buf.src = ps, ps
		return nil
	}
	ops, err := planEvolution(t.String(), t.Mode, t.wtbl.Schema(), t.src, ps, renames)
	if err != nil {
		if len(b.Records) > 0 {
			err = fmt.Errorf("%w (at %s)", err, b.Records[0].Position)
		}
		return err
	}
	// A column added since the last commit and dropped again keeps its
	// field id until the next checkpoint: files of this one use it.
	lastCommitted := t.tbl.Metadata().LastColumnID()
	for i, o := range ops {
		if o.Op != "delete" {
			continue
		}
		if f, ok := t.wtbl.Schema().FindFieldByName(o.Name); ok && f.ID > lastCommitted {
			ops[i] = schemaOp{Op: "rename", Name: o.Name, To: ghostName(f.ID)}
			t.ghosts = append(t.ghosts, f.ID)
		}
	}
	if err := s.flush(ctx, t); err != nil {
		return fmt.Errorf("table %s: %w", t, err)
	}
	if len(ops) > 0 {
		wtbl, err := stageOps(t.wtbl, ops)
		if err != nil {
			return fmt.Errorf("table %s: stage schema change (%s): %w", t, describeOps(ops), err)
		}
		t.wtbl = wtbl
		t.logger.Info("schema change staged", zap.String("source", ps.Table.String()),
			zap.Int("from_version", t.src.Version), zap.Int("to_version", ps.Version),
			zap.String("changes", describeOps(ops)))
	}
	if err := t.rebuild(ps); err != nil {
		return fmt.Errorf("table %s: %w", t, err)
	}
	return nil
}

// rebuild points t at source schema ps and the schema of t.wtbl: a new
// (empty) buffer and the key's field ids.
func (t *target) rebuild(ps *pipeline.Schema) error {
	sc, err := table.SchemaToArrowSchema(t.wtbl.Schema(), nil, true, false)
	if err != nil {
		return err
	}
	buf, err := newBuffer(t.Mode, sc, ps)
	if err != nil {
		return err
	}
	var eqIDs []int
	if t.Mode == ModeUpsert {
		for _, k := range ps.Key {
			f, ok := t.wtbl.Schema().FindFieldByName(ps.Columns[k].Name)
			if !ok {
				return fmt.Errorf("table lacks key column %s", ps.Columns[k].Name)
			}
			eqIDs = append(eqIDs, f.ID)
		}
	}
	if t.buf != nil {
		t.buf.release()
	}
	t.buf, t.src, t.eqIDs = buf, ps, eqIDs
	return nil
}

// openTarget loads or creates the table and makes it fit the source: a
// table that lacks columns of the source, or has them narrower, evolves
// (staged, committed with the next checkpoint); one whose columns cannot
// take the source's is an error.
func (s *Sink) openTarget(ctx context.Context, r Target, ps *pipeline.Schema) (*target, error) {
	want, err := icebergSchema(ps, r.Mode)
	if err != nil {
		return nil, err
	}
	ident := catalog.ToIdentifier(r.Namespace, r.Name)
	log := s.log.With(zap.String("table", r.String()))
	tbl, err := s.cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = s.createTable(ctx, r, ident, want, ps)
		if err == nil {
			log.Info("created table", zap.String("mode", string(r.Mode)), zap.String("location", tbl.Location()))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", r, err)
	}
	if r.Mode == ModeUpsert && tbl.Metadata().Version() < 2 {
		return nil, fmt.Errorf("table %s is format v1: upserts need equality deletes (v2+)", r)
	}
	t := &target{Target: r, ident: ident, tbl: tbl, wtbl: tbl, logger: log}
	ops, err := planEvolution(r.String(), r.Mode, tbl.Schema(), nil, ps, s.renamesFor(ps, ps.Version-1))
	if err != nil {
		return nil, fmt.Errorf("table %s exists with another shape: %w", r, err)
	}
	// Placeholders of columns added and dropped in a checkpoint whose
	// run did not live to delete them.
	for _, f := range tbl.Schema().Fields() {
		if strings.HasPrefix(f.Name, ghostPrefix) && !f.Required {
			ops = append(ops, schemaOp{Op: "delete", Name: f.Name})
		}
	}
	if len(ops) > 0 {
		if t.wtbl, err = stageOps(tbl, ops); err != nil {
			return nil, fmt.Errorf("table %s: stage schema change (%s): %w", r, describeOps(ops), err)
		}
		log.Info("schema change staged: the table is behind its source", zap.String("source", ps.Table.String()),
			zap.String("changes", describeOps(ops)))
	}
	if err := t.rebuild(ps); err != nil {
		return nil, fmt.Errorf("table %s: %w", r, err)
	}
	return t, nil
}

func (s *Sink) createTable(ctx context.Context, r Target, ident table.Identifier, sc *iceberg.Schema, ps *pipeline.Schema) (*table.Table, error) {
	ns := catalog.ToIdentifier(r.Namespace)
	if exists, err := s.cat.CheckNamespaceExists(ctx, ns); err != nil {
		return nil, fmt.Errorf("check namespace %s: %w", r.Namespace, err)
	} else if !exists {
		if err := s.cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return nil, fmt.Errorf("create namespace %s: %w", r.Namespace, err)
		}
	}
	spec, err := partitionSpec(r.Table.Partition, sc, ps, r.Mode)
	if err != nil {
		return nil, err
	}
	props := s.tableProperties(r.Table.Properties)
	tbl, err := s.cat.CreateTable(ctx, ident, sc, catalog.WithPartitionSpec(&spec), catalog.WithProperties(props))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		// Another writer created it between our load and create.
		return s.cat.LoadTable(ctx, ident)
	}
	return tbl, err
}

// tableProperties are the properties of tables sluice creates: sized files
// (the row-group limit lets the target file size take effect, since files
// roll only between row groups), merged manifests and bounded metadata.
func (s *Sink) tableProperties(extra map[string]string) iceberg.Properties {
	props := iceberg.Properties{
		table.PropertyFormatVersion:               strconv.Itoa(s.cfg.FormatVersion),
		table.WriteTargetFileSizeBytesKey:         strconv.FormatInt(s.cfg.TargetFileSize, 10),
		table.ParquetRowGroupLimitKey:             strconv.Itoa(s.cfg.RowGroupRows),
		table.ManifestMergeEnabledKey:             "true",
		table.MetadataDeleteAfterCommitEnabledKey: "true",
		table.MetadataPreviousVersionsMaxKey:      "20",
		"write.parquet.compression-codec":         "zstd",
		PropJobID:                                 s.job,
	}
	for k, v := range extra {
		props[k] = v
	}
	return props
}

// preparedTable is one table's share of a prepared checkpoint. Files are
// encoded with iceberg-go's DataFile codec against the schema and spec they
// were written with, so that recovery can decode them from the manifest.
type preparedTable struct {
	Namespace     string            `json:"ns"`
	Name          string            `json:"name"`
	Mode          Mode              `json:"mode"`
	SchemaID      int               `json:"schema_id"`
	SpecID        int               `json:"spec_id"`
	FormatVersion int               `json:"format_version"`
	EqualityIDs   []int             `json:"equality_ids,omitempty"`
	Segments      []preparedSegment `json:"segments"`
	Rows          int64             `json:"rows"`
	DeleteRows    int64             `json:"delete_rows"`
}

// preparedSegment is one flush of a table's buffer. An upsert segment's
// deletes remove its keys from every earlier snapshot, including the
// earlier segments of the same checkpoint, so segments commit in order as
// successive snapshots.
type preparedSegment struct {
	// Changes is the checkpoint's schema change, applied before this
	// segment's files (the first written under a staged schema), and
	// Evolved the schema it gives. A segment may carry a change only.
	Changes []schemaOp      `json:"changes,omitempty"`
	Evolved json.RawMessage `json:"evolved,omitempty"`
	// Schema is the schema the files were written with when it is not yet
	// committed (absent: the table's SchemaID).
	Schema     json.RawMessage `json:"schema,omitempty"`
	Data       [][]byte        `json:"data,omitempty"`
	Deletes    [][]byte        `json:"deletes,omitempty"`
	Rows       int64           `json:"rows"`
	DeleteRows int64           `json:"delete_rows"`
}

type prepared struct {
	Tables []preparedTable `json:"tables"`
}

// Prepare writes every buffered row into data and delete files. Nothing is
// committed: the files are invisible until Commit.
func (s *Sink) Prepare(ctx context.Context, id uint64) ([]byte, error) {
	var out prepared
	keys := slices.Sorted(maps.Keys(s.targets))
	for _, key := range keys {
		if err := s.flushUpTo(ctx, s.targets[key], 2); err != nil {
			return nil, fmt.Errorf("table %s: %w", key, err)
		}
	}
	if err := s.join(); err != nil {
		return nil, err
	}
	for _, key := range keys {
		t := s.targets[key]
		if err := t.attachSchemaChange(); err != nil {
			return nil, fmt.Errorf("table %s: %w", key, err)
		}
		if len(t.segments) == 0 {
			continue
		}
		pt := preparedTable{
			Namespace: t.Namespace, Name: t.Name, Mode: t.Mode,
			SchemaID: t.tbl.Schema().ID, SpecID: specID(t.tbl), FormatVersion: t.tbl.Metadata().Version(),
			EqualityIDs: t.eqIDs, Segments: t.segments,
		}
		for _, seg := range t.segments {
			pt.Rows += seg.Rows
			pt.DeleteRows += seg.DeleteRows
		}
		t.segments = nil
		out.Tables = append(out.Tables, pt)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode prepared files: %w", err)
	}
	return b, nil
}

// flush drains a table's buffered rows and writes them as one segment of
// the next checkpoint in the background, so that encoding Parquet overlaps
// with buffering the next rows. At most one segment is in flight: memory
// stays at about two buffers, and segments stay in order.
func (s *Sink) flush(ctx context.Context, t *target) error {
	return s.flushUpTo(ctx, t, 1)
}

// flushUpTo is flush with at most maxInflight segments written at once.
func (s *Sink) flushUpTo(ctx context.Context, t *target, maxInflight int) error {
	if t.buf.empty() {
		return nil
	}
	for len(s.inflight) >= maxInflight {
		if err := s.joinOldest(); err != nil {
			return err
		}
	}
	d, err := t.buf.drain(ctx)
	if err != nil {
		return err
	}
	seg, err := t.startSegment()
	if err != nil {
		return err
	}
	job := &flushJob{t: t, w: segWriter{tbl: t.wtbl, schema: t.buf.schema, eqIDs: t.eqIDs}, done: make(chan struct{})}
	s.inflight = append(s.inflight, job)
	go func() {
		defer close(job.done)
		job.seg, job.err = s.writeSegment(ctx, job.w, t.logger, seg, d)
	}()
	return nil
}

// startSegment begins t's next segment: it names the schema its files are
// written with when that is not committed yet.
func (t *target) startSegment() (preparedSegment, error) {
	var seg preparedSegment
	if t.wtbl != t.tbl {
		sc, err := schemaJSON(t.wtbl.Schema())
		if err != nil {
			return seg, err
		}
		seg.Schema = sc
	}
	return seg, nil
}

// attachSchemaChange puts the checkpoint's schema change, if any, on the
// first segment written under a staged schema, or on a segment of its
// own when no rows followed it.
func (t *target) attachSchemaChange() error {
	if t.wtbl == t.tbl {
		return nil
	}
	if sameFields(t.tbl.Schema(), t.wtbl.Schema()) {
		t.wtbl = t.tbl // the changes staged cancel out
		return nil
	}
	ops, err := diffOps(t.tbl.Schema(), t.tbl.Metadata().LastColumnID(), t.wtbl.Schema())
	if err != nil {
		return fmt.Errorf("schema change: %w", err)
	}
	evolved, err := schemaJSON(t.wtbl.Schema())
	if err != nil {
		return err
	}
	at := slices.IndexFunc(t.segments, func(seg preparedSegment) bool { return len(seg.Schema) > 0 })
	if at < 0 {
		t.segments = append(t.segments, preparedSegment{Schema: evolved})
		at = len(t.segments) - 1
	}
	t.segments[at].Changes, t.segments[at].Evolved = ops, evolved
	return nil
}

// join waits for every segment in flight and files each under its table,
// in the order they were started, which keeps each table's segments in
// order.
func (s *Sink) join() error {
	var errs []error
	for len(s.inflight) > 0 {
		if err := s.joinOldest(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) joinOldest() error {
	job := s.inflight[0]
	s.inflight = s.inflight[1:]
	<-job.done
	if job.err != nil {
		return fmt.Errorf("table %s: %w", job.t, job.err)
	}
	job.t.segments = append(job.t.segments, job.seg)
	return nil
}

// writeSegment writes drained rows into data and equality-delete files. It
// runs off the task loop and touches only d and w, which nothing changes.
func (s *Sink) writeSegment(ctx context.Context, w segWriter, log *zap.Logger, seg preparedSegment, d *drained) (preparedSegment, error) {
	started := time.Now()
	defer releaseAll(d.deletes)
	seg.Rows, seg.DeleteRows = d.rows, d.deleteRows
	var files []iceberg.DataFile
	var err error
	if d.rows > 0 {
		// WriteRecords releases what it consumes.
		files, err = collect(table.WriteRecords(ctx, w.tbl, w.schema, d.data,
			table.WithTargetFileSize(s.cfg.TargetFileSize), table.WithParquetRowGroupLimit(s.cfg.RowGroupRows)))
		if err != nil {
			return seg, fmt.Errorf("write data files: %w", err)
		}
	} else {
		for b := range d.data {
			b.Release()
		}
	}
	version := w.tbl.Metadata().Version()
	enc := func(df iceberg.DataFile) ([]byte, error) {
		return codec.EncodeDataFile(df, w.tbl.Spec(), w.tbl.Schema(), version)
	}
	for _, f := range files {
		b, err := enc(f)
		if err != nil {
			return seg, fmt.Errorf("encode data file %s: %w", f.FilePath(), err)
		}
		seg.Data = append(seg.Data, b)
	}
	if len(d.deletes) > 0 {
		for _, b := range d.deletes {
			b.Retain() // WriteEqualityDeletes releases; our deferred release balances
		}
		dfiles, err := w.tbl.NewTransaction().WriteEqualityDeletes(ctx, w.eqIDs, batches(d.deletes))
		if err != nil {
			return seg, fmt.Errorf("write equality deletes: %w", err)
		}
		for _, f := range dfiles {
			b, err := enc(f)
			if err != nil {
				return seg, fmt.Errorf("encode delete file %s: %w", f.FilePath(), err)
			}
			seg.Deletes = append(seg.Deletes, b)
		}
	}
	log.Debug("flushed", zap.Int64("rows", seg.Rows), zap.Int64("delete_keys", seg.DeleteRows),
		zap.Int("data_files", len(seg.Data)), zap.Int("delete_files", len(seg.Deletes)), zap.Duration("took", time.Since(started)))
	return seg, nil
}

func batches(bs []arrow.RecordBatch) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		for i, b := range bs {
			if !yield(b, nil) {
				for _, rest := range bs[i+1:] {
					rest.Release()
				}
				return
			}
		}
	}
}

func collect(seq iter.Seq2[iceberg.DataFile, error]) ([]iceberg.DataFile, error) {
	var out []iceberg.DataFile
	for f, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func releaseAll(bs []arrow.RecordBatch) {
	for _, b := range bs {
		b.Release()
	}
}

// Commit makes a prepared checkpoint visible, one transaction per table.
// Tables that already hold the checkpoint are skipped, so Commit can be
// repeated after a crash at any point.
func (s *Sink) Commit(ctx context.Context, c pipeline.Commit) error {
	var p prepared
	if len(c.Prepared) > 0 {
		if err := json.Unmarshal(c.Prepared, &p); err != nil {
			return fmt.Errorf("decode prepared files of checkpoint %d: %w", c.ID, err)
		}
	}
	for i, pt := range p.Tables {
		if i > 0 {
			checkpoint.Fault(checkpoint.FaultBetweenTableCommit, c.ID)
		}
		if err := s.commitTable(ctx, c, pt); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) snapshotProps(c pipeline.Commit) iceberg.Properties {
	props := iceberg.Properties{PropJobID: s.job, PropCheckpointID: strconv.FormatUint(c.ID, 10)}
	for name, pos := range c.Positions {
		props[PropPositionPrefix+name] = pos
	}
	return props
}

// committed reports whether tbl already holds checkpoint id of job. Ids of
// one job only grow, so a table holding a newer checkpoint holds this one.
func committed(tbl *table.Table, job string, id uint64) bool {
	if v, ok := tbl.Properties()[PropTableCheckpointPrefix+job]; ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n >= id {
			return true
		}
	}
	for _, snap := range tbl.Metadata().Snapshots() {
		if snap.Summary == nil || snap.Summary.Properties[PropJobID] != job {
			continue
		}
		if n, err := strconv.ParseUint(snap.Summary.Properties[PropCheckpointID], 10, 64); err == nil && n >= id {
			return true
		}
	}
	return false
}

func (s *Sink) commitTable(ctx context.Context, c pipeline.Commit, pt preparedTable) error {
	ident := catalog.ToIdentifier(pt.Namespace, pt.Name)
	name := pt.Namespace + "." + pt.Name
	log := s.log.With(zap.String("table", name), zap.Uint64("checkpoint", c.ID))
	retries := s.cfg.CommitRetries
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := s.tryCommit(ctx, c, pt, ident, log)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= retries || errors.Is(err, errPermanent) {
			return fmt.Errorf("commit checkpoint %d to %s: %w", c.ID, name, err)
		}
		// A lost race or an unknown outcome: never retry blindly. The next
		// attempt reloads the table and checks whether our commit landed.
		log.Warn("commit failed; reloading table and retrying", zap.Int("attempt", attempt+1), zap.Error(err))
		sleep := backoff + time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

var errPermanent = errors.New("permanent")

// testHookBeforeCommit lets tests commit as another writer between our load
// of the table and our commit, which forces the race deterministically.
var testHookBeforeCommit func(ident table.Identifier)

func (s *Sink) tryCommit(ctx context.Context, c pipeline.Commit, pt preparedTable, ident table.Identifier, log *zap.Logger) error {
	tbl, err := s.cat.LoadTable(ctx, ident)
	if err != nil {
		return fmt.Errorf("load table: %w", err)
	}
	if committed(tbl, s.job, c.ID) {
		log.Info("checkpoint already committed to table; skipping")
		s.committedTo(pt, tbl)
		return nil
	}
	meta := tbl.Metadata()
	var base *iceberg.Schema
	for _, x := range meta.Schemas() {
		if x.ID == pt.SchemaID {
			base = x
		}
	}
	spec := meta.PartitionSpecByID(pt.SpecID)
	if spec == nil {
		return fmt.Errorf("%w: partition spec %d of the prepared files is gone from the table", errPermanent, pt.SpecID)
	}
	// schemaOf is the schema segment i's files were written with: the
	// table's (by id) until a segment names a staged one.
	schemaOf := func(i int) (*iceberg.Schema, error) {
		seg := pt.Segments[i]
		if len(seg.Schema) == 0 {
			if base == nil {
				return nil, fmt.Errorf("%w: schema %d of the prepared files is gone from the table", errPermanent, pt.SchemaID)
			}
			return base, nil
		}
		sc := new(iceberg.Schema)
		if err := json.Unmarshal(seg.Schema, sc); err != nil {
			return nil, fmt.Errorf("%w: decode the schema of prepared segment %d: %w", errPermanent, i, err)
		}
		return sc, nil
	}
	decode := func(i int, bs [][]byte) ([]iceberg.DataFile, error) {
		if len(bs) == 0 {
			return nil, nil
		}
		sc, err := schemaOf(i)
		if err != nil {
			return nil, err
		}
		out := make([]iceberg.DataFile, 0, len(bs))
		for _, b := range bs {
			df, err := codec.DecodeDataFile(b, *spec, sc, pt.FormatVersion)
			if err != nil {
				return nil, fmt.Errorf("%w: decode prepared file: %w", errPermanent, err)
			}
			out = append(out, df)
		}
		return out, nil
	}
	props := s.snapshotProps(c)
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{PropTableCheckpointPrefix + s.job: strconv.FormatUint(c.ID, 10)}); err != nil {
		return fmt.Errorf("stage checkpoint property: %w", err)
	}
	// evolveTo applies segment i's schema changes: the same operations on
	// the same committed schema give the same field ids the files were
	// written with, which the comparison checks (another writer may have
	// changed the schema since).
	evolveTo := func(i int) error {
		seg := pt.Segments[i]
		if len(seg.Changes) == 0 {
			return nil
		}
		if err := applyOps(tx, seg.Changes); err != nil {
			return fmt.Errorf("%w: apply the schema change of segment %d (%s): %w", errPermanent, i, describeOps(seg.Changes), err)
		}
		want := new(iceberg.Schema)
		if err := json.Unmarshal(seg.Evolved, want); err != nil {
			return fmt.Errorf("%w: decode the evolved schema of prepared segment %d: %w", errPermanent, i, err)
		}
		st, err := tx.StagedTable()
		if err != nil {
			return fmt.Errorf("stage schema change: %w", err)
		}
		if !sameFields(st.Schema(), want) {
			got, _ := json.Marshal(st.Schema())
			exp, _ := json.Marshal(want)
			return fmt.Errorf("%w: the schema change of segment %d (%s) gives %s on the table as it is, the prepared files were written with %s: the table's schema was changed by another writer",
				errPermanent, i, describeOps(seg.Changes), got, exp)
		}
		log.Info("schema change applied", zap.String("changes", describeOps(seg.Changes)), zap.Int("schema_id", st.Schema().ID))
		return nil
	}
	var nData, nDels int
	if pt.Mode == ModeAppend {
		// A changelog has no deletes: the segments between two schema
		// changes go in one append.
		var data []iceberg.DataFile
		appendData := func() error {
			if len(data) == 0 {
				return nil
			}
			nData += len(data)
			if err := tx.AddDataFiles(ctx, data, props, table.WithoutDuplicateCheck()); err != nil {
				return fmt.Errorf("stage append: %w", err)
			}
			data = nil
			return nil
		}
		for i, seg := range pt.Segments {
			if len(seg.Changes) > 0 {
				if err := appendData(); err != nil {
					return err
				}
				if err := evolveTo(i); err != nil {
					return err
				}
			}
			files, err := decode(i, seg.Data)
			if err != nil {
				return err
			}
			data = append(data, files...)
		}
		if err := appendData(); err != nil {
			return err
		}
	} else {
		for i, seg := range pt.Segments {
			if err := evolveTo(i); err != nil {
				return err
			}
			data, err := decode(i, seg.Data)
			if err != nil {
				return err
			}
			dels, err := decode(i, seg.Deletes)
			if err != nil {
				return err
			}
			if len(data)+len(dels) == 0 {
				continue
			}
			nData += len(data)
			nDels += len(dels)
			if err := tx.NewRowDelta(props).AddRows(data...).AddDeletes(dels...).Commit(ctx); err != nil {
				return fmt.Errorf("stage row delta of segment %d: %w", i, err)
			}
		}
	}
	if testHookBeforeCommit != nil {
		testHookBeforeCommit(ident)
	}
	started := time.Now()
	fresh, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	log.Info("committed", zap.Int64("rows", pt.Rows), zap.Int64("delete_keys", pt.DeleteRows),
		zap.Int("segments", len(pt.Segments)), zap.Int("data_files", nData), zap.Int("delete_files", nDels), zap.Duration("took", time.Since(started)))
	if fresh != nil {
		s.committedTo(pt, fresh)
	}
	return nil
}

// committedTo makes later prepares of pt's table write against tbl, which
// holds the checkpoint and its schema change: Prepare attached what was
// staged, and nothing was written since. The placeholders of columns
// added and dropped within the checkpoint are deleted by the next one.
func (s *Sink) committedTo(pt preparedTable, tbl *table.Table) {
	t, ok := s.targets[pt.Namespace+"."+pt.Name]
	if !ok {
		return
	}
	if t.wtbl != t.tbl && !sameFields(tbl.Schema(), t.wtbl.Schema()) {
		// Cannot happen: the commit applied what was staged. Keep writing
		// against the staged schema rather than against another one.
		t.logger.Warn("committed schema differs from the staged one", zap.Int("schema_id", tbl.Schema().ID))
		return
	}
	t.tbl, t.wtbl = tbl, tbl
	if len(t.ghosts) == 0 {
		return
	}
	var ops []schemaOp
	for _, id := range t.ghosts {
		if f, ok := tbl.Schema().FindFieldByID(id); ok {
			ops = append(ops, schemaOp{Op: "delete", Name: f.Name})
		}
	}
	t.ghosts = nil
	if len(ops) == 0 {
		return
	}
	wtbl, err := stageOps(tbl, ops)
	if err == nil {
		t.wtbl = wtbl
		err = t.rebuild(t.src)
	}
	if err != nil {
		// The placeholders stay (NULL columns); a later run drops them.
		t.logger.Warn("cannot stage the deletion of dropped columns", zap.Error(err))
		t.wtbl = tbl
		_ = t.rebuild(t.src)
	}
}

var _ pipeline.Sink = (*Sink)(nil)

func specID(t *table.Table) int {
	spec := t.Spec()
	return spec.ID()
}
