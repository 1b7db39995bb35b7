package dedupe

import (
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// BenchmarkRowHash hashes a cleaned orders row (12 columns of the chain
// benchmark's types).
func BenchmarkRowHash(b *testing.B) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	row := []any{int64(123456789), "paid", int64(4242), int32(3), pipeline.Decimal{Unscaled: 12340, Scale: 2},
		1.5, true, ts.Truncate(24 * time.Hour), "gift wrap", ts, int64(243), pipeline.Decimal{Unscaled: 11353, Scale: 2}}
	var buf []byte
	var h uint64
	for b.Loop() {
		var x uint64
		x, buf = rowHash(buf, row)
		h += x
	}
	_ = h
}
