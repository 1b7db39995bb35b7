package lake

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-cdc/sluice/pipeline"
)

// chunkRows is how many rows a buffer builds before sealing an arrow batch.
// Sealed batches are compact; only the open builder grows by doubling.
const chunkRows = 1 << 16

// buffer collects one target table's rows between two checkpoints as arrow
// batches. For upsert tables it also tracks, per primary key, the newest row
// of the checkpoint, because an equality delete does not apply to rows added
// in the same snapshot: each key may appear in a checkpoint's data files at
// most once, and the last write must win.
type buffer struct {
	mode    Mode
	schema  *arrow.Schema
	src     *pipeline.Schema
	colIdx  []int // arrow column -> source column, -1 for metadata columns
	app     []appender
	builder *array.RecordBuilder
	chunks  []arrow.RecordBatch
	rows    int64 // rows in chunks and builder
	// poisoned is set when a record could not be stored; see rollback.
	poisoned bool

	// upsert only
	keyCols []int            // source column indexes of the key
	latest  map[string]int64 // encoded key -> newest row index
	// latestInt replaces latest for a single integer key column: no key
	// encoding, no string allocation per row.
	latestInt map[int64]int64
	deleted   []uint64 // bitset over row indexes: row is a delete
	keyBuf    []byte
}

func newBuffer(mode Mode, sc *arrow.Schema, src *pipeline.Schema) (*buffer, error) {
	b := &buffer{mode: mode, schema: sc, src: src}
	for i, f := range sc.Fields() {
		idx := src.ColumnIndex(f.Name)
		// A table column the source lacks (the table's own, or one a
		// replayed old schema version does not have yet) is NULL.
		if idx < 0 && !f.Nullable && !isMetaColumn(mode, f.Name) {
			return nil, fmt.Errorf("table column %s has no source column in %s", f.Name, src.Table)
		}
		app, err := appenderFor(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		b.colIdx = append(b.colIdx, idx)
		b.app = append(b.app, app)
		_ = i
	}
	if mode == ModeUpsert {
		b.keyCols = src.Key
		b.resetKeys()
	}
	return b, nil
}

func (b *buffer) ensureBuilder() {
	if b.builder == nil {
		b.builder = array.NewRecordBuilder(memory.DefaultAllocator, b.schema)
		b.builder.Reserve(1024)
	}
}

// add appends one record. Errors name the record's source position.
func (b *buffer) add(r *pipeline.Record) error {
	row := r.Row()
	if row == nil {
		return fmt.Errorf("%s record at %s has no row image", r.Op, r.Position)
	}
	if len(row) != len(b.src.Columns) {
		return fmt.Errorf("record at %s has %d values, schema of %s has %d columns", r.Position, len(row), b.src.Table, len(b.src.Columns))
	}
	b.ensureBuilder()
	for i, idx := range b.colIdx {
		fb := b.builder.Field(i)
		var v any
		switch {
		case idx >= 0:
			v = row[idx]
		case b.schema.Field(i).Name == colOp:
			v = r.Op.String()
		case b.schema.Field(i).Name == colPos:
			v = r.Position
		case b.schema.Field(i).Name == colEventTime:
			if r.EventTime.IsZero() {
				v = nil
			} else {
				v = r.EventTime
			}
		}
		if v == nil {
			if !b.schema.Field(i).Nullable && !(b.mode == ModeUpsert && r.Op == pipeline.OpDelete) {
				b.rollback(i)
				return fmt.Errorf("record at %s: column %s is NULL but the table requires a value", r.Position, b.schema.Field(i).Name)
			}
			fb.AppendNull()
			continue
		}
		if err := b.app[i](fb, v); err != nil {
			b.rollback(i)
			return fmt.Errorf("record at %s: column %s: %w", r.Position, b.schema.Field(i).Name, err)
		}
	}
	idx := b.rows
	b.rows++
	if b.mode == ModeUpsert {
		if err := b.setLatest(row, idx); err != nil {
			return fmt.Errorf("record at %s: %w", r.Position, err)
		}
		if r.Op == pipeline.OpDelete {
			for int(idx/64) >= len(b.deleted) {
				b.deleted = append(b.deleted, 0)
			}
			b.deleted[idx/64] |= 1 << (idx % 64)
		}
	}
	if b.builder.Field(0).Len() >= chunkRows {
		b.seal()
	}
	return nil
}

// rollback completes a partially appended row (columns before i got a
// value) with nulls and poisons the buffer: a record the sink cannot store
// fails the run, and the checkpoint is never prepared from this buffer. The
// operator chain routes bad records to dead letters before they get here.
func (b *buffer) rollback(i int) {
	for c := i; c < len(b.colIdx); c++ {
		b.builder.Field(c).AppendNull()
	}
	b.rows++
	b.poisoned = true
}

func (b *buffer) seal() {
	if b.builder == nil || b.builder.Field(0).Len() == 0 {
		return
	}
	b.chunks = append(b.chunks, b.builder.NewRecordBatch())
}

func (b *buffer) intKeyed() bool {
	if len(b.keyCols) != 1 {
		return false
	}
	t := b.src.Columns[b.keyCols[0]].Type
	return t == pipeline.TypeInt64 || t == pipeline.TypeInt32
}

func (b *buffer) resetKeys() {
	if b.intKeyed() {
		b.latestInt = make(map[int64]int64)
	} else {
		b.latest = make(map[string]int64)
	}
}

// setLatest records row idx as the newest of its key.
func (b *buffer) setLatest(row []any, idx int64) error {
	if b.latestInt != nil {
		switch v := row[b.keyCols[0]].(type) {
		case int64:
			b.latestInt[v] = idx
			return nil
		case int32:
			b.latestInt[int64(v)] = idx
			return nil
		case nil:
			return fmt.Errorf("primary key column %s is NULL", b.src.Columns[b.keyCols[0]].Name)
		default:
			return fmt.Errorf("primary key column %s: %w: want int64, got %T", b.src.Columns[b.keyCols[0]].Name, errType, v)
		}
	}
	key, err := b.encodeKey(row)
	if err != nil {
		return err
	}
	b.latest[key] = idx
	return nil
}

// encodeKey encodes the key columns into a comparable string.
func (b *buffer) encodeKey(row []any) (string, error) {
	k := b.keyBuf[:0]
	for _, c := range b.keyCols {
		switch v := row[c].(type) {
		case nil:
			return "", fmt.Errorf("primary key column %s is NULL", b.src.Columns[c].Name)
		case int64:
			k = binary.BigEndian.AppendUint64(k, uint64(v))
		case int32:
			k = binary.BigEndian.AppendUint32(k, uint32(v))
		case string:
			k = binary.AppendUvarint(k, uint64(len(v)))
			k = append(k, v...)
		case []byte:
			k = binary.AppendUvarint(k, uint64(len(v)))
			k = append(k, v...)
		case bool:
			if v {
				k = append(k, 1)
			} else {
				k = append(k, 0)
			}
		case float64:
			k = binary.BigEndian.AppendUint64(k, math.Float64bits(v))
		case float32:
			k = binary.BigEndian.AppendUint32(k, math.Float32bits(v))
		case pipeline.Decimal:
			k = binary.BigEndian.AppendUint64(k, uint64(v.Unscaled))
			k = append(k, byte(v.Scale))
		case time.Time:
			k = binary.BigEndian.AppendUint64(k, uint64(v.UnixMicro()))
		case time.Duration:
			k = binary.BigEndian.AppendUint64(k, uint64(v))
		default:
			return "", fmt.Errorf("primary key column %s: unsupported key value %T", b.src.Columns[c].Name, v)
		}
	}
	b.keyBuf = k
	return string(k), nil
}

func (b *buffer) empty() bool { return b.rows == 0 }

// drained is a buffer's content at a checkpoint. Data is produced lazily,
// one chunk at a time, so that the filtered copy of a chunk and the chunk
// itself coexist only briefly: a checkpoint's rows are held once, not twice.
type drained struct {
	// data yields the batches to write; each is owned by the consumer
	// (table.WriteRecords releases what it consumes).
	data iter.Seq2[arrow.RecordBatch, error]
	// deletes hold the key columns of every key the checkpoint touched
	// (upsert only): they remove the key's rows of earlier snapshots.
	deletes    []arrow.RecordBatch
	rows       int64
	deleteRows int64
}

// drain seals the buffer and hands its content over, leaving it empty.
// For upsert tables data is the newest row of each key unless that is a
// delete.
func (b *buffer) drain(ctx context.Context) (*drained, error) {
	if b.poisoned {
		return nil, errors.New("buffer holds a record that failed to convert; refusing to prepare")
	}
	b.seal()
	chunks := b.chunks
	b.chunks = nil
	if b.builder != nil {
		b.builder.Release()
		b.builder = nil
	}
	rows := b.rows
	b.rows = 0
	if b.mode == ModeAppend {
		return &drained{data: batches(chunks), rows: rows}, nil
	}
	keep := make([]uint64, (rows+63)/64)
	for _, idx := range b.latest {
		keep[idx/64] |= 1 << (idx % 64)
	}
	for _, idx := range b.latestInt {
		keep[idx/64] |= 1 << (idx % 64)
	}
	deleted := b.deleted
	b.resetKeys()
	b.deleted = nil
	isDeleted := func(g int64) bool { return int(g/64) < len(deleted) && deleted[g/64]&(1<<(g%64)) != 0 }
	isKept := func(g int64) bool { return keep[g/64]&(1<<(g%64)) != 0 }

	d := &drained{}
	for w, k := range keep {
		var del uint64
		if w < len(deleted) {
			del = deleted[w]
		}
		d.deleteRows += int64(bits.OnesCount64(k))
		d.rows += int64(bits.OnesCount64(k &^ del))
	}
	// Pass 1: the key columns of kept rows, small enough to hold.
	keySchema, keyIdx := b.keySchema()
	var offset int64
	for _, c := range chunks {
		mask := maskOf(c.NumRows(), offset, isKept)
		keysOnly := projectBatch(c, keySchema, keyIdx)
		del, err := compute.FilterRecordBatch(ctx, keysOnly, mask, compute.DefaultFilterOptions())
		keysOnly.Release()
		mask.Release()
		if err != nil {
			releaseAll(chunks)
			releaseAll(d.deletes)
			return nil, fmt.Errorf("select deleted keys: %w", err)
		}
		offset += c.NumRows()
		if del.NumRows() > 0 {
			d.deletes = append(d.deletes, del)
		} else {
			del.Release()
		}
	}
	// Pass 2, lazily: the newest live row of each key, chunk by chunk.
	d.data = func(yield func(arrow.RecordBatch, error) bool) {
		var offset int64
		for i, c := range chunks {
			mask := maskOf(c.NumRows(), offset, func(g int64) bool { return isKept(g) && !isDeleted(g) })
			offset += c.NumRows()
			out, err := compute.FilterRecordBatch(ctx, c, mask, compute.DefaultFilterOptions())
			mask.Release()
			c.Release()
			if err != nil {
				releaseAll(chunks[i+1:])
				yield(nil, fmt.Errorf("select newest rows: %w", err))
				return
			}
			if out.NumRows() == 0 {
				out.Release()
				continue
			}
			if !yield(out, nil) {
				releaseAll(chunks[i+1:])
				return
			}
		}
	}
	return d, nil
}

func maskOf(n, offset int64, pick func(int64) bool) *array.Boolean {
	bb := array.NewBooleanBuilder(memory.DefaultAllocator)
	defer bb.Release()
	bb.Reserve(int(n))
	for i := int64(0); i < n; i++ {
		bb.UnsafeAppend(pick(offset + i))
	}
	return bb.NewBooleanArray()
}

// keySchema is the arrow schema of the equality-delete rows: the key columns.
func (b *buffer) keySchema() (*arrow.Schema, []int) {
	var fields []arrow.Field
	var idx []int
	for _, k := range b.keyCols {
		name := b.src.Columns[k].Name
		for i, f := range b.schema.Fields() {
			if f.Name == name {
				fields = append(fields, f)
				idx = append(idx, i)
			}
		}
	}
	return arrow.NewSchema(fields, nil), idx
}

func projectBatch(rec arrow.RecordBatch, sc *arrow.Schema, idx []int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(idx))
	for i, c := range idx {
		cols[i] = rec.Column(c)
	}
	return array.NewRecordBatch(sc, cols, rec.NumRows())
}

func (b *buffer) release() {
	for _, c := range b.chunks {
		c.Release()
	}
	b.chunks = nil
	if b.builder != nil {
		b.builder.Release()
		b.builder = nil
	}
}
