package datagen

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// BenchmarkRead measures the generator alone; one op is one row, so ns/op
// is the cost of a row and rows/s the ceiling datagen puts on a pipeline.
func BenchmarkRead(b *testing.B) {
	for _, tc := range []struct {
		name string
		t    TableConfig
	}{
		{"bench10", TableConfig{Name: "bench.t", Preset: "bench10", Keys: 1_000_000}},
		{"orders", TableConfig{Name: "demo.orders", Preset: "orders", Keys: 1_000_000}},
		{"bench10-row1k", TableConfig{Name: "bench.t", Preset: "bench10", Keys: 1_000_000, RowSize: 1024}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := New(Config{Tables: []TableConfig{tc.t}})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Open(context.Background(), pipeline.OpenOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			rows, bytes := 0, 0
			for rows < b.N {
				batch, err := s.Read(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				rows += len(batch.Records)
				bytes += batch.Bytes
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			// CPU time, GC included, stays meaningful on a shared machine
			// where wall time does not.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(rows), "cpu-ns/row")
			b.ReportMetric(float64(bytes)/float64(rows), "B/row")
		})
	}
}

// BenchmarkRestore measures Open from a checkpoint, which replays key
// existence without generating values; one op is one replayed change.
func BenchmarkRestore(b *testing.B) {
	s, err := New(Config{Tables: []TableConfig{{Name: "bench.t", Preset: "bench10", Keys: 1_000_000}}})
	if err != nil {
		b.Fatal(err)
	}
	st := []byte(fmt.Sprintf(`{"next":%d}`, b.N))
	b.ResetTimer()
	if err := s.Open(context.Background(), pipeline.OpenOptions{State: st}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
