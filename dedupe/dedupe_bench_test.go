package dedupe

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// BenchmarkDedupe streams DEDUPE_BENCH_KEYS (default 10,000,000) distinct
// keys through the operator in batches of 1024 records of 10 columns, like
// the pipeline: inserts of new, increasing ids and DEDUPE_BENCH_UPDATE_PCT
// (default 10) percent updates of existing ids drawn uniformly from all ids
// so far (the worst case for every cache), a checkpoint every 2M records.
// "noop" is the same stream through an operator that does nothing, run in
// the same process for comparison. With DEDUPE_BENCH_RANDOM=1 a third run
// inserts the new keys in random order (UUID-like keys), which defeats the
// "above the largest key" shortcut. DEDUPE_BENCH_METRICS=1 prints Pebble's
// metrics at the end.
//
// Metrics: rows/s (wall clock), cpu-us/row and cores (CPU of the whole
// process, background compactions included: the stable figure on a shared
// machine), process-s and snapshot-s (time inside Process and Snapshot),
// VmHWM-MB (peak RSS of the sub-benchmark).
//
//	go test -run '^$' -bench BenchmarkDedupe -benchtime 1x ./dedupe/
func BenchmarkDedupe(b *testing.B) {
	keys := envInt("DEDUPE_BENCH_KEYS", 10_000_000)
	b.Run("noop", func(b *testing.B) { benchStream(b, keys, false, nil) })
	b.Run("pebble", func(b *testing.B) {
		benchStream(b, keys, false, func(b *testing.B) pipeline.Operator {
			o, err := New(Config{Dir: b.TempDir(), Tables: []Rule{{Match: "bench.*"}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return o
		})
	})
	if os.Getenv("DEDUPE_BENCH_RANDOM") == "1" {
		b.Run("pebble-random-keys", func(b *testing.B) {
			benchStream(b, keys, true, func(b *testing.B) pipeline.Operator {
				o, err := New(Config{Dir: b.TempDir(), Tables: []Rule{{Match: "bench.*"}}}, nil)
				if err != nil {
					b.Fatal(err)
				}
				return o
			})
		})
	}
}

type noopOp struct{}

func (noopOp) Name() string                                     { return "noop" }
func (noopOp) Open(context.Context, []byte) error               { return nil }
func (noopOp) Snapshot(context.Context, uint64) ([]byte, error) { return nil, nil }
func (noopOp) Close() error                                     { return nil }
func (noopOp) Process(_ context.Context, b *pipeline.Batch, emit func(*pipeline.Batch) error) error {
	return emit(b)
}

func benchSchema() *pipeline.Schema {
	return &pipeline.Schema{
		Table: pipeline.TableID{Namespace: "bench", Name: "orders"},
		Columns: []pipeline.Column{
			{Name: "id", Type: pipeline.TypeInt64},
			{Name: "customer", Type: pipeline.TypeString},
			{Name: "amount", Type: pipeline.TypeDecimal, Precision: 12, Scale: 2},
			{Name: "qty", Type: pipeline.TypeInt32},
			{Name: "status", Type: pipeline.TypeString},
			{Name: "created_at", Type: pipeline.TypeTimestamp},
			{Name: "updated_at", Type: pipeline.TypeTimestamp},
			{Name: "note", Type: pipeline.TypeString, Nullable: true},
			{Name: "paid", Type: pipeline.TypeBool},
			{Name: "version", Type: pipeline.TypeInt64},
		},
		Key:     []int{0},
		Version: 1,
	}
}

// scramble maps 1..n to distinct, unordered ids (a bijection on uint64).
func scramble(x uint64) int64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return int64(x >> 1)
}

func benchStream(b *testing.B, keys int, randomKeys bool, mk func(*testing.B) pipeline.Operator) {
	const batchSize = 1024
	const checkpointEvery = 2_000_000
	updatePct := envInt("DEDUPE_BENCH_UPDATE_PCT", 10)
	resetPeakRSS()
	for range b.N {
		b.StopTimer()
		var op pipeline.Operator = noopOp{}
		if mk != nil {
			op = mk(b)
		}
		ctx := context.Background()
		if err := op.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		s := benchSchema()
		rng := rand.New(rand.NewSource(1))
		statuses := []string{"new", "paid", "shipped", "delivered", "returned"}
		customers := make([]string, 1000)
		for i := range customers {
			customers[i] = "customer-" + strconv.Itoa(i)
		}
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		// A ring of reused batches: the generator's cost should be the
		// same small constant in both runs.
		ring := make([]pipeline.Batch, 4)
		for i := range ring {
			ring[i] = pipeline.Batch{Schema: s, Records: make([]pipeline.Record, batchSize)}
			for j := range ring[i].Records {
				ring[i].Records[j].After = make([]any, len(s.Columns))
			}
		}
		var (
			inserted, records, passed int
			seq                       uint64
			nextCheckpoint            = checkpointEvery
			ckpt                      uint64
			snapTime, procTime        time.Duration
		)
		emit := func(out *pipeline.Batch) error { passed += len(out.Records); return nil }
		var ru0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		cpu0 := time.Duration(ru0.Utime.Nano() + ru0.Stime.Nano())
		b.StartTimer()
		start := time.Now()
		for n := 0; inserted < keys; n++ {
			bt := &ring[n%len(ring)]
			for j := range bt.Records {
				r := &bt.Records[j]
				seq++
				var id int64
				r.Op = pipeline.OpInsert
				if inserted == 0 || (inserted < keys && rng.Intn(100) >= updatePct) {
					inserted++
					id = int64(inserted)
				} else {
					r.Op = pipeline.OpUpdate
					id = int64(1 + rng.Intn(inserted))
				}
				if randomKeys {
					id = scramble(uint64(id))
				}
				a := r.After
				a[0] = id
				a[1] = customers[id%int64(len(customers))]
				a[2] = pipeline.Decimal{Unscaled: id % 100000, Scale: 2}
				a[3] = int32(id % 7)
				a[4] = statuses[seq%uint64(len(statuses))]
				a[5] = base.Add(time.Duration(id) * time.Second)
				a[6] = base.Add(time.Duration(seq) * time.Millisecond)
				a[7] = nil
				a[8] = seq%2 == 0
				a[9] = int64(seq)
				r.Seq = seq
			}
			records += len(bt.Records)
			t0 := time.Now()
			if err := op.Process(ctx, bt, emit); err != nil {
				b.Fatal(err)
			}
			procTime += time.Since(t0)
			if records >= nextCheckpoint {
				ckpt++
				t0 := time.Now()
				if _, err := op.Snapshot(ctx, ckpt); err != nil {
					b.Fatal(err)
				}
				snapTime += time.Since(t0)
				nextCheckpoint += checkpointEvery
			}
		}
		ckpt++
		if _, err := op.Snapshot(ctx, ckpt); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		b.ReportMetric((cpu-cpu0).Seconds()/elapsed.Seconds(), "cores")
		b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(records), "cpu-us/row")
		b.StopTimer()
		if d, ok := op.(*Operator); ok {
			m := d.db.Metrics()
			b.Logf("stats %+v", d.Stats())
			b.Logf("pebble: block cache hits %d misses %d; L0 sublevels %d files %d; flushes %d compactions %d; disk %d MB",
				m.BlockCache.Hits, m.BlockCache.Misses, m.Levels[0].Sublevels, m.Levels[0].TablesCount,
				m.Flush.Count, m.Compact.Count, m.DiskSpaceUsage()>>20)
			if os.Getenv("DEDUPE_BENCH_METRICS") == "1" {
				fmt.Fprintln(os.Stderr, m.String())
			}
		}
		if err := op.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(records)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(snapTime.Seconds(), "snapshot-s")
		b.ReportMetric(procTime.Seconds(), "process-s")
		b.ReportMetric(float64(passed)/float64(records), "passed/row")
		b.ReportMetric(float64(records), "rows")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(peakRSS())/(1<<20), "VmHWM-MB")
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "GoHeapSys-MB")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// peakRSS reads VmHWM (bytes) from /proc/self/status; 0 where unavailable.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux:
// writing 5 to clear_refs), so that each sub-benchmark reports its own peak.
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
