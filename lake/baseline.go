package lake

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-cdc/sluice/pipeline"
)

// RawAppend is the ceiling the sink is measured against: it converts the
// row images that source yields to arrow (untimed), then appends them to a
// new, unpartitioned table named name with iceberg-go alone (WriteRecords
// and one commit), and returns how long the timed part took. The records
// are converted as they stream, so that the timed part runs with only the
// arrow data alive, as the sink's writes do. Benchmarks use it to report
// sluice's end-to-end rate as a ratio of what the library can do on the
// same machine in the same run.
func RawAppend(ctx context.Context, cfg *Config, name string, ps *pipeline.Schema, source func(yield func(pipeline.Record) error) error) (time.Duration, error) {
	cat, err := OpenCatalog(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer CloseCatalog(cat)
	sc, err := icebergSchema(ps, ModeUpsert)
	if err != nil {
		return 0, err
	}
	ns := catalog.ToIdentifier(cfg.Namespace)
	if ok, _ := cat.CheckNamespaceExists(ctx, ns); !ok {
		if err := cat.CreateNamespace(ctx, ns, nil); err != nil {
			return 0, fmt.Errorf("create namespace: %w", err)
		}
	}
	s := &Sink{cfg: cfg, job: "baseline"}
	props := s.tableProperties(nil)
	tbl, err := cat.CreateTable(ctx, catalog.ToIdentifier(cfg.Namespace, name), sc, catalog.WithProperties(props))
	if err != nil {
		return 0, fmt.Errorf("create table: %w", err)
	}
	asc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return 0, err
	}
	buf, err := newBuffer(ModeAppend, asc, ps)
	if err != nil {
		return 0, err
	}
	if err := source(func(r pipeline.Record) error { return buf.add(&r) }); err != nil {
		return 0, err
	}
	buf.seal()
	chunks := buf.chunks
	buf.chunks = nil
	buf.release()
	runtime.GC() // start the timed part with no garbage of the conversion

	started := time.Now()
	files, err := collect(table.WriteRecords(ctx, tbl, asc, batches(chunks),
		table.WithTargetFileSize(cfg.TargetFileSize), table.WithParquetRowGroupLimit(cfg.RowGroupRows)))
	if err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	tx := tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, nil, table.WithoutDuplicateCheck()); err != nil {
		return 0, fmt.Errorf("stage: %w", err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return time.Since(started), nil
}
