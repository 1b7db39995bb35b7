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
}

// flushJob writes one drained segment. done is closed when seg and err are set.
type flushJob struct {
	t    *target
	done chan struct{}
	seg  preparedSegment
	err  error
}

type target struct {
	Target
	ident  table.Identifier
	tbl    *table.Table
	buf    *buffer
	src    *pipeline.Schema
	eqIDs  []int
	logger *zap.Logger
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
	for _, t := range ts {
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
		if ok && t.src != ps {
			// A new schema version of a table already being written: the
			// buffered rows must be prepared under the old one first.
			// Schema evolution lands with the CDC sources; until then a
			// change of shape is refused rather than written wrongly.
			if !sameShape(t.src, ps) {
				return nil, fmt.Errorf("table %s: source schema of %s changed (version %d to %d); schema evolution is not supported yet", key, ps.Table, t.src.Version, ps.Version)
			}
		}
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

// openTarget loads or creates the table and checks that it fits the source.
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
	if err := checkCompatible(tbl.Schema(), want); err != nil {
		return nil, fmt.Errorf("table %s exists with another shape: %w", r, err)
	}
	if r.Mode == ModeUpsert && tbl.Metadata().Version() < 2 {
		return nil, fmt.Errorf("table %s is format v1: upserts need equality deletes (v2+)", r)
	}
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", r, err)
	}
	buf, err := newBuffer(r.Mode, sc, ps)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", r, err)
	}
	t := &target{Target: r, ident: ident, tbl: tbl, buf: buf, src: ps, logger: log}
	if r.Mode == ModeUpsert {
		for _, k := range ps.Key {
			f, ok := tbl.Schema().FindFieldByName(ps.Columns[k].Name)
			if !ok {
				return nil, fmt.Errorf("table %s lacks key column %s", r, ps.Columns[k].Name)
			}
			t.eqIDs = append(t.eqIDs, f.ID)
		}
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

// checkCompatible requires every wanted column to exist with the same type.
func checkCompatible(have, want *iceberg.Schema) error {
	for _, f := range want.Fields() {
		h, ok := have.FindFieldByName(f.Name)
		if !ok {
			return fmt.Errorf("column %s is missing", f.Name)
		}
		if !h.Type.Equals(f.Type) {
			return fmt.Errorf("column %s is %s, the source gives %s", f.Name, h.Type, f.Type)
		}
	}
	return nil
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
	Data       [][]byte `json:"data,omitempty"`
	Deletes    [][]byte `json:"deletes,omitempty"`
	Rows       int64    `json:"rows"`
	DeleteRows int64    `json:"delete_rows"`
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
	job := &flushJob{t: t, done: make(chan struct{})}
	s.inflight = append(s.inflight, job)
	go func() {
		defer close(job.done)
		job.seg, job.err = s.writeSegment(ctx, t, d)
	}()
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
// runs off the task loop and touches only d and t's table metadata, which
// changes only in Commit, after Prepare joined this write.
func (s *Sink) writeSegment(ctx context.Context, t *target, d *drained) (preparedSegment, error) {
	started := time.Now()
	defer releaseAll(d.deletes)
	seg := preparedSegment{Rows: d.rows, DeleteRows: d.deleteRows}
	var files []iceberg.DataFile
	var err error
	if d.rows > 0 {
		// WriteRecords releases what it consumes.
		files, err = collect(table.WriteRecords(ctx, t.tbl, t.buf.schema, d.data,
			table.WithTargetFileSize(s.cfg.TargetFileSize), table.WithParquetRowGroupLimit(s.cfg.RowGroupRows)))
		if err != nil {
			return seg, fmt.Errorf("write data files: %w", err)
		}
	} else {
		for b := range d.data {
			b.Release()
		}
	}
	version := t.tbl.Metadata().Version()
	enc := func(df iceberg.DataFile) ([]byte, error) {
		return codec.EncodeDataFile(df, t.tbl.Spec(), t.tbl.Schema(), version)
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
		dfiles, err := t.tbl.NewTransaction().WriteEqualityDeletes(ctx, t.eqIDs, batches(d.deletes))
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
	t.logger.Debug("flushed", zap.Int64("rows", seg.Rows), zap.Int64("delete_keys", seg.DeleteRows),
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
		return nil
	}
	meta := tbl.Metadata()
	var sc *iceberg.Schema
	for _, x := range meta.Schemas() {
		if x.ID == pt.SchemaID {
			sc = x
		}
	}
	spec := meta.PartitionSpecByID(pt.SpecID)
	if sc == nil || spec == nil {
		return fmt.Errorf("%w: schema %d or partition spec %d of the prepared files is gone from the table", errPermanent, pt.SchemaID, pt.SpecID)
	}
	decode := func(bs [][]byte) ([]iceberg.DataFile, error) {
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
	var nData, nDels int
	if pt.Mode == ModeAppend {
		// A changelog has no deletes: all segments go in one append.
		var data []iceberg.DataFile
		for _, seg := range pt.Segments {
			files, err := decode(seg.Data)
			if err != nil {
				return err
			}
			data = append(data, files...)
		}
		nData = len(data)
		if err := tx.AddDataFiles(ctx, data, props, table.WithoutDuplicateCheck()); err != nil {
			return fmt.Errorf("stage append: %w", err)
		}
	} else {
		for i, seg := range pt.Segments {
			data, err := decode(seg.Data)
			if err != nil {
				return err
			}
			dels, err := decode(seg.Deletes)
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
	// Later prepares write against the new metadata.
	if t, ok := s.targets[pt.Namespace+"."+pt.Name]; ok && fresh != nil {
		t.tbl = fresh
	}
	return nil
}

var _ pipeline.Sink = (*Sink)(nil)

func specID(t *table.Table) int {
	spec := t.Spec()
	return spec.ID()
}
