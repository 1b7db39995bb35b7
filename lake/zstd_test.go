package lake

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/compress"
)

func keptCodec(t *testing.T) *keptZstd {
	t.Helper()
	c, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	kz, ok := c.(*keptZstd)
	if !ok {
		t.Fatalf("the registered zstd codec is %T, not sluice's", c)
	}
	return kz
}

// pageLike is data shaped like Parquet pages: runs, small integers,
// repeated strings and noise.
func pageLike(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	words := []string{"north", "east", "south", "west", "channel-0042", "paid"}
	for len(b) < n {
		switch r.IntN(3) {
		case 0:
			b = append(b, words[r.IntN(len(words))]...)
		case 1:
			b = append(b, byte(r.IntN(8)), 0, 0, 0)
		default:
			b = append(b, byte(r.Uint32()))
		}
	}
	return b[:n]
}

// The kept encoders write exactly what arrow's codec writes, at every
// level Parquet can ask for, and the result decodes back.
func TestKeptZstdSameBytes(t *testing.T) {
	kz := keptCodec(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, level := range []int{compress.DefaultCompressionLevel, 1, 3, 9, 19} {
		for _, n := range []int{0, 1, 100, 64 << 10, 1 << 20, 3 << 20} {
			src := pageLike(r, n)
			got := kz.EncodeLevel(nil, src, level)
			want := kz.Codec.EncodeLevel(nil, src, level)
			if !bytes.Equal(got, want) {
				t.Fatalf("level %d, %d bytes: %d compressed bytes differ from arrow's %d", level, n, len(got), len(want))
			}
			back, err := kz.DecodeWithError(nil, got)
			if err != nil || !bytes.Equal(back, src) {
				t.Fatalf("level %d, %d bytes: round trip: %v", level, n, err)
			}
		}
	}
	if got, want := kz.Encode(nil, []byte("abcabcabc")), kz.Codec.Encode(nil, []byte("abcabcabc")); !bytes.Equal(got, want) {
		t.Fatal("Encode differs from arrow's")
	}
}

// The point of the codec: an encoder survives garbage collections, so a
// page compressed after a collection allocates no new encoder (whose
// history buffer alone is 1 MiB).
func TestKeptZstdSurvivesGC(t *testing.T) {
	kz := keptCodec(t)
	src := pageLike(rand.New(rand.NewPCG(3, 4)), 256<<10)
	dst := make([]byte, 0, 2*len(src))
	kz.EncodeLevel(dst, src, compress.DefaultCompressionLevel) // warm
	measure := func(enc func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			runtime.GC()
			enc()
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	kept := measure(func() { kz.EncodeLevel(dst, src, compress.DefaultCompressionLevel) })
	pooled := measure(func() { kz.Codec.EncodeLevel(dst, src, compress.DefaultCompressionLevel) })
	t.Logf("10 pages, each after a GC: kept encoders allocated %d bytes, arrow's pool %d", kept, pooled)
	if kept > 1<<20 {
		t.Fatalf("kept encoders allocated %d bytes over 10 pages; want well under one encoder's 1 MiB", kept)
	}
	if pooled < 10<<20 {
		t.Logf("arrow's pool kept its encoders this time (%d bytes); the comparison shows nothing", pooled)
	}
}
