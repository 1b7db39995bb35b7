package datagen

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

const (
	golden = 0x9e3779b97f4a7c15 // splitmix64's increment
	// Salts separate the independent draws taken from one change's hash.
	saltTable = 0x5851f42d4c957f2d
	saltOp    = 0x2545f4914f6cdd1d
	saltCol   = 0xbf58476d1ce4e5b9
	// eventBase is 2026-01-01T00:00:00Z in milliseconds: change i happens
	// at eventBase + i ms.
	eventBase = 1767225600000
	// poolSize is the span of offsets into a padding pool.
	poolSize = 1 << 16
	// slabRows bounds how many rows share one []any allocation, so that a
	// consumer keeping one row does not pin a whole batch.
	slabRows = 64
	// recordBytes estimates a Record without its images.
	recordBytes = 96
)

// mix is splitmix64's finaliser: a bijection whose output bits each depend
// on every input bit.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below maps a hash uniformly onto [0, n).
func below(h, n uint64) uint64 {
	hi, _ := bits.Mul64(h, n)
	return hi
}

// tableState is the part of the generator that depends on history.
type tableState struct {
	*table
	// last[k] is 1 + the change that last wrote key k, 0 when absent; it
	// doubles as the existence set. It is nil when the key space is too
	// large to track, and exists (bit k: key k is present) is used instead.
	last   []uint64
	exists []uint64
	pool   string // padding source, poolSize+padLen bytes
}

// gen produces the change stream. It is not safe for concurrent use.
type gen struct {
	tables   []tableState
	thr      []uint64 // cumulative weight thresholds over the table hash
	pickSeed uint64
	valSeed  uint64
	next     uint64 // the next change to produce

	// Scratch reused across rows.
	sbuf  []byte
	ends  []int
	pbuf  []byte
	pend  []int
	slab  []any
	box   boxes
	picks []picked
}

// picked is pass 1's result for one change of a batch; prev holds the op
// hash until apply replaces it.
type picked struct {
	k, prev uint64
	op      pipeline.Op
}

func newGen(cfg Config) (*gen, error) {
	g := &gen{box: newBoxes()}
	seed := uint64(cfg.Seed)
	g.pickSeed = mix(seed ^ 0x243f6a8885a308d3)
	g.valSeed = mix(seed ^ 0x13198a2e03707344)
	var wsum float64
	for i := range cfg.Tables {
		t, err := buildTable(&cfg.Tables[i], fmt.Sprintf("source.datagen.tables[%d]", i))
		if err != nil {
			return nil, err
		}
		ts := tableState{table: t}
		if t.padLen > 0 {
			ts.pool = makePool(poolSize + t.padLen)
		}
		g.tables = append(g.tables, ts)
		wsum += cfg.Tables[i].Weight
	}
	var cum float64
	for i := range cfg.Tables {
		cum += cfg.Tables[i].Weight
		f := cum / wsum * (1 << 64)
		if f >= 1<<64 || i == len(cfg.Tables)-1 {
			g.thr = append(g.thr, math.MaxUint64)
		} else {
			g.thr = append(g.thr, uint64(f))
		}
	}
	return g, nil
}

// makePool returns n pseudo-random alphanumeric bytes; padding is cut from
// it at a varying offset so that padded values differ without costing a
// hash per byte.
func makePool(n int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	b := make([]byte, n)
	var h uint64
	for i := range b {
		if i%8 == 0 {
			h = mix(uint64(i) + 0x452821e638d01377)
		}
		b[i] = alpha[h%uint64(len(alpha))]
		h >>= 8
	}
	return string(b)
}

// reset forgets all history: the next change is 0.
func (g *gen) reset() {
	for i := range g.tables {
		ts := &g.tables[i]
		ts.exists, ts.last = nil, nil
		if ts.keys <= maxTrackedKeys {
			ts.last = make([]uint64, ts.keys)
		} else {
			ts.exists = make([]uint64, (ts.keys+63)/64)
		}
	}
	g.next = 0
}

// pick draws change i's table, key and op hash: a pure function of the seed
// and i, which is what lets a restart resume at any i.
func (g *gen) pick(i uint64) (t int, k, hop uint64) {
	t = g.tableOf(i)
	x := g.pickSeed + i*golden
	return t, below(mix(x), g.tables[t].keys), mix(x ^ saltOp)
}

// tableOf draws change i's table by weight, without touching any state, so
// that a batch can be cut before it is generated.
func (g *gen) tableOf(i uint64) int {
	if len(g.thr) == 1 {
		return 0
	}
	ht := mix((g.pickSeed + i*golden) ^ saltTable)
	t := 0
	for t < len(g.thr)-1 && ht >= g.thr[t] {
		t++
	}
	return t
}

// apply advances key k's existence for change i and returns the op and the
// previous writer of k (1-based, 0 when none or untracked).
func (ts *tableState) apply(i, k, hop uint64) (op pipeline.Op, prev uint64) {
	del := ts.allDelete || hop < ts.delThr
	if ts.last != nil {
		// One random access per change: this is the cache miss that
		// dominates restores over large key spaces.
		p := &ts.last[k]
		prev = *p
		switch {
		case prev == 0:
			*p = i + 1
			return pipeline.OpInsert, 0
		case del:
			*p = 0
			return pipeline.OpDelete, prev
		default:
			*p = i + 1
			return pipeline.OpUpdate, prev
		}
	}
	w, b := k>>6, uint64(1)<<(k&63)
	switch {
	case ts.exists[w]&b == 0:
		ts.exists[w] |= b
		return pipeline.OpInsert, 0
	case del:
		ts.exists[w] &^= b
		return pipeline.OpDelete, 0
	default:
		return pipeline.OpUpdate, 0
	}
}

// skipTo replays existence up to change n without generating values.
func (g *gen) skipTo(ctx context.Context, n uint64) error {
	for i := g.next; i < n; i++ {
		if i&(1<<20-1) == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		t, k, hop := g.pick(i)
		g.tables[t].apply(i, k, hop)
	}
	g.next = max(g.next, n)
	return nil
}

// runLength counts how many changes from g.next on, up to max and before
// limit, go to the same table: a batch holds one table.
func (g *gen) runLength(maxN int, limit uint64) int {
	if g.next >= limit {
		return 0
	}
	maxN = int(min(uint64(maxN), limit-g.next))
	if len(g.thr) == 1 {
		return maxN
	}
	t := g.tableOf(g.next)
	n := 1
	for n < maxN && g.tableOf(g.next+uint64(n)) == t {
		n++
	}
	return n
}

// batch generates the next changes, at most maxN and before limit, cutting
// where the table changes. It returns nil when limit is reached.
func (g *gen) batch(maxN int, limit uint64) *pipeline.Batch {
	n := g.runLength(maxN, limit)
	if n == 0 {
		return nil
	}
	t0 := g.tableOf(g.next)
	ts := &g.tables[t0]
	recs := make([]pipeline.Record, n)
	// Pass 1 advances existence for the whole batch in a tight loop, so
	// that the CPU overlaps the cache misses on lastChange of a large key
	// space; pass 2 generates the values. Two changes of one key in the
	// batch still see each other in order: apply is sequential.
	g.picks = slices.Grow(g.picks[:0], n)[:n]
	for j := range g.picks {
		t, k, hop := g.pick(g.next + uint64(j))
		if t != t0 {
			panic("datagen: batch crossed a table boundary") // runLength guarantees it cannot
		}
		g.picks[j] = picked{k: k, prev: hop}
	}
	for j := range g.picks {
		p := &g.picks[j]
		p.op, p.prev = ts.apply(g.next+uint64(j), p.k, p.prev)
	}
	g.pbuf = g.pbuf[:0]
	g.pend = g.pend[:0]
	bytes := 0
	for j := range recs {
		i := g.next
		p := &g.picks[j]
		r := &recs[j]
		r.Op = p.op
		r.EventTime = time.UnixMilli(eventBase + int64(i)).UTC()
		if p.op != pipeline.OpInsert {
			r.Before = g.image(len(ts.cols))
			if p.prev > 0 {
				bytes += g.fill(ts, r.Before, p.prev-1, p.k, false)
			} else {
				bytes += g.fill(ts, r.Before, 0, p.k, true)
			}
		}
		if p.op != pipeline.OpDelete {
			r.After = g.image(len(ts.cols))
			bytes += g.fill(ts, r.After, i, p.k, false)
		}
		r.Seq = i + 1 // Seq 0 means unknown; change i is the (i+1)-th
		g.pbuf = append(g.pbuf, "seq="...)
		g.pbuf = strconv.AppendUint(g.pbuf, i, 10)
		g.pend = append(g.pend, len(g.pbuf))
		g.next++
	}
	// One allocation for all positions of the batch.
	ps := string(g.pbuf)
	start := 0
	for j := range recs {
		recs[j].Position = ps[start:g.pend[j]]
		start = g.pend[j]
	}
	bytes += n*recordBytes + len(ps)
	return &pipeline.Batch{Schema: ts.schema, Records: recs, Bytes: bytes}
}

// image hands out a row slice from a shared slab, capped so that appending
// to it cannot clobber its neighbour.
func (g *gen) image(n int) []any {
	if len(g.slab) < n {
		g.slab = make([]any, n*slabRows)
	}
	s := g.slab[:n:n]
	g.slab = g.slab[n:]
	return s
}

// fill writes the row image that change i gave key k into dst and returns
// its estimated size. keyOnly fills the key columns and leaves the rest
// nil, for before images of keys too many to track.
func (g *gen) fill(ts *tableState, dst []any, i, k uint64, keyOnly bool) int {
	rh := mix(g.valSeed + i*golden)
	buf := g.sbuf[:0]
	ends := g.ends[:0]
	for c := range ts.cols {
		cg := &ts.cols[c]
		if cg.key {
			kv := k
			if cg.keyMod != 0 {
				kv = k % cg.keyMod
			}
			switch cg.kind {
			case kInt32:
				dst[c] = g.box.i32.box(int32(kv))
			case kInt64:
				dst[c] = g.box.i64.box(int64(kv))
			case kDecimal:
				dst[c] = g.box.dec.box(pipeline.Decimal{Unscaled: int64(kv), Scale: cg.scale})
			case kString:
				buf = appendKey(buf, kv)
				ends = append(ends, len(buf))
			case kBinary:
				var b [8]byte
				for j := range b {
					b[j] = byte(kv >> (56 - 8*j))
				}
				dst[c] = b[:]
			}
			continue
		}
		if keyOnly {
			if cg.kind == kString {
				ends = append(ends, -1)
			}
			dst[c] = nil
			continue
		}
		v := mix(rh + uint64(c+1)*saltCol)
		// The null draw uses the top bits, values mostly the low ones.
		if cg.nullable && (v>>32)*20>>32 == 0 {
			if cg.kind == kString {
				ends = append(ends, -1)
			}
			dst[c] = nil
			continue
		}
		switch cg.kind {
		case kBool:
			dst[c] = v&1 == 1
		case kInt32:
			dst[c] = g.box.i32.box(int32(cg.lo + int64(below(v, cg.span))))
		case kInt64:
			if cg.span == 0 {
				dst[c] = g.box.i64.box(int64(v))
			} else {
				dst[c] = g.box.i64.box(cg.lo + int64(below(v, cg.span)))
			}
		case kFloat32:
			dst[c] = g.box.f32.box(float32(cg.flo + unit(v)*cg.fw))
		case kFloat64:
			dst[c] = g.box.f64.box(cg.flo + unit(v)*cg.fw)
		case kDecimal:
			dst[c] = g.box.dec.box(pipeline.Decimal{Unscaled: cg.lo + int64(below(v, cg.span)), Scale: cg.scale})
		case kString:
			start := len(buf)
			buf = append(buf, cg.prefix...)
			buf = appendBase32(buf, v>>19)
			if need := cg.pad - (len(buf) - start); need > 0 {
				off := int(v & (poolSize - 1))
				buf = append(buf, ts.pool[off:off+need]...)
			}
			ends = append(ends, len(buf))
		case kEnum:
			dst[c] = cg.enum[below(v, uint64(len(cg.enum)))]
		case kBinary:
			b := make([]byte, 16)
			w := mix(v)
			for j := range 8 {
				b[j] = byte(v >> (8 * j))
				b[8+j] = byte(w >> (8 * j))
			}
			dst[c] = b
		case kDate:
			dst[c] = g.box.tm.box(time.Unix((cg.lo+int64(below(v, cg.span)))*86400, 0).UTC())
		case kTime:
			dst[c] = g.box.dur.box(time.Duration(below(v, cg.span)) * time.Microsecond)
		case kTimestamp:
			dst[c] = g.box.tm.box(time.UnixMicro(cg.lo + int64(below(v, cg.span))).UTC())
		case kEventTime:
			dst[c] = g.box.tm.box(time.UnixMilli(eventBase + int64(i)).UTC())
		}
	}
	size := ts.fixedBytes + len(buf)
	if len(ends) > 0 {
		// One allocation holds every string of the row.
		s := string(buf)
		start := 0
		for j, c := range ts.strCols {
			if e := ends[j]; e >= 0 {
				dst[c] = g.box.str.box(s[start:e])
				start = e
			}
		}
	}
	g.sbuf, g.ends = buf, ends
	return size
}

// unit maps a hash onto [0, 1) with 53 bits: never NaN or infinite.
func unit(v uint64) float64 { return float64(v>>11) * (1.0 / (1 << 53)) }

// appendBase32 writes the low 45 bits of v as 9 base-32 digits: shifts,
// not the divisions strconv needs for a base other than 10.
func appendBase32(b []byte, v uint64) []byte {
	const digits = "0123456789abcdefghijklmnopqrstuv"
	n := len(b)
	b = slices.Grow(b, 9)[:n+9]
	d := (*[9]byte)(b[n:])
	for j := 8; j >= 0; j-- {
		d[j] = digits[v&31]
		v >>= 5
	}
	return b
}

// appendKey formats key number k as "k%08d" without fmt.
func appendKey(b []byte, k uint64) []byte {
	b = append(b, 'k')
	var d [20]byte
	s := strconv.AppendUint(d[:0], k, 10)
	for j := len(s); j < 8; j++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
