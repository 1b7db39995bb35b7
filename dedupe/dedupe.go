package dedupe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// Name is the operator's name: it keys the operator's state in manifests.
const Name = "dedupe"

var (
	// ErrNoKey is returned by Process for a table that a rule matches but
	// that has no key: neither the rule's key nor a schema primary key.
	ErrNoKey = errors.New("dedupe: table has no key")
	// ErrColumn is returned by Process when a configured key or version
	// column is missing from a table or has an unusable type.
	ErrColumn = errors.New("dedupe: bad column")
	// ErrState is returned by Open for state bytes it cannot read.
	ErrState = errors.New("dedupe: unreadable operator state")
	// ErrNotOpen is returned when the operator is used before Open or
	// after Close.
	ErrNotOpen = errors.New("dedupe: operator is not open")
)

// sweepBudget is how many state entries one Snapshot examines for expiry
// when a rule has a TTL. Expired entries are already invisible to lookups;
// the sweep only gives their space back, so it may take many checkpoints to
// cover a large table, in exchange for a short, bounded pause per
// checkpoint.
const sweepBudget = 100_000

// Option adjusts an Operator.
type Option func(*Operator)

// WithClock replaces time.Now for TTL decisions (tests, replays).
func WithClock(now func() time.Time) Option {
	return func(o *Operator) { o.now = now }
}

// withFS runs Pebble on another file system (tests: vfs.NewCrashableMem).
func withFS(fs vfs.FS) Option {
	return func(o *Operator) { o.fs = fs }
}

// Stats counts records since New. The counters only grow; they are safe to
// read from any goroutine.
type Stats struct {
	// Records is every record of a deduplicated table that Process saw.
	Records uint64
	// Passed is how many of them were passed on.
	Passed uint64
	// Stale were dropped as older than the change already applied.
	Stale uint64
	// Replay were dropped as the change already applied (same order, same
	// row): replays after a restart, or a second job side by side.
	Replay uint64
	// Unchanged were dropped as changing nothing: an update or insert of
	// the row already stored, a delete of a deleted row.
	Unchanged uint64
	// NullKey were passed without looking at state because a key column
	// was NULL.
	NullKey uint64
	// Expired counts keys found older than their rule's TTL and treated
	// as never seen; Swept counts expired entries deleted from disk.
	Expired uint64
	Swept   uint64
	// PassThrough counts records of tables no rule matches (dead letters
	// included), passed on untouched.
	PassThrough uint64
	// Resets counts restores whose state the directory could not provide
	// (see doc.go); each started from empty state.
	Resets uint64
}

// Dropped is the sum of the drop reasons.
func (s Stats) Dropped() uint64 { return s.Stale + s.Replay + s.Unchanged }

type counters struct {
	records, passed, stale, replay, unchanged, nullKey atomic.Uint64
	expired, swept, passThrough, resets                atomic.Uint64
}

// Operator deduplicates changes by primary key. It implements
// pipeline.Operator; see doc.go for its rules and its checkpoint protocol.
type Operator struct {
	cfg Config
	log *zap.Logger
	now func() time.Time
	fs  vfs.FS

	db   *pebble.DB
	meta meta
	// prev is the checkpoint a restart may still need besides the newest
	// one: the one restored by Open, or sealed by the previous Snapshot.
	prev    uint64
	hasPrev bool

	tags     map[string]uint64 // table registry, "db.table" -> tag
	maxTag   uint64
	tables   map[string]*table
	bindings map[*pipeline.Schema]*binding
	sweepAt  map[uint64][]byte // TTL sweep cursor per table tag

	filter *keyFilter // every key written; nil until Open

	// pending holds the writes since the last flushPending, newest per
	// key; Pebble sees them only when flushPending writes them in key
	// order as one large batch.
	pending *pendingWrites
	// broken is the error of a Process call that failed after staging
	// part of its batch: pending may then hold half a batch's decisions,
	// so the operator refuses further work until a restart restores a
	// checkpoint.
	broken error

	stats counters

	// Scratch reused by every Process call; Process and Snapshot are
	// never concurrent.
	batch   *pebble.Batch
	keys    []byte
	events  []event
	order   []int32
	rest    []int32
	reasons []reason
	hashBuf []byte
	valBuf  []byte
	touched uint64 // keeps the compiler from dropping dedupe's slot loads
}

// table is the per-table state shared by all schemas of one table.
type table struct {
	name       string
	tag        uint64
	registered bool   // the registry entry is on disk (or in the pending batch)
	prefix     []byte // state keys of this table: [prefix, end)
	end        []byte
	ttlMs      int64
	// max is at least the largest state key of this table that may exist;
	// a key above it cannot be found, so its lookup is skipped. Increasing
	// ids (the common case for inserts) therefore never touch Pebble.
	max    []byte
	hasMax bool
}

// binding is what one *pipeline.Schema resolves to.
type binding struct {
	t      *table // nil: no rule matches, pass through
	key    []int
	verIdx int // -1: no version column
}

type eventKind uint8

const (
	evChange eventKind = iota // a record's change to its key
	evPKNew                   // an update that moved its row to this key
	evPKOld                   // the key that update moved the row away from
)

type event struct {
	// pfx is 8 bytes of the key, big-endian, from where the batch's keys
	// start to differ (see sortEvents): comparing it first decides most
	// comparisons without touching the keys.
	pfx      uint64
	hash     uint64 // keyHash of the key
	off, end int32  // the key in Operator.keys
	rec      int32
	kind     eventKind
	seen     bool // the key filter may contain the key
}

type reason uint8

const (
	keep reason = iota
	dropStale
	dropReplay
	dropUnchanged
)

// New validates cfg (after filling its defaults) and returns an operator
// that is ready for Open. log may be nil.
func New(cfg Config, log *zap.Logger, opts ...Option) (*Operator, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	o := &Operator{
		cfg: cfg,
		log: log.With(zap.String("operator", Name)),
		now: time.Now,
		fs:  vfs.Default,
	}
	for _, opt := range opts {
		opt(o)
	}
	return o, nil
}

// Name implements pipeline.Operator.
func (o *Operator) Name() string { return Name }

// Stats returns the counters so far.
func (o *Operator) Stats() Stats {
	c := &o.stats
	return Stats{
		Records: c.records.Load(), Passed: c.passed.Load(),
		Stale: c.stale.Load(), Replay: c.replay.Load(), Unchanged: c.unchanged.Load(),
		NullKey: c.nullKey.Load(), Expired: c.expired.Load(), Swept: c.swept.Load(),
		PassThrough: c.passThrough.Load(), Resets: c.resets.Load(),
	}
}

// Open restores the state of the Snapshot that produced state, or starts
// empty when state is nil. See doc.go.
func (o *Operator) Open(ctx context.Context, state []byte) error {
	if o.db != nil {
		return errors.New("dedupe: Open called twice")
	}
	if len(state) == 0 {
		return o.startEmpty("fresh start")
	}
	want := new(snapState)
	if err := json.Unmarshal(state, want); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if want.DB == "" || want.Epoch == 0 || want.Nonce == "" {
		return fmt.Errorf("%w: %s", ErrState, state)
	}
	started := time.Now()
	why, err := o.restore(want)
	if err != nil {
		return err
	}
	if why != "" {
		// Empty state drops nothing a replay needs: the worst it does is
		// let duplicates through, which the sink's upserts absorb. Wrong
		// state could drop replayed records for good.
		o.stats.resets.Add(1)
		o.log.Warn("dedupe state cannot be restored; starting empty",
			zap.String("reason", why), zap.Uint64("checkpoint", want.Epoch), zap.String("dir", o.cfg.Dir))
		return o.startEmpty(why)
	}
	o.log.Info("dedupe state restored",
		zap.Uint64("checkpoint", want.Epoch), zap.Duration("took", time.Since(started)))
	return nil
}

// restore rebuilds the live database from the checkpoint want names. A
// non-empty reason says why it cannot (and nothing is open then).
func (o *Operator) restore(want *snapState) (string, error) {
	src := o.fs.PathJoin(o.cfg.Dir, ckptName(want.Epoch))
	if _, err := o.fs.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("checkpoint directory %s is missing", src), nil
		}
		return "", fmt.Errorf("dedupe: restore: %w", err)
	}
	m, err := readMeta(o.fs, src)
	if err != nil {
		return "", err
	}
	if m == nil || m.DB != want.DB || m.Epoch != want.Epoch || m.Nonce != want.Nonce {
		return fmt.Sprintf("checkpoint directory %s holds another state (%+v)", src, m), nil
	}
	live := o.fs.PathJoin(o.cfg.Dir, liveDir)
	if err := checkpoint.ClonePebbleCheckpoint(o.fs, src, live, metaFile, filterFile); err != nil {
		return "", fmt.Errorf("dedupe: %w", err)
	}
	db, err := openDB(o.fs, live, o.cfg.CacheSize, o.log)
	if err != nil {
		return "", err
	}
	if err := o.attach(db, m); err != nil {
		return "", err
	}
	o.prev, o.hasPrev = want.Epoch, true
	if o.filter, err = readKeyFilter(o.fs, src, o.cfg.FilterSize); err != nil {
		if !errors.Is(err, errFilter) {
			return "", err
		}
		// Missing (filter_size changed) or damaged: rebuild it from the
		// state, a scan of every key.
		o.log.Info("rebuilding dedupe key filter", zap.Error(err))
		if o.filter, err = o.rebuildFilter(); err != nil {
			_ = o.Close()
			return "", err
		}
	}
	return "", nil
}

func (o *Operator) rebuildFilter() (*keyFilter, error) {
	f := newKeyFilter(o.cfg.FilterSize)
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
	if err != nil {
		return nil, fmt.Errorf("dedupe: rebuild key filter: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		f.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("dedupe: rebuild key filter: %w", err)
	}
	return f, nil
}

// startEmpty replaces whatever the directory holds by an empty database
// with a new lineage id.
func (o *Operator) startEmpty(why string) error {
	ids, err := checkpoint.CheckpointIDs(o.fs, o.cfg.Dir, ckptPrefix)
	if err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	for _, id := range ids {
		if err := removeAll(o.fs, o.fs.PathJoin(o.cfg.Dir, ckptName(id))); err != nil {
			return err
		}
	}
	live := o.fs.PathJoin(o.cfg.Dir, liveDir)
	for _, p := range []string{live, o.fs.PathJoin(o.cfg.Dir, tmpCkpt)} {
		if err := removeAll(o.fs, p); err != nil {
			return err
		}
	}
	db, err := openDB(o.fs, live, o.cfg.CacheSize, o.log)
	if err != nil {
		return err
	}
	m := &meta{DB: randomID()}
	if err := o.attach(db, m); err != nil {
		return err
	}
	o.prev, o.hasPrev = 0, false
	o.filter = newKeyFilter(o.cfg.FilterSize)
	o.log.Info("dedupe state starts empty", zap.String("reason", why), zap.String("dir", o.cfg.Dir))
	return nil
}

func (o *Operator) attach(db *pebble.DB, m *meta) error {
	tags, maxTag, err := loadTables(db)
	if err != nil {
		_ = db.Close()
		return err
	}
	o.db, o.meta = db, *m
	o.tags, o.maxTag = tags, maxTag
	o.tables = map[string]*table{}
	o.bindings = map[*pipeline.Schema]*binding{}
	o.sweepAt = map[uint64][]byte{}
	o.batch = db.NewBatch()
	if o.pending == nil {
		o.pending = newPendingWrites(pendingMaxKeys)
	}
	o.pending.reset()
	o.broken = nil
	return nil
}

// Close releases the database. Changes since the last Snapshot are lost
// with it, on purpose: the next Open restores a checkpoint anyway.
func (o *Operator) Close() error {
	if o.db == nil {
		return nil
	}
	_ = o.batch.Close()
	err := o.db.Close()
	o.db, o.batch = nil, nil
	o.pending = nil
	if err != nil {
		return fmt.Errorf("dedupe: close state: %w", err)
	}
	return nil
}

// bind resolves a schema, once per *Schema: a source hands out a new
// pointer when a table's shape changes, and column positions are looked up
// again then.
func (o *Operator) bind(s *pipeline.Schema) (*binding, error) {
	if b, ok := o.bindings[s]; ok {
		return b, nil
	}
	name := s.Table.String()
	b := &binding{verIdx: -1}
	ri := -1
	if s.Table != pipeline.DeadLetterTable {
		ri = o.cfg.match(name)
	}
	if ri >= 0 {
		rule := o.cfg.Tables[ri]
		if len(rule.Key) > 0 {
			for _, c := range rule.Key {
				i := s.ColumnIndex(c)
				if i < 0 {
					return nil, fmt.Errorf("%w: table %s has no key column %q (tables[%d].key)", ErrColumn, name, c, ri)
				}
				b.key = append(b.key, i)
			}
		} else {
			for _, i := range s.Key {
				if i < 0 || i >= len(s.Columns) {
					return nil, fmt.Errorf("%w: table %s: primary key index %d out of range", ErrColumn, name, i)
				}
			}
			b.key = slices.Clone(s.Key)
		}
		if len(b.key) == 0 {
			return nil, fmt.Errorf("%w: %s (matched by tables[%d]): set tables[%d].key or give the table a primary key", ErrNoKey, name, ri, ri)
		}
		if rule.Version != "" {
			i := s.ColumnIndex(rule.Version)
			if i < 0 {
				return nil, fmt.Errorf("%w: table %s has no version column %q (tables[%d].version)", ErrColumn, name, rule.Version, ri)
			}
			switch s.Columns[i].Type {
			case pipeline.TypeInt32, pipeline.TypeInt64, pipeline.TypeDecimal, pipeline.TypeString,
				pipeline.TypeDate, pipeline.TypeTimestamp, pipeline.TypeTimestampTZ:
			default:
				return nil, fmt.Errorf("%w: table %s: version column %q is %s; expected int, long, decimal, date, timestamp, timestamptz or string (tables[%d].version)",
					ErrColumn, name, rule.Version, s.Columns[i].Type, ri)
			}
			b.verIdx = i
		}
		t, err := o.table(name, rule.TTL)
		if err != nil {
			return nil, err
		}
		b.t = t
	}
	if len(o.bindings) >= 4096 {
		// Schemas churn only with DDL; forget old ones rather than grow.
		clear(o.bindings)
	}
	o.bindings[s] = b
	return b, nil
}

// table returns the per-table state, reading the table's largest key once
// per Open.
func (o *Operator) table(name string, ttl time.Duration) (*table, error) {
	if t, ok := o.tables[name]; ok {
		return t, nil
	}
	tag, registered := o.tags[name]
	if !registered {
		o.maxTag++
		tag = o.maxTag
		o.tags[name] = tag
	}
	t := &table{name: name, tag: tag, registered: registered, ttlMs: ttl.Milliseconds()}
	t.prefix = tablePrefix(tag)
	t.end = prefixEnd(t.prefix)
	if registered {
		it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: t.prefix, UpperBound: t.end})
		if err != nil {
			return nil, fmt.Errorf("dedupe: table %s: %w", name, err)
		}
		if it.Last() {
			t.max, t.hasMax = bytes.Clone(it.Key()), true
		}
		err = it.Error()
		_ = it.Close()
		if err != nil {
			return nil, fmt.Errorf("dedupe: table %s: %w", name, err)
		}
	}
	o.tables[name] = t
	return t, nil
}

// Process implements pipeline.Operator: it passes on the records of b that
// change something, in their original order.
func (o *Operator) Process(ctx context.Context, b *pipeline.Batch, emit func(*pipeline.Batch) error) error {
	if o.db == nil {
		return ErrNotOpen
	}
	if o.broken != nil {
		return o.broken
	}
	if b == nil || b.Schema == nil || len(b.Records) == 0 {
		return emit(b)
	}
	bd, err := o.bind(b.Schema)
	if err != nil {
		return err
	}
	if bd.t == nil {
		o.stats.passThrough.Add(uint64(len(b.Records)))
		return emit(b)
	}
	kept, err := o.dedupe(bd, b.Records)
	if err != nil {
		o.broken = fmt.Errorf("dedupe: table %s: %w", bd.t.name, err)
		return o.broken
	}
	o.stats.records.Add(uint64(len(b.Records)))
	o.stats.passed.Add(uint64(kept))
	switch {
	case kept == len(b.Records):
		return emit(b)
	case kept == 0:
		return nil
	}
	// A new slice: the sink may keep what it is given beyond this call.
	out := &pipeline.Batch{Schema: b.Schema, Records: make([]pipeline.Record, 0, kept)}
	for i := range b.Records {
		if o.reasons[i] == keep {
			out.Records = append(out.Records, b.Records[i])
		}
	}
	if b.Bytes > 0 {
		out.Bytes = int(int64(b.Bytes) * int64(kept) / int64(len(b.Records)))
	}
	return emit(out)
}

// dedupe decides every record of one batch and stages the state changes in
// o.pending (see flushPending). o.reasons[i] says what became of record i;
// the result is the number kept.
//
// The records' keys are sorted so that Pebble is walked forward once per
// batch; records of one key are decided in their original order, so that
// the records of one batch see each other exactly as if they came one by
// one.
func (o *Operator) dedupe(bd *binding, recs []pipeline.Record) (int, error) {
	t := bd.t
	// Flush first when this batch could take the pending writes past
	// their bound (each record stages at most two keys, plus the table's
	// registry entry), so that the index never has to grow.
	if o.pending.len()+2*len(recs)+1 > pendingMaxKeys || len(o.pending.buf) >= pendingMaxBytes {
		if err := o.flushPending(); err != nil {
			return 0, err
		}
	}
	o.keys = o.keys[:0]
	o.events = o.events[:0]
	o.reasons = slices.Grow(o.reasons[:0], len(recs))[:len(recs)]
	nullKeys := 0
	for i := range recs {
		o.reasons[i] = keep
		r := &recs[i]
		row := r.Row()
		switch r.Op {
		case pipeline.OpInsert, pipeline.OpRead, pipeline.OpUpdate:
			if r.After == nil {
				continue // not a change we can judge: pass it on
			}
		case pipeline.OpDelete:
		default:
			continue
		}
		off := len(o.keys)
		o.keys = append(o.keys, t.prefix...)
		var ok bool
		if o.keys, ok = appendKey(o.keys, row, bd.key); !ok {
			o.keys = o.keys[:off]
			nullKeys++
			continue
		}
		ev := event{off: int32(off), end: int32(len(o.keys)), rec: int32(i)}
		if r.Op == pipeline.OpUpdate && r.Before != nil {
			// An update that moves the row to another key: the old key
			// must not keep a live image the lake no longer has.
			off2 := len(o.keys)
			o.keys = append(o.keys, t.prefix...)
			o.keys, ok = appendKey(o.keys, r.Before, bd.key)
			if ok && !bytes.Equal(o.keys[off:off2], o.keys[off2:]) {
				ev.kind = evPKNew
				o.events = append(o.events, event{off: int32(off2), end: int32(len(o.keys)), rec: int32(i), kind: evPKOld})
			} else {
				o.keys = o.keys[:off2]
			}
		}
		o.events = append(o.events, ev)
	}
	o.stats.nullKey.Add(uint64(nullKeys))

	// Probe the key filter for every key in one tight pass: each probe is
	// a cache miss at a random place, and with nothing else in the loop
	// the CPU overlaps many of them. A key the filter does not contain
	// cannot get in while this batch is decided, except by its own writes,
	// so the answers stay valid.
	// The same pass loads each key's slot of the pending writes' index,
	// which stage (and a lookup) will probe: another random cache miss,
	// overlapped here instead of paid one at a time later.
	slots, mask := o.pending.slots, uint64(len(o.pending.slots)-1)
	var touch uint64
	for i := range o.events {
		e := &o.events[i]
		e.hash = keyHash(o.keys[e.off:e.end])
		e.seen = o.filter.mayContainHash(e.hash)
		touch += slots[e.hash&mask]
	}
	o.touched = touch
	o.sortEvents()
	key := o.eventKey

	nowMs := o.now().UnixMilli()
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	var stale, replay, unchanged, expired uint64
	for gi := 0; gi < len(o.order); {
		k := key(o.order[gi])
		gj := gi + 1
		for gj < len(o.order) && bytes.Equal(key(o.order[gj]), k) {
			gj++
		}
		// Look the key up: among the pending writes, then in Pebble unless
		// it lies above every key of the table or was never written.
		// Every key written, pending or not, is in the filter.
		var phys []byte
		found := false
		first := &o.events[o.order[gi]]
		h := first.hash
		if !first.seen {
			// never written
		} else if v, del, ok := o.pending.get(k, h); ok {
			phys, found = v, !del
		} else if t.hasMax && bytes.Compare(k, t.max) <= 0 {
			if it == nil {
				var err error
				if it, err = o.db.NewIter(&pebble.IterOptions{LowerBound: t.prefix, UpperBound: t.end}); err != nil {
					return 0, fmt.Errorf("lookup: %w", err)
				}
			}
			if it.SeekPrefixGE(k) && bytes.Equal(it.Key(), k) {
				phys, found = it.Value(), true
			} else if err := it.Error(); err != nil {
				return 0, fmt.Errorf("lookup: %w", err)
			}
		}
		var st state
		if found {
			if err := decodeState(phys, &st); err != nil {
				return 0, fmt.Errorf("key %x: %w", k, err)
			}
		}
		if found && t.ttlMs > 0 && nowMs-st.touched >= t.ttlMs {
			st = state{}
			expired++
		}
		dirty := false
		for _, ei := range o.order[gi:gj] {
			e := &o.events[ei]
			rs, wrote := o.decide(&st, e, &recs[e.rec], bd)
			dirty = dirty || wrote
			if e.kind != evPKOld {
				o.reasons[e.rec] = rs
				switch rs {
				case dropStale:
					stale++
				case dropReplay:
					replay++
				case dropUnchanged:
					unchanged++
				}
			}
		}
		if dirty {
			st.touched = 0
			if t.ttlMs > 0 {
				st.touched = nowMs
			}
			if err := o.stage(t, k, h, found, &st); err != nil {
				return 0, err
			}
		}
		gi = gj
	}
	o.stats.stale.Add(stale)
	o.stats.replay.Add(replay)
	o.stats.unchanged.Add(unchanged)
	o.stats.expired.Add(expired)
	o.pending.endRun()
	return len(recs) - int(stale+replay+unchanged), nil
}

// Bounds of the pending writes (Operator.pending), reached between two
// Process calls: 2^18 keys take 4 MiB of slots and 5 MiB of entries, plus
// their keys and values (6 MiB for 8-byte ids), in place of the memtables
// they keep from filling. Each flush becomes one L0 sstable about as large
// as a full 16 MiB memtable made.
const (
	pendingMaxKeys  = 1 << 18
	pendingMaxBytes = 16 << 20
)

// flushPending writes the pending state changes to Pebble as one batch in
// key order, unsynced and without a WAL: durability comes from the
// checkpoint in Snapshot, and a restart discards anything after.
//
// Writing each Process call's changes into the memtable cost as much CPU
// as everything else dedupe does: every key is a skiplist insert at a
// random place in a memtable of a few hundred thousand entries. A batch
// this large is instead handed to Pebble as a flushable batch (sorted
// once, flushed as an sstable, never inserted into a skiplist), and the
// lookups of keys written since the last flush are answered by the
// pending writes' own index (pending.go).
func (o *Operator) flushPending() error {
	p := o.pending
	if p.len() == 0 {
		return nil
	}
	// A new batch each time, sized to fit: Pebble keeps a large batch's
	// buffer until it is flushed.
	b := o.db.NewBatchWithSize(len(p.buf) + 16*p.len() + 64)
	err := p.each(func(e *pendEntry) error {
		if e.del {
			return b.Delete(p.key(e), nil)
		}
		return b.Set(p.key(e), p.value(e), nil)
	})
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	_ = b.Close()
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	p.reset()
	return nil
}

func (o *Operator) eventKey(i int32) []byte {
	e := &o.events[i]
	return o.keys[e.off:e.end]
}

// cmpEvents orders events by key, then by position, so that the records of
// one key keep their order.
func (o *Operator) cmpEvents(a, b int32) int {
	if pa, pb := o.events[a].pfx, o.events[b].pfx; pa != pb {
		if pa < pb {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(o.eventKey(a), o.eventKey(b)); c != 0 {
		return c
	}
	return int(a - b)
}

// keyPrefix returns 8 bytes of k from offset from, big-endian, zero-padded:
// for keys that agree on their first from bytes, comparing prefixes agrees
// with bytes.Compare whenever they differ.
func keyPrefix(k []byte, from int) uint64 {
	if from >= len(k) {
		return 0
	}
	k = k[from:]
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// commonPrefix is the length of the prefix that a and b share.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// sortEvents fills o.order with the event indexes in key order. The keys of
// a CDC batch are mostly increasing (new ids) with a minority out of place
// (changes to older rows): the increasing run is kept as it is, only the
// rest is sorted and then merged in, O(n + m log m) instead of O(n log n).
func (o *Operator) sortEvents() {
	// The keys of a batch share a prefix (the table's, the key's type
	// tag, the high bytes of ids): the sort keys start after it.
	if len(o.events) > 0 {
		first := o.eventKey(0)
		common := len(first)
		for i := 1; i < len(o.events) && common > 0; i++ {
			common = commonPrefix(first[:common], o.eventKey(int32(i)))
		}
		for i := range o.events {
			o.events[i].pfx = keyPrefix(o.eventKey(int32(i)), common)
		}
	}
	run, rest := o.order[:0], o.rest[:0]
	for i := range o.events {
		e := int32(i)
		if len(run) == 0 || o.cmpEvents(run[len(run)-1], e) <= 0 {
			run = append(run, e)
		} else {
			rest = append(rest, e)
		}
	}
	o.rest = rest
	if len(rest) == 0 {
		o.order = run
		return
	}
	slices.SortFunc(rest, o.cmpEvents)
	// Merge from the back into run's own array, grown to hold both.
	n := len(run)
	out := slices.Grow(run, len(rest))[:n+len(rest)]
	i, j := n-1, len(rest)-1
	for k := len(out) - 1; j >= 0; k-- {
		if i >= 0 && o.cmpEvents(out[i], rest[j]) > 0 {
			out[k] = out[i]
			i--
		} else {
			out[k] = rest[j]
			j--
		}
	}
	o.order = out
}

// decide applies one event to st (the key's state as of the events before
// it) and says what becomes of its record and whether st changed.
func (o *Operator) decide(st *state, e *event, r *pipeline.Record, bd *binding) (reason, bool) {
	if e.kind == evPKOld {
		// Forget the old key: nothing is dropped on its account later,
		// which is safe whatever the sink did with the old row.
		wrote := st.exists
		*st = state{}
		return keep, wrote
	}
	del := r.Op == pipeline.OpDelete
	var ver version
	if bd.verIdx >= 0 {
		if row := r.Row(); bd.verIdx < len(row) {
			ver = versionOf(row[bd.verIdx])
		}
	}
	var h uint64
	if !del {
		h, o.hashBuf = rowHash(o.hashBuf, r.After)
	}
	c, known := 0, false
	if st.exists {
		c, known = compareOrder(r.Seq, ver, st)
	}
	if e.kind == evPKNew {
		// Moving a row is never dropped (see doc.go); the key now holds
		// this image, whatever order it had before.
		if !known || c >= 0 {
			mergeOrder(st, r.Seq, ver)
		}
		st.exists, st.tomb, st.hash = true, false, h
		return keep, true
	}
	if known && c < 0 {
		return dropStale, false
	}
	noop := st.exists && st.tomb == del && (del || st.hash == h)
	if noop {
		switch {
		case known && c == 0:
			return dropReplay, false
		case known:
			// Newer but identical: remember the newer order, so that a
			// late change between the two is recognized as stale.
			mergeOrder(st, r.Seq, ver)
			return dropUnchanged, true
		}
		return dropUnchanged, false
	}
	// A real change. An equal order lands here too when the image
	// differs: several changes of one row in one transaction share a
	// sequence (a MariaDB GTID), and dropping the later ones would lose
	// them.
	mergeOrder(st, r.Seq, ver)
	st.exists, st.tomb, st.hash = true, del, h
	if del {
		st.hash = 0
	}
	return keep, true
}

// compareOrder compares a change's order with the stored one: by Seq when
// both have one, else by version when both have comparable ones. known is
// false otherwise: only the hash rules apply then.
func compareOrder(seq uint64, ver version, st *state) (int, bool) {
	if seq != 0 && st.seq != 0 {
		switch {
		case seq < st.seq:
			return -1, true
		case seq > st.seq:
			return 1, true
		}
		return 0, true
	}
	return compareVersions(ver, st.ver)
}

// mergeOrder records a passing change's order; what it does not know is
// kept from before.
func mergeOrder(st *state, seq uint64, ver version) {
	if seq != 0 {
		st.seq = seq
	}
	if ver.kind != verNone {
		st.ver = ver
	}
}

// stage adds a key's new state to the pending writes.
func (o *Operator) stage(t *table, k []byte, h uint64, found bool, st *state) error {
	if !t.registered {
		// Pending with the table's first state, so written in the same
		// batch: one cannot exist on disk without the other.
		rk := append([]byte{prefixTable}, t.name...)
		o.pending.put(rk, keyHash(rk), binary.AppendUvarint(nil, t.tag), false)
		t.registered = true
	}
	if !st.exists {
		if found {
			o.pending.put(k, h, nil, true)
		}
		return nil
	}
	o.valBuf = appendState(o.valBuf[:0], st)
	o.pending.put(k, h, o.valBuf, false)
	o.filter.addHash(h)
	if !t.hasMax || bytes.Compare(k, t.max) > 0 {
		t.max, t.hasMax = append(t.max[:0], k...), true
	}
	return nil
}

// Snapshot implements pipeline.Operator. It flushes the live database and
// takes a Pebble checkpoint of it (sstables hard-linked, the small manifest
// copied, everything synced) under ckpt-<id>, then removes every checkpoint
// but this one and the previous one: Snapshot(id) is only called once the
// previous checkpoint finished (the runner runs checkpoints one at a time,
// and a failed one ends the run), so a restart can need no older one.
func (o *Operator) Snapshot(ctx context.Context, id uint64) ([]byte, error) {
	if o.db == nil {
		return nil, ErrNotOpen
	}
	if id == 0 {
		return nil, errors.New("dedupe: checkpoint id 0")
	}
	if o.broken != nil {
		return nil, o.broken
	}
	if err := o.flushPending(); err != nil {
		return nil, fmt.Errorf("dedupe: checkpoint %d: %w", id, err)
	}
	b := o.batch
	b.Reset()
	if err := o.sweep(b); err != nil {
		return nil, err
	}
	if !b.Empty() {
		if err := b.Commit(pebble.NoSync); err != nil {
			return nil, fmt.Errorf("dedupe: checkpoint %d: %w", id, err)
		}
		b.Reset()
	}
	if err := o.db.Flush(); err != nil {
		return nil, fmt.Errorf("dedupe: checkpoint %d: flush: %w", id, err)
	}
	tmp := o.fs.PathJoin(o.cfg.Dir, tmpCkpt)
	dst := o.fs.PathJoin(o.cfg.Dir, ckptName(id))
	// A leftover of a crashed Snapshot, or a checkpoint of a branch a
	// restore abandoned that reused this id: neither is in any manifest.
	if err := removeAll(o.fs, tmp); err != nil {
		return nil, err
	}
	if err := removeAll(o.fs, dst); err != nil {
		return nil, err
	}
	if err := o.db.Checkpoint(tmp); err != nil {
		return nil, fmt.Errorf("dedupe: checkpoint %d: %w", id, err)
	}
	if err := o.filter.write(o.fs, tmp); err != nil {
		return nil, err
	}
	m := meta{DB: o.meta.DB, Epoch: id, Nonce: randomID()}
	// Last, with a sync of the directory that covers both files.
	if err := checkpoint.WriteJSONFile(o.fs, tmp, metaFile, &m); err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	if err := o.fs.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("dedupe: checkpoint %d: %w", id, err)
	}
	if err := checkpoint.SyncDir(o.fs, o.cfg.Dir); err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	o.meta = m
	ids, err := checkpoint.CheckpointIDs(o.fs, o.cfg.Dir, ckptPrefix)
	if err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	for _, old := range ids {
		if old != id && !(o.hasPrev && old == o.prev) {
			if err := removeAll(o.fs, o.fs.PathJoin(o.cfg.Dir, ckptName(old))); err != nil {
				return nil, err
			}
		}
	}
	o.prev, o.hasPrev = id, true
	out, err := json.Marshal(snapState{DB: m.DB, Epoch: id, Nonce: m.Nonce})
	if err != nil {
		return nil, fmt.Errorf("dedupe: encode state: %w", err)
	}
	s := o.Stats()
	o.log.Debug("dedupe state checkpointed",
		zap.Uint64("checkpoint", id), zap.Uint64("records", s.Records),
		zap.Uint64("dropped_stale", s.Stale), zap.Uint64("dropped_replay", s.Replay),
		zap.Uint64("dropped_unchanged", s.Unchanged))
	return out, nil
}

// sweep deletes up to sweepBudget expired entries of tables with a TTL,
// continuing where the previous sweep stopped.
func (o *Operator) sweep(b *pebble.Batch) error {
	budget := sweepBudget
	nowMs := o.now().UnixMilli()
	names := make([]string, 0, len(o.tags))
	for name := range o.tags {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ri := o.cfg.match(name)
		if ri < 0 || o.cfg.Tables[ri].TTL <= 0 || budget <= 0 {
			continue
		}
		ttl := o.cfg.Tables[ri].TTL.Milliseconds()
		tag := o.tags[name]
		lo := tablePrefix(tag)
		hi := prefixEnd(lo)
		it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return fmt.Errorf("dedupe: sweep: %w", err)
		}
		start := lo
		if c, ok := o.sweepAt[tag]; ok {
			start = c
		}
		var swept uint64
		ok := it.SeekGE(start)
		for ; ok && budget > 0; ok = it.Next() {
			budget--
			var st state
			if err := decodeState(it.Value(), &st); err == nil && nowMs-st.touched >= ttl {
				if err := b.Delete(it.Key(), nil); err != nil {
					_ = it.Close()
					return fmt.Errorf("dedupe: sweep: %w", err)
				}
				swept++
			}
		}
		if ok {
			o.sweepAt[tag] = bytes.Clone(it.Key())
		} else {
			delete(o.sweepAt, tag)
		}
		err = it.Error()
		_ = it.Close()
		if err != nil {
			return fmt.Errorf("dedupe: sweep: %w", err)
		}
		o.stats.swept.Add(swept)
	}
	return nil
}
