// Package bench holds sluice's throughput and memory benchmarks. Figures
// are reported as ratios against a baseline measured in the same run,
// because the machines are shared and absolute times drift.
//
//	make bench
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/datagen"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

const benchRows = 1_000_000

func buildSluice(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "sluice")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/sluice")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return bin
}

func genConfig() datagen.Config {
	c := datagen.Config{Seed: 3, Total: benchRows, BatchSize: 4096, Tables: []datagen.TableConfig{
		{Name: "bench.t", Preset: "bench10", Keys: benchRows, Mix: datagen.MixConfig{Update: 1}},
	}}
	c.Defaults()
	return c
}

const jobYAML = `job: bench
source:
  datagen:
    seed: 3
    total: %d
    batch_size: 4096
    tables:
      - {name: bench.t, preset: bench10, keys: %d, mix: {update: 1}}
sink:
  catalog: {type: sql, uri: "sqlite://%[3]s/catalog.db"}
  warehouse: "file://%[3]s/warehouse"
  namespace: bench
  tables:
    - {match: "bench.*", dwd: "dwd_{table}"}
checkpoint:
  dir: %[3]s/state
  interval: 1h
  max_records: %[1]d
  max_bytes: 4294967296
log: {level: info, format: json}
`

// BenchmarkEndToEndVsRawAppend: datagen -> upsert table through the sluice
// binary, against iceberg-go appending the same 1,000,000 rows, three runs
// each interleaved, medians compared. One checkpoint holds all the rows, so
// peak RSS is the sink's memory at a 1,000,000-row checkpoint.
func BenchmarkEndToEndVsRawAppend(b *testing.B) {
	bin := buildSluice(b)
	ctx := context.Background()
	gen := genConfig()
	var raw, e2e, pipe []float64
	var rss []int64
	for i := 0; i < 3; i++ {
		dir := b.TempDir()
		schemas, err := gen.Schemas()
		if err != nil {
			b.Fatal(err)
		}
		cfg := &lake.Config{Catalog: lake.CatalogConfig{Type: "sql", URI: "sqlite://" + dir + "/raw.db"}, Warehouse: "file://" + dir + "/raw", Namespace: "bench"}
		cfg.Defaults()
		took, err := lake.RawAppend(ctx, cfg, fmt.Sprint("raw", i), schemas[0], func(yield func(pipeline.Record) error) error {
			var yerr error
			err := gen.Replay(benchRows, func(_ *pipeline.Schema, r pipeline.Record) {
				if yerr == nil {
					yerr = yield(r)
				}
			})
			return errors.Join(err, yerr)
		})
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, benchRows/took.Seconds())
		runtime.GC()
		debug.FreeOSMemory()

		job := filepath.Join(dir, "job.yaml")
		if err := os.WriteFile(job, []byte(fmt.Sprintf(jobYAML, benchRows, benchRows, dir)), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--once", "-c", job)
		cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=1")
		var logs bytes.Buffer
		cmd.Stderr = &logs
		started := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := watchPeakRSS(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("sluice run: %v", err)
		}
		wall := time.Since(started)
		e2e = append(e2e, benchRows/wall.Seconds())
		rss = append(rss, peak())
		jobSecs, err := jobTook(logs.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		pipe = append(pipe, benchRows/jobSecs)
	}
	mr, me, mp, mrss := median(raw), median(e2e), median(pipe), slices.Max(rss)
	fmt.Printf("\n== sluice end-to-end vs iceberg-go raw append (%d rows, bench10, 1 checkpoint; medians of 3) ==\n", benchRows)
	fmt.Printf("raw iceberg-go append     %10.0f rows/s  (runs: %s; arrow input prepared untimed)\n", mr, fmtRates(raw))
	fmt.Printf("sluice datagen->upsert    %10.0f rows/s  (runs: %s; the job's own time, from its log)\n", mp, fmtRates(pipe))
	fmt.Printf("  same, whole process     %10.0f rows/s  (runs: %s; incl. exec and start-up)\n", me, fmtRates(e2e))
	fmt.Printf("ratio end-to-end / raw    %10.2f        (target >= 0.60; whole process: %.2f)\n", mp/mr, me/mr)
	fmt.Printf("peak RSS of sluice        %10.1f MB     (target < 400 MB)\n\n", float64(mrss)/(1<<20))
	b.ReportMetric(mp/mr, "ratio")
	b.ReportMetric(float64(mrss)/(1<<20), "peak-MB")
	b.ReportMetric(mp, "rows/s")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRates(xs []float64) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%.0f", x)
	}
	return out
}

// watchPeakRSS polls the child's VmHWM (its own high-water mark) until the
// returned function is called after Wait. rusage's ru_maxrss is no good
// here: a child's counts the parent's resident memory at fork time.
func watchPeakRSS(pid int) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			if b, err := os.ReadFile(path); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						if kb*1024 > peak.Load() {
							peak.Store(kb * 1024)
						}
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// jobTook reads the duration the job reports in its "job finished" line.
func jobTook(logs []byte) (float64, error) {
	for _, line := range bytes.Split(logs, []byte("\n")) {
		var rec struct {
			Msg  string  `json:"msg"`
			Took float64 `json:"took"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "job finished" && rec.Took > 0 {
			return rec.Took, nil
		}
	}
	return 0, fmt.Errorf("no \"job finished\" line in the job's log:\n%s", logs)
}
