package dedupe

import "bytes"

// pendingWrites holds the state writes since the last flush to Pebble, the
// newest per key, and answers lookups of them. Why it exists: see
// Operator.flushPending.
//
// It is an open-addressing hash index over entries whose keys and values
// live in one byte arena: no Go pointers, so nothing for the GC to scan,
// and one probe of the slot array (the key's hash is the one the key
// filter computed anyway) for the common case of a key that is not there.
// Entries are kept in insertion order; every Process call stages its keys
// in key order, so the entries form sorted runs, and flushing merges them
// rather than sorting.
type pendingWrites struct {
	// slots: 0 is empty, else the key hash's high 32 bits << 32 | entry
	// index + 1. A power of two, at least twice the entries it may hold.
	slots []uint64
	ents  []pendEntry
	buf   []byte
	// runs holds the start of every run of entries but the first (which
	// starts at 0); a run is the entries of one Process call.
	runs []int32
}

type pendEntry struct {
	koff, klen uint32
	voff, vlen uint32
	del        bool
}

func newPendingWrites(maxKeys int) *pendingWrites {
	n := 1
	for n < 2*maxKeys {
		n <<= 1
	}
	return &pendingWrites{slots: make([]uint64, n)}
}

func (p *pendingWrites) len() int { return len(p.ents) }

func (p *pendingWrites) key(e *pendEntry) []byte { return p.buf[e.koff : e.koff+e.klen] }

func (p *pendingWrites) value(e *pendEntry) []byte { return p.buf[e.voff : e.voff+e.vlen] }

// find returns the slot of key k (hash h): the entry's, or the empty slot
// where it would go.
func (p *pendingWrites) find(k []byte, h uint64) (slot int, idx int32) {
	mask := len(p.slots) - 1
	tag := h >> 32
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := p.slots[i]
		if s == 0 {
			return i, -1
		}
		if s>>32 == tag {
			e := int32(uint32(s)) - 1
			if bytes.Equal(p.key(&p.ents[e]), k) {
				return i, e
			}
		}
	}
}

// get returns the pending write of k: its value, or del for a delete.
func (p *pendingWrites) get(k []byte, h uint64) (v []byte, del, ok bool) {
	if len(p.ents) == 0 {
		return nil, false, false
	}
	_, e := p.find(k, h)
	if e < 0 {
		return nil, false, false
	}
	ent := &p.ents[e]
	return p.value(ent), ent.del, true
}

// put records a write of k (whose keyHash is h): value v, or a delete
// when del.
func (p *pendingWrites) put(k []byte, h uint64, v []byte, del bool) {
	if 2*(len(p.ents)+1) > len(p.slots) {
		p.grow()
	}
	slot, e := p.find(k, h)
	if e >= 0 {
		// A newer write of a pending key: the entry keeps its place (and
		// so its run stays sorted); the old value is left in the arena.
		ent := &p.ents[e]
		ent.voff, ent.vlen, ent.del = uint32(len(p.buf)), uint32(len(v)), del
		p.buf = append(p.buf, v...)
		return
	}
	ent := pendEntry{koff: uint32(len(p.buf)), klen: uint32(len(k)), del: del}
	p.buf = append(p.buf, k...)
	ent.voff, ent.vlen = uint32(len(p.buf)), uint32(len(v))
	p.buf = append(p.buf, v...)
	p.ents = append(p.ents, ent)
	p.slots[slot] = h>>32<<32 | uint64(len(p.ents))
}

// grow doubles the slots: only when a single Process call stages more
// keys than the operator flushes at (a batch of over 100,000 records).
func (p *pendingWrites) grow() {
	p.slots = make([]uint64, 2*len(p.slots))
	mask := len(p.slots) - 1
	for e := range p.ents {
		h := keyHash(p.key(&p.ents[e]))
		i := int(h) & mask
		for p.slots[i] != 0 {
			i = (i + 1) & mask
		}
		p.slots[i] = h>>32<<32 | uint64(e+1)
	}
}

// endRun marks the end of a run of entries put in increasing key order.
func (p *pendingWrites) endRun() {
	n := int32(len(p.ents))
	if n > 0 && (len(p.runs) == 0 || p.runs[len(p.runs)-1] != n) {
		p.runs = append(p.runs, n)
	}
}

// reset forgets every entry.
func (p *pendingWrites) reset() {
	clear(p.slots)
	p.ents, p.buf, p.runs = p.ents[:0], p.buf[:0], p.runs[:0]
}

// each calls fn for every entry in key order.
func (p *pendingWrites) each(fn func(e *pendEntry) error) error {
	p.endRun()
	if len(p.ents) == 0 {
		return nil
	}
	// Sort keys: 8 bytes from where the keys start to differ.
	first := p.key(&p.ents[0])
	common := len(first)
	for i := 1; i < len(p.ents) && common > 0; i++ {
		common = commonPrefix(first[:common], p.key(&p.ents[i]))
	}
	h := &runHeap{p: p, common: common}
	// Each run is normally sorted already; one that is not (a caller that
	// put keys out of order) is split where it steps back, so the merge
	// stays correct whatever the input.
	start := int32(0)
	for _, end := range p.runs {
		for i := start + 1; i <= end; i++ {
			if i == end || bytes.Compare(p.key(&p.ents[i-1]), p.key(&p.ents[i])) > 0 {
				h.push(start, i)
				start = i
			}
		}
		start = end
	}
	for len(h.c) > 0 {
		c := &h.c[0]
		if err := fn(&p.ents[c.cur]); err != nil {
			return err
		}
		if c.cur++; c.cur == c.end {
			last := len(h.c) - 1
			h.c[0] = h.c[last]
			h.c = h.c[:last]
		} else {
			c.pfx = h.prefix(c.cur)
		}
		h.down(0)
	}
	return nil
}

// runHeap is a min-heap of the unmerged rest of each run, [cur, end), by
// its first key. Keys are distinct across runs, since a key has a single
// entry.
type runHeap struct {
	p      *pendingWrites
	common int // the length of the prefix every key shares
	c      []runCursor
}

type runCursor struct {
	pfx      uint64
	cur, end int32
}

func (h *runHeap) prefix(e int32) uint64 { return keyPrefix(h.p.key(&h.p.ents[e]), h.common) }

func (h *runHeap) less(i, j int) bool {
	a, b := &h.c[i], &h.c[j]
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	return bytes.Compare(h.p.key(&h.p.ents[a.cur]), h.p.key(&h.p.ents[b.cur])) < 0
}

func (h *runHeap) push(cur, end int32) {
	h.c = append(h.c, runCursor{pfx: h.prefix(cur), cur: cur, end: end})
	for i := len(h.c) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h.c[i], h.c[parent] = h.c[parent], h.c[i]
		i = parent
	}
}

func (h *runHeap) down(i int) {
	n := len(h.c)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.c[i], h.c[m] = h.c[m], h.c[i]
		i = m
	}
}
