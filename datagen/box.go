package datagen

import (
	"time"
	"unsafe"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Why this file exists: a row is []any, and converting an int64, float64,
// string header or time.Time to any allocates one small object per value.
// At ten columns and up to two images per change that was most of the
// generator's cost and most of its garbage. Instead, values are stored in
// typed chunks and interfaces are made to point into them, so one
// allocation serves many values. This is sound because an interface's
// data word of a non-pointer-shaped type is always a pointer to an
// immutable copy of the value; nothing can write through it, and chunks
// are never reused, so a value stays what it was for as long as anyone
// holds it. The GC keeps a chunk alive through interior pointers.

// boxChunk is the number of values per chunk: small enough that one value
// kept by a consumer pins little memory.
const boxChunk = 256

// eface is the runtime's layout of an empty interface.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeWord[T any]() unsafe.Pointer {
	var v any = *new(T)
	return (*eface)(unsafe.Pointer(&v)).typ
}

// slab boxes values of one type.
type slab[T any] struct {
	typ unsafe.Pointer
	buf []T
}

func newSlab[T any]() slab[T] { return slab[T]{typ: typeWord[T]()} }

func (s *slab[T]) box(v T) (out any) {
	if len(s.buf) == 0 {
		s.buf = make([]T, boxChunk)
	}
	p := &s.buf[0]
	*p = v
	s.buf = s.buf[1:]
	e := (*eface)(unsafe.Pointer(&out))
	e.typ, e.data = s.typ, unsafe.Pointer(p)
	return out
}

// boxes holds one slab per boxed Go type.
type boxes struct {
	i32 slab[int32]
	i64 slab[int64]
	f32 slab[float32]
	f64 slab[float64]
	dec slab[pipeline.Decimal]
	str slab[string]
	tm  slab[time.Time]
	dur slab[time.Duration]
}

func newBoxes() boxes {
	return boxes{
		i32: newSlab[int32](), i64: newSlab[int64](), f32: newSlab[float32](), f64: newSlab[float64](),
		dec: newSlab[pipeline.Decimal](), str: newSlab[string](), tm: newSlab[time.Time](), dur: newSlab[time.Duration](),
	}
}
