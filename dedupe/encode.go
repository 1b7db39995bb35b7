package dedupe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Key space of the operator's Pebble database. The single-byte prefixes keep
// the kinds apart. Nothing is rewritten over and over at a fixed key (the
// checkpoint's own bookkeeping lives in a file next to it): such a key would
// make every flushed sstable overlap the previous ones, and an insert-only
// stream of increasing ids could no longer be moved down the LSM without
// rewriting it.
//
//	'k' uvarint(table tag) key columns -> state value (see state)
//	't' "db.table"                     -> uvarint(table tag), written once
const (
	prefixState = 'k'
	prefixTable = 't'
)

// Value tags. Every encoded value starts with one, which makes the
// concatenation of several values self-delimiting (so composite keys cannot
// collide) and keeps a NULL apart from an empty string or a zero. Integers of
// every width share one tag so that widening a column (int -> long) keeps
// both keys and row hashes stable.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagInt
	tagUint // unsigned values above MaxInt64
	tagFloat
	tagDecimal
	tagString
	tagBytes
	tagTime
	tagDuration
	tagOther
)

// appendValue appends the tagged encoding of v. Fixed-width integers are
// big-endian with the sign bit flipped, so increasing ids give increasing
// keys: the sorted lookups then walk Pebble forward, new keys land after
// every existing one and flushes produce non-overlapping sstables.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, tagNull)
	case bool:
		if x {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case int64:
		return appendInt(dst, x)
	case int32:
		return appendInt(dst, int64(x))
	case int:
		return appendInt(dst, int64(x))
	case int16:
		return appendInt(dst, int64(x))
	case int8:
		return appendInt(dst, int64(x))
	case uint8:
		return appendInt(dst, int64(x))
	case uint16:
		return appendInt(dst, int64(x))
	case uint32:
		return appendInt(dst, int64(x))
	case uint64:
		if x <= math.MaxInt64 {
			return appendInt(dst, int64(x))
		}
		dst = append(dst, tagUint)
		return binary.BigEndian.AppendUint64(dst, x)
	case uint:
		return appendValue(dst, uint64(x))
	case float64:
		dst = append(dst, tagFloat)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(x))
	case float32:
		dst = append(dst, tagFloat)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(x)))
	case pipeline.Decimal:
		u, s := normDecimal(x)
		dst = append(dst, tagDecimal)
		dst = binary.BigEndian.AppendUint64(dst, uint64(u)^(1<<63))
		return binary.BigEndian.AppendUint32(dst, uint32(s)^(1<<31))
	case string:
		dst = append(dst, tagString)
		dst = binary.AppendUvarint(dst, uint64(len(x)))
		return append(dst, x...)
	case []byte:
		dst = append(dst, tagBytes)
		dst = binary.AppendUvarint(dst, uint64(len(x)))
		return append(dst, x...)
	case time.Time:
		// The instant, not the zone: sources hand out UTC already, and two
		// renderings of one instant are the same row.
		dst = append(dst, tagTime)
		dst = binary.BigEndian.AppendUint64(dst, uint64(x.Unix())^(1<<63))
		return binary.BigEndian.AppendUint32(dst, uint32(x.Nanosecond()))
	case time.Duration:
		dst = append(dst, tagDuration)
		return binary.BigEndian.AppendUint64(dst, uint64(x)^(1<<63))
	default:
		// Not a pipeline value type; stay correct (if slow) rather than fail.
		s := fmt.Sprintf("%T:%v", v, v)
		dst = append(dst, tagOther)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		return append(dst, s...)
	}
}

func appendInt(dst []byte, x int64) []byte {
	dst = append(dst, tagInt)
	return binary.BigEndian.AppendUint64(dst, uint64(x)^(1<<63))
}

// normDecimal strips trailing zeros so that 1.50 and 1.5 are one value.
func normDecimal(d pipeline.Decimal) (int64, int32) {
	u, s := d.Unscaled, d.Scale
	if u == 0 {
		return 0, 0
	}
	for s > 0 && u%10 == 0 {
		u /= 10
		s--
	}
	return u, s
}

// appendKey appends the encoded key columns of row. ok is false when a key
// column is NULL (or missing): such a row cannot be identified and passes
// untouched, as SQL's NULL never equals NULL.
func appendKey(dst []byte, row []any, idx []int) ([]byte, bool) {
	for _, i := range idx {
		if i >= len(row) || row[i] == nil {
			return dst, false
		}
		dst = appendValue(dst, row[i])
	}
	return dst, true
}

// rowHash hashes a row image: every column's tagged encoding, in column
// order. The tag keeps NULL apart from "" and 0; the column count is implied
// by the tags, so an added NULL column changes the hash (an update after a
// schema change passes once, which is harmless).
func rowHash(buf []byte, row []any) (uint64, []byte) {
	buf = buf[:0]
	for _, v := range row {
		buf = appendValue(buf, v)
	}
	return xxhash.Sum64(buf), buf
}

// Version kinds: values of the configured version column that can be
// compared with each other.
const (
	verNone uint8 = iota
	verInt        // int32/int64, also compared with decimals
	verDecimal
	verTime // date, timestamp, timestamptz
	verString
)

// version is one value of a version column.
type version struct {
	kind uint8
	i    int64  // int value, decimal unscaled, unix seconds
	aux  int32  // decimal scale, nanoseconds
	s    []byte // strings
}

func versionOf(v any) version {
	switch x := v.(type) {
	case int64:
		return version{kind: verInt, i: x}
	case int32:
		return version{kind: verInt, i: int64(x)}
	case int:
		return version{kind: verInt, i: int64(x)}
	case pipeline.Decimal:
		u, s := normDecimal(x)
		return version{kind: verDecimal, i: u, aux: s}
	case time.Time:
		return version{kind: verTime, i: x.Unix(), aux: int32(x.Nanosecond())}
	case string:
		return version{kind: verString, s: []byte(x)}
	case []byte:
		return version{kind: verString, s: x}
	}
	return version{}
}

// compareVersions compares a and b; ok is false when they cannot be compared
// (absent, or of different kinds).
func compareVersions(a, b version) (int, bool) {
	if a.kind == verNone || b.kind == verNone {
		return 0, false
	}
	num := func(k uint8) bool { return k == verInt || k == verDecimal }
	switch {
	case num(a.kind) && num(b.kind):
		as, bs := int32(0), int32(0)
		if a.kind == verDecimal {
			as = a.aux
		}
		if b.kind == verDecimal {
			bs = b.aux
		}
		return compareDecimals(a.i, as, b.i, bs), true
	case a.kind != b.kind:
		return 0, false
	case a.kind == verTime:
		if a.i != b.i {
			return cmpInt(a.i, b.i), true
		}
		return cmpInt(int64(a.aux), int64(b.aux)), true
	case a.kind == verString:
		return bytes.Compare(a.s, b.s), true
	}
	return 0, false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareDecimals compares au*10^-as with bu*10^-bs exactly.
func compareDecimals(au int64, as int32, bu int64, bs int32) int {
	if as == bs {
		return cmpInt(au, bu)
	}
	a, b := big.NewInt(au), big.NewInt(bu)
	ten := big.NewInt(10)
	if as < bs {
		a.Mul(a, new(big.Int).Exp(ten, big.NewInt(int64(bs-as)), nil))
	} else {
		b.Mul(b, new(big.Int).Exp(ten, big.NewInt(int64(as-bs)), nil))
	}
	return a.Cmp(b)
}

// state is what the operator remembers per key: the row's image as the lake
// holds it after every change that passed (a hash, or a tombstone) and the
// order of the last one.
type state struct {
	exists  bool // a (live or tombstone) entry is present and not expired
	tomb    bool
	hash    uint64
	seq     uint64 // 0: unknown
	ver     version
	touched int64 // unix milliseconds of the last write; 0 without a TTL
}

const (
	flagTomb    = 1 << 0
	flagSeq     = 1 << 1
	flagVer     = 1 << 2
	flagTouched = 1 << 3
	stateFlags  = flagTomb | flagSeq | flagVer | flagTouched
)

var errCorrupt = errors.New("dedupe: corrupt state value")

// appendState encodes s in as few bytes as it can, since the state of every
// key ever seen lives on disk and the fraction that fits the block cache
// decides how many lookups read from disk:
//
//	flags, [8-byte hash unless tombstone], [uvarint(seq)],
//	[varint(touched ms)], [version kind, payload]
func appendState(dst []byte, s *state) []byte {
	var f byte
	if s.tomb {
		f |= flagTomb
	}
	if s.seq != 0 {
		f |= flagSeq
	}
	if s.touched != 0 {
		f |= flagTouched
	}
	if s.ver.kind != verNone {
		f |= flagVer
	}
	dst = append(dst, f)
	if !s.tomb {
		dst = binary.BigEndian.AppendUint64(dst, s.hash)
	}
	if s.seq != 0 {
		dst = binary.AppendUvarint(dst, s.seq)
	}
	if s.touched != 0 {
		dst = binary.AppendVarint(dst, s.touched)
	}
	if s.ver.kind != verNone {
		dst = append(dst, s.ver.kind)
		switch s.ver.kind {
		case verString:
			dst = binary.AppendUvarint(dst, uint64(len(s.ver.s)))
			dst = append(dst, s.ver.s...)
		default:
			dst = binary.AppendVarint(dst, s.ver.i)
			dst = binary.AppendVarint(dst, int64(s.ver.aux))
		}
	}
	return dst
}

// decodeState decodes b into s. Version strings alias b.
func decodeState(b []byte, s *state) error {
	*s = state{exists: true}
	if len(b) < 1 || b[0]&^stateFlags != 0 {
		return errCorrupt
	}
	f := b[0]
	b = b[1:]
	var n int
	s.tomb = f&flagTomb != 0
	if !s.tomb {
		if len(b) < 8 {
			return errCorrupt
		}
		s.hash = binary.BigEndian.Uint64(b)
		b = b[8:]
	}
	if f&flagSeq != 0 {
		if s.seq, n = binary.Uvarint(b); n <= 0 {
			return errCorrupt
		}
		b = b[n:]
	}
	if f&flagTouched != 0 {
		if s.touched, n = binary.Varint(b); n <= 0 {
			return errCorrupt
		}
		b = b[n:]
	}
	if f&flagVer != 0 {
		if len(b) < 1 {
			return errCorrupt
		}
		s.ver.kind = b[0]
		b = b[1:]
		switch s.ver.kind {
		case verString:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errCorrupt
			}
			s.ver.s = b[n : n+int(l)]
		case verInt, verDecimal, verTime:
			if s.ver.i, n = binary.Varint(b); n <= 0 {
				return errCorrupt
			}
			b = b[n:]
			aux, n := binary.Varint(b)
			if n <= 0 {
				return errCorrupt
			}
			s.ver.aux = int32(aux)
		default:
			return errCorrupt
		}
	}
	return nil
}

// tablePrefix is the state key prefix of the table with tag.
func tablePrefix(tag uint64) []byte {
	return binary.AppendUvarint([]byte{prefixState}, tag)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}
