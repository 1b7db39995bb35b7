package lake

import (
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// The Parquet writer compresses every page with the zstd codec that arrow
// registers, which takes an encoder from a sync.Pool per call. A sync.Pool
// is emptied by every garbage collection, and a busy sink collects several
// times a second, so most pages built a new encoder: a history buffer of
// at least 1 MiB, allocated and zeroed, and match tables. In a 10M-row run
// that was 3.5 GB of allocation and about 4% of the process' CPU (zeroing
// alone), plus the collections it caused. keptZstd keeps its encoders
// across collections instead, with the same options, so the bytes written
// are the same.
func init() {
	orig, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return // no zstd in this arrow build: nothing to replace
	}
	compress.RegisterCodec(compress.Codecs.Zstd, &keptZstd{Codec: orig, free: map[zstd.EncoderLevel][]*zstd.Encoder{}})
}

// maxKeptEncoders bounds the idle encoders kept per level (each holds a
// few MiB); more concurrent writers than this make and drop extra ones.
const maxKeptEncoders = 4

// keptZstd is arrow's zstd codec with encoders that survive garbage
// collections. Decoding and streaming stay arrow's.
type keptZstd struct {
	compress.Codec
	mu   sync.Mutex
	free map[zstd.EncoderLevel][]*zstd.Encoder
}

// Encode is arrow's Encode: the default level.
func (z *keptZstd) Encode(dst, src []byte) []byte {
	return z.EncodeLevel(dst, src, compress.DefaultCompressionLevel)
}

// EncodeLevel compresses src as one zstd frame, like arrow's codec.
func (z *keptZstd) EncodeLevel(dst, src []byte, level int) []byte {
	l := zstd.SpeedDefault
	if level != compress.DefaultCompressionLevel {
		l = zstd.EncoderLevelFromZstd(level)
	}
	enc := z.get(l)
	out := enc.EncodeAll(src, dst[:0])
	z.put(l, enc)
	return out
}

func (z *keptZstd) get(l zstd.EncoderLevel) *zstd.Encoder {
	z.mu.Lock()
	if s := z.free[l]; len(s) > 0 {
		enc := s[len(s)-1]
		z.free[l] = s[:len(s)-1]
		z.mu.Unlock()
		return enc
	}
	z.mu.Unlock()
	// arrow's options: the output must not depend on which codec wrote it.
	enc, _ := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l),
		zstd.WithEncoderConcurrency(1), zstd.WithAllLitEntropyCompression(true))
	return enc
}

func (z *keptZstd) put(l zstd.EncoderLevel, enc *zstd.Encoder) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.free[l]) < maxKeptEncoders {
		z.free[l] = append(z.free[l], enc)
	}
}

// DecodeWithError keeps arrow's error-returning decode reachable:
// compress.Decode looks for it on the registered codec.
func (z *keptZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	return compress.Decode(z.Codec, dst, src)
}

// NewReader, NewWriter and NewWriterLevel are arrow's streaming API.
func (z *keptZstd) NewReader(r io.Reader) io.ReadCloser {
	return z.Codec.(compress.StreamingCodec).NewReader(r)
}

func (z *keptZstd) NewWriter(w io.Writer) io.WriteCloser {
	return z.Codec.(compress.StreamingCodec).NewWriter(w)
}

func (z *keptZstd) NewWriterLevel(w io.Writer, level int) (io.WriteCloser, error) {
	return z.Codec.(compress.StreamingCodec).NewWriterLevel(w, level)
}
