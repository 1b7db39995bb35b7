package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go/catalog"
)

// ListTables returns "ns.table" for every table in the catalog.
func ListTables(ctx context.Context, cfg *Config) ([]string, error) {
	cat, err := OpenCatalog(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer CloseCatalog(cat)
	nss, err := cat.ListNamespaces(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, ns := range nss {
		for ident, err := range cat.ListTables(ctx, ns) {
			if err != nil {
				return nil, fmt.Errorf("list tables of %s: %w", strings.Join(ns, "."), err)
			}
			out = append(out, strings.Join(ident, "."))
		}
	}
	return out, nil
}

// ScanTable reads a table's current snapshot (deletes applied) and calls fn
// per row with values in the pipeline's Go representation. limit <= 0 reads
// everything.
func ScanTable(ctx context.Context, cfg *Config, name string, limit int, fn func(columns []string, row []any) error) error {
	cat, err := OpenCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	defer CloseCatalog(cat)
	ns, tbl, ok := strings.Cut(name, ".")
	if !ok {
		ns, tbl = cfg.Namespace, name
	}
	t, err := cat.LoadTable(ctx, catalog.ToIdentifier(ns, tbl))
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return fmt.Errorf("table %s.%s does not exist (list them with `sluice tables`)", ns, tbl)
	}
	if err != nil {
		return fmt.Errorf("load table %s.%s: %w", ns, tbl, err)
	}
	scan := t.Scan()
	if limit > 0 {
		scan = scan.UseRowLimit(int64(limit))
	}
	sc, recs, err := scan.ToArrowRecords(ctx)
	if err != nil {
		return fmt.Errorf("scan %s.%s: %w", ns, tbl, err)
	}
	cols := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		cols[i] = f.Name
	}
	n := 0
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("scan %s.%s: %w", ns, tbl, err)
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			row := make([]any, len(cols))
			for c := range cols {
				row[c] = valueOf(rec.Column(c), r)
			}
			if err := fn(cols, row); err != nil {
				rec.Release()
				return err
			}
			n++
			if limit > 0 && n >= limit {
				rec.Release()
				return nil
			}
		}
		rec.Release()
	}
	return nil
}
