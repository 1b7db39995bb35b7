package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
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
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"

	"github.com/sluice-cdc/sluice/lake"
)

// verify checks a run's dwd table against the replay: exactly the live
// keys, each once. For the chain it also checks, row by row, the derived
// columns and the dimension's columns, and that no dead letter was
// written.
//
// It applies the table's equality deletes itself rather than through
// iceberg-go's scan: that scan, on the plain run's table at 10M keys (73
// data files, each with up to ten checkpoints' delete files applying),
// took 4 minutes and grew to 20 GB of heap, which a shared 2-core machine
// cannot afford. Here, as the Iceberg spec says, an equality delete of
// data sequence number s removes the rows of its key in data files of
// sequence numbers below s. The newest sequence number deleting each key
// is kept as a byte per key of the key space (100 MB at 10M keys), then
// each data file is read with only the columns checked.
func (cs *chainSetup) verify(ctx context.Context, dir string, withChain bool) error {
	cfg := lakeConfig(dir)
	names, err := lake.ListTables(ctx, cfg)
	if err != nil {
		return err
	}
	const want = "bench.dwd_orders"
	found := false
	for _, n := range names {
		switch {
		case n == want:
			found = true
		case strings.Contains(n, "dead_letter"):
			rows := 0
			if err := lake.ScanTable(ctx, cfg, n, 10, func([]string, []any) error { rows++; return nil }); err != nil {
				return err
			}
			if rows > 0 {
				return fmt.Errorf("%s holds dead letters", n)
			}
		}
	}
	if !found {
		return fmt.Errorf("table %s missing; the lake has %v", want, names)
	}
	if err := cs.verifyFiles(ctx, cfg, withChain); err != nil {
		return fmt.Errorf("verify %s: %w", want, err)
	}
	return nil
}

type seqFile struct {
	path string
	seq  int64
}

func (cs *chainSetup) verifyFiles(ctx context.Context, cfg *lake.Config, withChain bool) error {
	cat, err := lake.OpenCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	defer lake.CloseCatalog(cat)
	tbl, err := cat.LoadTable(ctx, catalog.ToIdentifier("bench", "dwd_orders"))
	if err != nil {
		return err
	}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return fmt.Errorf("no snapshot")
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return err
	}
	idField, ok := tbl.Schema().FindFieldByName("id")
	if !ok {
		return fmt.Errorf("no column id in %s", tbl.Schema())
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return err
	}
	var data, deletes []seqFile
	seqs := map[int64]bool{}
	for _, mf := range manifests {
		for e, err := range mf.Entries(fs, true) {
			if err != nil {
				return err
			}
			df := e.DataFile()
			f := seqFile{path: df.FilePath(), seq: e.SequenceNum()}
			seqs[f.seq] = true
			switch df.ContentType() {
			case iceberg.EntryContentData:
				data = append(data, f)
			case iceberg.EntryContentEqDeletes:
				if ids := df.EqualityFieldIDs(); len(ids) != 1 || ids[0] != idField.ID {
					return fmt.Errorf("delete file %s has equality ids %v, want [%d] (id)", f.path, ids, idField.ID)
				}
				deletes = append(deletes, f)
			default:
				return fmt.Errorf("file %s has content %v; sluice's upserts write data and equality deletes only", f.path, df.ContentType())
			}
		}
	}
	// Sequence numbers ranked 1.., so that a byte holds one.
	sorted := slices.Sorted(maps.Keys(seqs))
	if len(sorted) > 255 {
		return fmt.Errorf("%d sequence numbers: more than this check's byte per key holds", len(sorted))
	}
	rank := func(seq int64) uint8 { i, _ := slices.BinarySearch(sorted, seq); return uint8(i + 1) }

	// deletedAt[k] is the rank of the newest delete of key k, 0 if none.
	deletedAt := make([]uint8, cs.keySpace)
	for _, f := range deletes {
		r := rank(f.seq)
		err := readParquet(ctx, f.path, []string{"id"}, func(col func(string) (arrow.Array, error), n int) error {
			a, _ := col("id")
			id, err := int64s(a)
			if err != nil {
				return fmt.Errorf("delete file %s: id: %w", f.path, err)
			}
			for i := 0; i < n; i++ {
				k := id(i)
				if k < 0 || k >= cs.keySpace {
					return fmt.Errorf("delete file %s: id %d outside the key space", f.path, k)
				}
				deletedAt[k] = max(deletedAt[k], r)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	fields := []string{"id"}
	if withChain {
		fields = append(fields, "customer_id", "quantity", "amount", "amount_eur", "channel_id", "channel_name", "channel_region")
	}
	seen := make([]uint64, len(cs.liveSet))
	var count int64
	for _, f := range data {
		r := rank(f.seq)
		err := readParquet(ctx, f.path, fields, func(col func(string) (arrow.Array, error), n int) error {
			ids, _ := col("id")
			id, err := int64s(ids)
			if err != nil {
				return fmt.Errorf("id: %w", err)
			}
			var check func(r int) error
			if withChain {
				if check, err = chainRowCheck(col); err != nil {
					return err
				}
			}
			for i := 0; i < n; i++ {
				k := id(i)
				if ids.IsNull(i) || k < 0 || k >= cs.keySpace {
					return fmt.Errorf("id %d (null: %v) outside the key space [0, %d)", k, ids.IsNull(i), cs.keySpace)
				}
				if deletedAt[k] > r {
					continue // deleted by a later delete file
				}
				w, bit := k/64, uint64(1)<<(k%64)
				switch {
				case cs.liveSet[w]&bit == 0:
					return fmt.Errorf("id %d is in the table but was never inserted, or was deleted", k)
				case seen[w]&bit != 0:
					return fmt.Errorf("id %d appears twice", k)
				}
				seen[w] |= bit
				count++
				if check != nil {
					if err := check(i); err != nil {
						return fmt.Errorf("id %d: %w", k, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("data file %s: %w", f.path, err)
		}
	}
	if count != cs.live {
		return fmt.Errorf("%d live rows in %d data files (%d delete files), want %d (the keys alive after the replay)", count, len(data), len(deletes), cs.live)
	}
	return nil
}

// readParquet reads the named columns of a local Parquet file batch by
// batch.
func readParquet(ctx context.Context, uri string, columns []string, fn func(col func(string) (arrow.Array, error), rows int) error) error {
	path, ok := strings.CutPrefix(uri, "file://")
	if !ok {
		return fmt.Errorf("%s: not a local file", uri)
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return err
	}
	defer pf.Close()
	var idx []int
	for _, c := range columns {
		i := pf.MetaData().Schema.ColumnIndexByName(c)
		if i < 0 {
			return fmt.Errorf("%s: no column %s", path, c)
		}
		idx = append(idx, i)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, idx, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		col := func(name string) (arrow.Array, error) {
			is := rec.Schema().FieldIndices(name)
			if len(is) != 1 {
				return nil, fmt.Errorf("column %s missing in %s", name, rec.Schema())
			}
			return rec.Column(is[0]), nil
		}
		if err := fn(col, int(rec.NumRows())); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// chainRowCheck returns the check of one row of the chain's output:
// channel_id = customer_id % 1000 + 1, the dimension's name and region for
// it, quantity cast to long, amount_eur = amount * 0.92 to the cent.
func chainRowCheck(col func(string) (arrow.Array, error)) (func(int) error, error) {
	arrs := map[string]arrow.Array{}
	for _, n := range []string{"customer_id", "quantity", "amount", "amount_eur", "channel_id", "channel_name", "channel_region"} {
		a, err := col(n)
		if err != nil {
			return nil, err
		}
		arrs[n] = a
	}
	if _, ok := arrs["quantity"].(*array.Int64); !ok {
		return nil, fmt.Errorf("quantity is %s, want int64 (cast: long)", arrs["quantity"].DataType())
	}
	cust, err := int64s(arrs["customer_id"])
	if err != nil {
		return nil, fmt.Errorf("customer_id: %w", err)
	}
	chID, err := int64s(arrs["channel_id"])
	if err != nil {
		return nil, fmt.Errorf("channel_id: %w", err)
	}
	name, err := strs(arrs["channel_name"])
	if err != nil {
		return nil, fmt.Errorf("channel_name: %w", err)
	}
	region, err := strs(arrs["channel_region"])
	if err != nil {
		return nil, fmt.Errorf("channel_region: %w", err)
	}
	amount, err := cents(arrs["amount"])
	if err != nil {
		return nil, fmt.Errorf("amount: %w", err)
	}
	eur, err := cents(arrs["amount_eur"])
	if err != nil {
		return nil, fmt.Errorf("amount_eur: %w", err)
	}
	return func(r int) error {
		for n, a := range arrs {
			if a.IsNull(r) {
				return fmt.Errorf("%s is NULL", n)
			}
		}
		ch := cust(r)%chainDimRows + 1
		switch {
		case chID(r) != ch:
			return fmt.Errorf("channel_id %d, want customer_id %d %% %d + 1 = %d", chID(r), cust(r), chainDimRows, ch)
		case name(r) != chainChannelName(ch):
			return fmt.Errorf("channel_name %q, want %q", name(r), chainChannelName(ch))
		case region(r) != chainRegions[ch%int64(len(chainRegions))]:
			return fmt.Errorf("channel_region %q, want %q", region(r), chainRegions[ch%int64(len(chainRegions))])
		}
		// amount * 0.92 is computed in float64 and rounded to the cent:
		// allow a cent for a tie rounded the other way.
		if want := math.Round(float64(amount(r)) * 0.92); math.Abs(float64(eur(r))-want) > 1 {
			return fmt.Errorf("amount_eur %d cents, want amount %d cents * 0.92 = %.0f", eur(r), amount(r), want)
		}
		return nil
	}, nil
}

func int64s(a arrow.Array) (func(int) int64, error) {
	switch x := a.(type) {
	case *array.Int64:
		return x.Value, nil
	case *array.Int32:
		return func(i int) int64 { return int64(x.Value(i)) }, nil
	}
	return nil, fmt.Errorf("type %s, want an integer", a.DataType())
}

func strs(a arrow.Array) (func(int) string, error) {
	switch x := a.(type) {
	case *array.String:
		return x.Value, nil
	case *array.LargeString:
		return x.Value, nil
	case *array.StringView:
		return x.Value, nil
	}
	return nil, fmt.Errorf("type %s, want a string", a.DataType())
}

// cents reads a decimal(p,2) column's unscaled values.
func cents(a arrow.Array) (func(int) int64, error) {
	x, ok := a.(*array.Decimal128)
	if !ok {
		return nil, fmt.Errorf("type %s, want decimal128", a.DataType())
	}
	if s := x.DataType().(*arrow.Decimal128Type).Scale; s != 2 {
		return nil, fmt.Errorf("scale %d, want 2", s)
	}
	return func(i int) int64 { return int64(x.Value(i).LowBits()) }, nil
}

// profile runs one more job, unmeasured and unchecked, with SLUICE_PPROF
// and GODEBUG=gctrace=1. It takes successive CPU profiles of
// profileChunk seconds until the process exits (the last one, cut short
// by the exit, is lost), and a heap profile after each, keeping the last;
// the job's log goes beside them. `go tool pprof -top PREFIX.cpu.*.pprof`
// merges the CPU profiles.
func (cs *chainSetup) profile(ctx context.Context, b *testing.B, prefix string, withChain bool) {
	b.Helper()
	const profileChunk = 5
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte(cs.jobYAML(dir, withChain)), 0o644); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		m, logs, err := cs.runSluice(ctx, append(childEnv(false), "SLUICE_PPROF="+addr, "GODEBUG=gctrace=1"), "run", "--once", "-c", job)
		if werr := os.WriteFile(prefix+".log", logs, 0o644); err == nil {
			err = werr
		}
		fmt.Printf("profiled run (chain: %v): %.1f s, cpu %.1f s, peak RSS %.0f MB\n", withChain, m.wall.Seconds(), m.cpu.Seconds(), mb(m.peak))
		done <- err
	}()
	get := func(path string) ([]byte, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", path, resp.Status)
		}
		return body, err
	}
	// Until the process listens.
	for {
		if _, err := get("/debug/pprof/"); err == nil {
			break
		}
		select {
		case <-exited:
			b.Fatalf("profiled run ended before its profiler answered: %v", <-done)
		case <-time.After(10 * time.Millisecond):
		}
	}
	n := 0
	for ; ; n++ {
		body, err := get("/debug/pprof/profile?seconds=" + strconv.Itoa(profileChunk))
		if err != nil {
			break // the process exited
		}
		if err := os.WriteFile(fmt.Sprintf("%s.cpu.%03d.pprof", prefix, n), body, 0o644); err != nil {
			b.Fatal(err)
		}
		if heap, err := get("/debug/pprof/heap"); err == nil {
			if err := os.WriteFile(prefix+".heap.pprof", heap, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("profiles: %s.cpu.*.pprof (%d of %d s each; merge them with go tool pprof -top), the last heap profile %[1]s.heap.pprof, log with GC trace %[1]s.log\n",
		prefix, n, profileChunk)
}
