package enrich

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluice-cdc/sluice/pipeline"
)

const (
	benchRecords   = 1_000_000
	benchKeys      = 10_000
	benchBatchSize = 1_000
)

// noop passes batches on untouched: the baseline of what driving batches
// through an operator costs.
type noop struct{}

func (noop) Name() string                                     { return "noop" }
func (noop) Open(context.Context, []byte) error               { return nil }
func (noop) Snapshot(context.Context, uint64) ([]byte, error) { return nil, nil }
func (noop) Close() error                                     { return nil }
func (noop) Process(_ context.Context, b *pipeline.Batch, emit func(*pipeline.Batch) error) error {
	return emit(b)
}

// BenchmarkEnrich runs 1M order records (1,000 per batch) whose
// channel_id spreads over 10,000 channels in MariaDB, so that nearly every
// lookup hits the cache:
//
//   - noop: the baseline, an operator that passes batches on;
//   - widen: the records copied two columns wider, without lookups;
//   - cold: a fresh operator per run, 10,000 keys fetched (20 queries of
//     500), the rest hits;
//   - warm: the cache holds every key before the run starts.
//
// Each reports rows/s over the whole 1M records.
func BenchmarkEnrich(b *testing.B) {
	be := mariaBackend(b)
	be.channels(b, benchKeys)
	dims := map[string]Dimension{"channels": be.dim("channels", "id")}
	rules := []Rule{channelRule(MissingNull)}

	in := ordersSchema()
	rng := rand.New(rand.NewPCG(1, 2))
	batches := make([]*pipeline.Batch, 0, benchRecords/benchBatchSize)
	for lo := 0; lo < benchRecords; lo += benchBatchSize {
		recs := make([]pipeline.Record, benchBatchSize)
		for i := range recs {
			recs[i] = pipeline.Record{Op: pipeline.OpInsert, After: []any{int64(lo + i), int32(1 + rng.IntN(benchKeys)), "note"}}
		}
		batches = append(batches, &pipeline.Batch{Schema: in, Records: recs})
	}
	ctx := context.Background()
	var emitted int
	emit := func(b *pipeline.Batch) error {
		emitted += len(b.Records)
		return nil
	}
	runAll := func(b *testing.B, op pipeline.Operator) {
		emitted = 0
		for _, batch := range batches {
			if err := op.Process(ctx, batch, emit); err != nil {
				b.Fatal(err)
			}
		}
		if emitted != benchRecords {
			b.Fatalf("emitted %d records, want %d", emitted, benchRecords)
		}
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("noop", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			runAll(b, noop{})
		}
		report(b)
	})
	b.Run("widen", func(b *testing.B) {
		// What any operator adding two columns pays, lookups aside: the
		// wider copy of every record.
		b.ReportAllocs()
		out := &pipeline.Schema{Table: in.Table, Columns: append(slices.Clone(in.Columns),
			pipeline.Column{Name: "channel_name", Type: pipeline.TypeString, Nullable: true},
			pipeline.Column{Name: "channel_region", Type: pipeline.TypeString, Nullable: true})}
		for b.Loop() {
			emitted = 0
			for _, batch := range batches {
				if err := emit(&pipeline.Batch{Schema: out, Records: widen(batch, len(out.Columns))}); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		var queries, hits, lookups int64
		for b.Loop() {
			b.StopTimer()
			op, err := New(dims, rules)
			if err != nil {
				b.Fatal(err)
			}
			if err := op.Open(ctx, nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			runAll(b, op)
			b.StopTimer()
			st := op.Stats()
			queries, hits, lookups = queries+st.Queries, hits+st.CacheHits, lookups+st.Lookups
			if err := op.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		report(b)
		b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
		b.ReportMetric(float64(hits)/float64(lookups)*100, "hit%")
	})
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		op := open(b, dims, rules)
		runAll(b, op)
		before := op.Stats().Queries
		for b.Loop() {
			runAll(b, op)
		}
		report(b)
		b.ReportMetric(float64(op.Stats().Queries-before)/float64(b.N), "queries/op")
	})
}
