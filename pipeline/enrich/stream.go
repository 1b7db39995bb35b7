package enrich

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// A stream dimension lives in the operator's checkpoint.StateDB, next to
// every other stream dimension of the job, under these keys:
//
//	'r' name 0x00 key   the row: the dimension's Columns, encoded (encodeRow)
//	'm' name            its shape: key column and Columns with their types,
//	                    JSON (streamMeta), written when first learnt
//
// Keys are the canonical lookup keys: 8 bytes big-endian with the sign bit
// flipped for integer keys, the text or the bytes otherwise.
const (
	prefixRow  = 'r'
	prefixMeta = 'm'
)

// streamMeta is the persisted shape of a stream dimension: a restored job
// must type its added columns the same way before it sees a batch of the
// dimension's table again.
type streamMeta struct {
	Key     pipeline.Column   `json:"key"`
	Columns []pipeline.Column `json:"columns"`
}

// streamBinding is where a schema of the dimension's table keeps the key
// and the columns, once per *Schema.
type streamBinding struct {
	schema *pipeline.Schema
	key    int
	cols   []int
	// convert[i] is set when column i's type differs from the type the
	// dimension's values have (fixed when first learnt).
	convert []bool
}

// streamDim is the part of a dimension that only stream dimensions have.
type streamDim struct {
	table   string // "db.table"
	keyName string
	prefix  []byte // 'r' name 0x00
	meta    []byte // 'm' name
	// known says whether cols, keyCol and kind are set: from the restored
	// state, a probe of the source, or the first batch of the table.
	known    bool
	probeErr error
	binding  *streamBinding
	// scratch
	kbuf, vbuf []byte
}

func newStreamDim(cfg Dimension) *streamDim {
	s := &streamDim{table: cfg.Stream.Table, keyName: cfg.Stream.Key}
	s.prefix = append(append([]byte{prefixRow}, cfg.Name...), 0)
	s.meta = append([]byte{prefixMeta}, cfg.Name...)
	return s
}

func (d *dimension) streamDescribe() string {
	if d.cfg.Stream.Kafka != nil {
		return d.kafkaDescribe()
	}
	return fmt.Sprintf("dimension %s (stream of table %s)", d.cfg.Name, d.stream.table)
}

// learn fixes the dimension's types.
func (d *dimension) learn(key pipeline.Column, cols []pipeline.Column) error {
	d.keyCol = key
	if d.kind = kindOf(key.Type); d.kind == 0 {
		return fmt.Errorf("%s: key column %s is %s; lookups support integer, text, decimal and binary keys",
			d.streamDescribe(), key.Name, key.Type)
	}
	d.cols = make([]pipeline.Column, len(cols))
	for i, c := range cols {
		c.Nullable = true // a key without a row adds NULLs
		d.cols[i] = c
	}
	d.stream.known = true
	return nil
}

// loadMeta reads the persisted shape, if any.
func (d *dimension) loadMeta(st *checkpoint.StateDB) error {
	v, ok, err := st.Get(d.stream.meta, nil)
	if err != nil || !ok {
		return err
	}
	var m streamMeta
	if err := json.Unmarshal(v, &m); err != nil {
		return fmt.Errorf("%s: stored shape: %w", d.streamDescribe(), err)
	}
	if len(m.Columns) != len(d.cfg.Columns) {
		return fmt.Errorf("%s: the restored state holds columns %v, the configuration asks for %v; "+
			"a stream dimension's columns cannot change without a fresh start of the job", d.streamDescribe(), m.Columns, d.cfg.Columns)
	}
	for i, c := range m.Columns {
		if c.Name != d.cfg.Columns[i] {
			return fmt.Errorf("%s: the restored state holds column %s where the configuration asks for %s; "+
				"a stream dimension's columns cannot change without a fresh start of the job", d.streamDescribe(), c.Name, d.cfg.Columns[i])
		}
	}
	return d.learn(m.Key, m.Columns)
}

func (d *dimension) storeMeta(st *checkpoint.StateDB) error {
	m := streamMeta{Key: d.keyCol, Columns: d.cols}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return st.Set(d.stream.meta, b)
}

// bindStream resolves the key and the columns in a schema of the
// dimension's table, learning the dimension's types on first sight.
func (d *dimension) bindStream(s *pipeline.Schema, st *checkpoint.StateDB) (*streamBinding, error) {
	if b := d.stream.binding; b != nil && b.schema == s {
		return b, nil
	}
	b := &streamBinding{schema: s, key: s.ColumnIndex(d.stream.keyName)}
	if b.key < 0 {
		return nil, fmt.Errorf("%s: table %s (schema version %d) has no key column %q", d.streamDescribe(), s.Table, s.Version, d.stream.keyName)
	}
	cols := make([]pipeline.Column, len(d.cfg.Columns))
	for i, name := range d.cfg.Columns {
		j := s.ColumnIndex(name)
		if j < 0 {
			return nil, fmt.Errorf("%s: table %s (schema version %d) has no column %q", d.streamDescribe(), s.Table, s.Version, name)
		}
		b.cols = append(b.cols, j)
		cols[i] = s.Columns[j]
	}
	if !d.stream.known {
		if err := d.learn(s.Columns[b.key], cols); err != nil {
			return nil, err
		}
		if err := d.storeMeta(st); err != nil {
			return nil, err
		}
	}
	b.convert = make([]bool, len(cols))
	for i, c := range cols {
		b.convert[i] = c.Type != d.cols[i].Type || c.Scale != d.cols[i].Scale
	}
	d.stream.binding = b
	return b, nil
}

// applyStream writes a batch of the dimension's table to the store, in
// order: inserts, reads and updates put the row under its key (an update
// that changes the key removes the old one), deletes remove it. The cache
// follows every write, so that it is never stale.
func (d *dimension) applyStream(b *pipeline.Batch, st *checkpoint.StateDB) (int, error) {
	bd, err := d.bindStream(b.Schema, st)
	if err != nil {
		return 0, err
	}
	sd := d.stream
	row := make([]any, len(d.cols))
	n := 0
	for i := range b.Records {
		r := &b.Records[i]
		var old, cur []any
		switch r.Op {
		case pipeline.OpDelete:
			old = r.Before
		case pipeline.OpUpdate:
			old, cur = r.Before, r.After
		default:
			cur = r.After
		}
		if old != nil {
			if k, ok := d.keyOf(old[bd.key]); ok {
				// The old key goes unless the new image puts it back.
				if cur == nil || !sameKey(d, k, cur[bd.key]) {
					if err := st.Delete(d.storeKey(k)); err != nil {
						return n, err
					}
					if d.cache.Contains(k) {
						d.cache.Add(k, &entry{expires: never})
					}
					n++
				}
			}
		}
		if cur == nil {
			continue
		}
		k, ok := d.keyOf(cur[bd.key])
		if !ok {
			continue // a NULL key matches no record
		}
		for j, c := range bd.cols {
			v := cur[c]
			if bd.convert[j] {
				if v, err = coerce(d.cols[j], v); err != nil {
					return n, fmt.Errorf("%s: key %s: column %s: %w (at %s)", d.streamDescribe(), d.render(k), d.cols[j].Name, err, r.Position)
				}
			}
			row[j] = v
		}
		sd.vbuf, err = encodeRow(sd.vbuf[:0], row)
		if err != nil {
			return n, fmt.Errorf("%s: key %s: %w (at %s)", d.streamDescribe(), d.render(k), err, r.Position)
		}
		if err := st.Set(d.storeKey(k), sd.vbuf); err != nil {
			return n, err
		}
		if d.cache.Contains(k) {
			d.cache.Add(k, &entry{row: slices.Clone(row), expires: never})
		}
		n++
	}
	return n, st.Commit()
}

func sameKey(d *dimension, k lookupKey, v any) bool {
	k2, ok := d.keyOf(v)
	return ok && k2 == k
}

// never is the expiry of a stream dimension's cache entries: the cache is
// updated on every write, so entries never go stale.
var never = time.Unix(1<<62, 0)

func (d *dimension) storeKey(k lookupKey) []byte {
	sd := d.stream
	sd.kbuf = append(sd.kbuf[:0], sd.prefix...)
	if d.kind == keyInt {
		return binary.BigEndian.AppendUint64(sd.kbuf, uint64(k.n)^(1<<63))
	}
	return append(sd.kbuf, k.s...)
}

// fetchStream reads keys (distinct, not cached) from the store, sorted so
// that consecutive reads touch neighbouring blocks, and records each
// outcome in got and in the cache.
func (d *dimension) fetchStream(st *checkpoint.StateDB, keys []lookupKey, got map[lookupKey]*entry) error {
	slices.SortFunc(keys, compareKeys)
	sd := d.stream
	for _, k := range keys {
		v, ok, err := st.Get(d.storeKey(k), sd.vbuf)
		if err != nil {
			return fmt.Errorf("%s: %w", d.streamDescribe(), err)
		}
		sd.vbuf = v
		e := &entry{expires: never}
		if ok {
			if e.row, err = decodeRow(v, len(d.cols)); err != nil {
				return fmt.Errorf("%s: key %s: %w", d.streamDescribe(), d.render(k), err)
			}
		}
		got[k] = e
		d.cache.Add(k, e)
	}
	return nil
}

// coerce brings a value of the dimension's table into the type the
// dimension's column was first learnt with (a later schema version may
// have widened it).
func coerce(c pipeline.Column, v any) (any, error) {
	switch x := v.(type) {
	case int32:
		v = int64(x)
	case float32:
		v = float64(x)
	case pipeline.Decimal:
		v = x.String()
	}
	return convert(c, v)
}

// Value tags of encodeRow.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagInt32
	tagInt64
	tagFloat32
	tagFloat64
	tagDecimal
	tagString
	tagBinary
	tagTime
	tagDuration
)

// encodeRow appends the values, each a tag and its payload.
func encodeRow(b []byte, row []any) ([]byte, error) {
	for _, v := range row {
		switch x := v.(type) {
		case nil:
			b = append(b, tagNull)
		case bool:
			if x {
				b = append(b, tagTrue)
			} else {
				b = append(b, tagFalse)
			}
		case int32:
			b = binary.AppendVarint(append(b, tagInt32), int64(x))
		case int64:
			b = binary.AppendVarint(append(b, tagInt64), x)
		case float32:
			b = binary.BigEndian.AppendUint32(append(b, tagFloat32), math.Float32bits(x))
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, tagFloat64), math.Float64bits(x))
		case pipeline.Decimal:
			b = binary.AppendVarint(binary.AppendVarint(append(b, tagDecimal), x.Unscaled), int64(x.Scale))
		case string:
			b = append(binary.AppendUvarint(append(b, tagString), uint64(len(x))), x...)
		case []byte:
			b = append(binary.AppendUvarint(append(b, tagBinary), uint64(len(x))), x...)
		case time.Time:
			t, err := x.MarshalBinary()
			if err != nil {
				return b, err
			}
			b = append(binary.AppendUvarint(append(b, tagTime), uint64(len(t))), t...)
		case time.Duration:
			b = binary.AppendVarint(append(b, tagDuration), int64(x))
		default:
			return b, fmt.Errorf("cannot store a %T", v)
		}
	}
	return b, nil
}

var errCorrupt = errors.New("corrupt stored row")

// decodeRow is the inverse of encodeRow; strings and bytes are copied.
func decodeRow(b []byte, n int) ([]any, error) {
	row := make([]any, n)
	bad := false
	varint := func() int64 {
		v, k := binary.Varint(b)
		if k <= 0 {
			bad = true
			return 0
		}
		b = b[k:]
		return v
	}
	blob := func() ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, false
		}
		out := b[k : k+int(l)]
		b = b[k+int(l):]
		return out, true
	}
	for i := range row {
		if len(b) == 0 {
			return nil, errCorrupt
		}
		tag := b[0]
		b = b[1:]
		switch tag {
		case tagNull:
		case tagFalse:
			row[i] = false
		case tagTrue:
			row[i] = true
		case tagInt32:
			row[i] = int32(varint())
		case tagInt64:
			row[i] = varint()
		case tagFloat32:
			if len(b) < 4 {
				return nil, errCorrupt
			}
			row[i] = math.Float32frombits(binary.BigEndian.Uint32(b))
			b = b[4:]
		case tagFloat64:
			if len(b) < 8 {
				return nil, errCorrupt
			}
			row[i] = math.Float64frombits(binary.BigEndian.Uint64(b))
			b = b[8:]
		case tagDecimal:
			u := varint()
			row[i] = pipeline.Decimal{Unscaled: u, Scale: int32(varint())}
		case tagString:
			s, ok := blob()
			if !ok {
				return nil, errCorrupt
			}
			row[i] = string(s)
		case tagBinary:
			s, ok := blob()
			if !ok {
				return nil, errCorrupt
			}
			row[i] = slices.Clone(s)
		case tagTime:
			s, ok := blob()
			if !ok {
				return nil, errCorrupt
			}
			var t time.Time
			if err := t.UnmarshalBinary(s); err != nil {
				return nil, err
			}
			row[i] = t
		case tagDuration:
			row[i] = time.Duration(varint())
		default:
			return nil, errCorrupt
		}
	}
	if bad {
		return nil, errCorrupt
	}
	return row, nil
}

// openStreamDimension sets up a stream dimension on the operator's store:
// its shape comes from the store (a restored job), else from a probe of
// the source table when the wiring gave a DSN, else from the first batch
// of the table.
func openStreamDimension(ctx context.Context, cfg Dimension, st *checkpoint.StateDB) (*dimension, error) {
	d := &dimension{cfg: cfg, stream: newStreamDim(cfg)}
	var err error
	if d.cache, err = newCache(cfg.Cache.Size); err != nil {
		return nil, fmt.Errorf("%s: cache: %w", d.describe(), err)
	}
	if err := d.loadMeta(st); err != nil {
		return nil, err
	}
	if d.stream.known || cfg.Stream.ProbeDSN == "" {
		return d, nil
	}
	probe := cfg
	probe.Stream = nil
	probe.JDBC = JDBC{Driver: DriverMySQL, DSN: cfg.Stream.ProbeDSN, Table: cfg.Stream.Table, Key: cfg.Stream.Key}
	pd, err := openDimension(ctx, probe)
	if err != nil {
		// Not fatal: the first batch of the table teaches the types too;
		// a fact table that needs them before says why they are unknown.
		d.stream.probeErr = err
		return d, nil
	}
	_ = pd.close()
	if err := d.learn(pd.keyCol, pd.cols); err != nil {
		return nil, err
	}
	if err := d.storeMeta(st); err != nil {
		return nil, err
	}
	return d, st.Commit()
}
