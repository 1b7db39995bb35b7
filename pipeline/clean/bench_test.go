package clean

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// BenchmarkClean pushes 1,000,000 rows of a 10-column table per op
// through a typical rule: trim two strings, cast one, derive one column,
// filter by one predicate. Batches are built once and reused (Process
// does not change its input), so that the benchmark measures cleaning,
// not the generator. In "updates", every 20th record is an update whose
// before-image carries only the key, as datagen's are above 50M keys:
// the derived column then fails on it, which eval tolerates.
func BenchmarkClean(b *testing.B) {
	b.Run("inserts", func(b *testing.B) { benchClean(b, false) })
	b.Run("updates", func(b *testing.B) { benchClean(b, true) })
}

func benchClean(b *testing.B, updates bool) {
	const (
		rowsPerOp = 1_000_000
		batchSize = 1024
		pool      = 64
	)
	s := schema("shop.orders", "id:long!", "name:string?", "email:string?", "amount:string?", "qty:int",
		"status:string?", "created:timestamptz?", "country:string?", "score:double?", "note:string?")
	rule := Rule{
		Match:   "shop.*",
		Trim:    []string{"name", "email"},
		Cast:    map[string]string{"amount": "decimal(12,2)"},
		Columns: Columns{{Name: "total", Expr: "amount * qty"}},
		Where:   `status != "test"`,
	}
	op, err := New([]Rule{rule})
	if err != nil {
		b.Fatal(err)
	}
	statuses := []string{"new", "paid", "shipped", "test"}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	batches := make([]*pipeline.Batch, pool)
	for i := range batches {
		recs := make([]pipeline.Record, batchSize)
		for j := range recs {
			n := int64(i*batchSize + j)
			recs[j] = pipeline.Record{Op: pipeline.OpInsert, After: []any{
				n, fmt.Sprintf("  name %d ", n), fmt.Sprintf("user%d@example.com ", n), fmt.Sprintf("%d.%02d", n%10000, n%100),
				int32(n % 7), statuses[n%4], at.Add(time.Duration(n) * time.Second), "DE", float64(n) / 3, nil,
			}}
			if updates && j%20 == 0 {
				recs[j].Op = pipeline.OpUpdate
				recs[j].Before = make([]any, len(recs[j].After))
				recs[j].Before[0] = n
			}
		}
		batches[i] = &pipeline.Batch{Schema: s, Records: recs}
	}
	ctx := context.Background()
	emit := func(*pipeline.Batch) error { return nil }
	processed := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		done := 0
		for k := 0; done < rowsPerOp; k++ {
			batch := batches[k%pool]
			if err := op.Process(ctx, batch, emit); err != nil {
				b.Fatal(err)
			}
			done += len(batch.Records)
		}
		processed += done
	}
	b.StopTimer()
	rows := float64(processed)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "ns/row")
	if st := op.Stats(); st.DeadLettered != 0 || st.Filtered == 0 {
		b.Fatalf("unexpected stats %+v", st)
	}
}
