package enrich

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// Name is the operator's name: the stage of its dead letters and the key
// of its (empty) state in manifests.
const Name = "enrich"

// Stats are the operator's counters since New. Lookups = CacheHits +
// CacheMisses; Missing counts records with no dimension row (NULL and
// impossible keys included), of which Dropped were dropped and
// DeadLettered were sent to the dead-letter table (with the unreadable
// messages of Kafka-fed dimensions). A record matched by several rules
// counts once per rule.
type Stats struct {
	Lookups      int64 // record keys looked up (deletes and NULL keys are not)
	CacheHits    int64 // lookups answered by the cache, found or not found
	CacheMisses  int64 // lookups the cache could not answer
	KeysFetched  int64 // distinct keys asked of the databases or the store
	Queries      int64 // lookup queries (round trips) issued
	Missing      int64
	Dropped      int64
	DeadLettered int64
	CacheEntries int64 // keys held by all caches after the last batch
	// StreamChanges counts the rows written to or removed from stream
	// dimensions' stores.
	StreamChanges int64
}

type counters struct {
	lookups, hits, misses, fetched, queries, missing, dropped, deadLettered, entries, applied atomic.Int64
}

// Option adjusts an Operator.
type Option func(*Operator)

// WithClock sets the clock that cache entries expire by; default
// time.Now. Tests move it to expire entries without sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *Operator) { o.now = now }
}

// DefaultStateDir is where stream dimensions are stored when no
// directory is given: next to the checkpoint store's default "./state".
const DefaultStateDir = "./state/enrich"

// DefaultStateCacheSize is the block cache of the stream dimensions'
// store: small, because the operator's own LRU caches hold the hot keys.
const DefaultStateCacheSize int64 = 8 << 20

// WithStateDir sets the directory of the stream dimensions' store (the
// operator owns it); default DefaultStateDir. Unused without stream
// dimensions.
func WithStateDir(dir string) Option {
	return func(o *Operator) { o.stateDir = dir }
}

// WithStateCacheSize sets the store's Pebble block cache in bytes;
// default DefaultStateCacheSize.
func WithStateCacheSize(n int64) Option {
	return func(o *Operator) { o.stateCache = n }
}

// Operator is the lookup join. See the package documentation.
type Operator struct {
	cfg   Config
	rules []*rule
	now   func() time.Time
	stats counters

	stateDir   string
	stateCache int64

	// Set by Open, used by the single goroutine that runs Process.
	dims  map[string]*dimension
	plans map[pipeline.TableID]*plan
	// store holds the stream dimensions (nil without any); streams maps
	// a source table "db.table" to the stream dimensions it keeps.
	store   *checkpoint.StateDB
	streams map[string][]*dimension
	// feeds are the stream dimensions fed from Kafka topics, in name
	// order.
	feeds []*dimension

	// scratch reused across batches
	res     []*entry
	keys    []lookupKey
	usable  []bool
	dropped []bool
	pending []lookupKey
	seen    map[lookupKey]struct{}
	got     map[lookupKey]*entry
}

var _ pipeline.Operator = (*Operator)(nil)

// rule is a validated Rule with its additions in output order.
type rule struct {
	idx  int
	cfg  Rule
	adds []addition
}

type addition struct {
	as   string
	from int // index into the dimension's Columns
}

// plan is what one input schema becomes: the output schema and the rules
// that apply, in order. A plan without steps passes batches through.
type plan struct {
	in, out *pipeline.Schema
	steps   []step
}

type step struct {
	rule *rule
	dim  *dimension
	on   int // index of the key column in the output row
	dst  int // index of the rule's first added column in the output row
}

// New validates the configuration (applying defaults to copies of dims
// and rules) and returns an operator that connects on Open.
func New(dims map[string]Dimension, rules []Rule, opts ...Option) (*Operator, error) {
	cfg := Config{Dimensions: maps.Clone(dims), Rules: slices.Clone(rules)}
	for name, d := range cfg.Dimensions {
		d.Columns = slices.Clone(d.Columns)
		cfg.Dimensions[name] = d
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &Operator{cfg: cfg, now: time.Now, stateDir: DefaultStateDir, stateCache: DefaultStateCacheSize}
	for i, r := range cfg.Rules {
		cols := cfg.Dimensions[r.Dim].Columns
		cr := &rule{idx: i, cfg: r}
		for _, as := range sortedKeys(r.Add) {
			cr.adds = append(cr.adds, addition{as: as, from: slices.Index(cols, r.Add[as])})
		}
		o.rules = append(o.rules, cr)
	}
	for _, opt := range opts {
		opt(o)
	}
	return o, nil
}

// Name implements pipeline.Operator.
func (o *Operator) Name() string { return Name }

// Open connects to every JDBC dimension a rule uses, checks its table and
// reads its column types. Stream dimensions are restored from state (the
// bytes a Snapshot returned; nil on a fresh start, which starts them
// empty). Open may follow Close to run again (a restarted job); the
// caches start empty.
func (o *Operator) Open(ctx context.Context, state []byte) (err error) {
	if o.dims != nil {
		if err := o.Close(); err != nil {
			return err
		}
	}
	var used []string
	for _, r := range o.rules {
		used = append(used, r.cfg.Dim)
	}
	slices.Sort(used)
	used = slices.Compact(used)
	dims := make(map[string]*dimension, len(used))
	streams := map[string][]*dimension{}
	var feeds []*dimension
	var store *checkpoint.StateDB
	defer func() {
		if err != nil {
			for _, od := range dims {
				_ = od.close()
			}
			if store != nil {
				_ = store.Close()
			}
		}
	}()
	for _, name := range used {
		if o.cfg.Dimensions[name].Stream != nil && store == nil {
			if store, err = checkpoint.OpenStateDB(checkpoint.StateDBOptions{Dir: o.stateDir, CacheSize: o.stateCache}, state); err != nil {
				if errors.Is(err, checkpoint.ErrStateLost) {
					return fmt.Errorf("stream dimensions: %w; they cannot be rebuilt by a replay "+
						"(delete the job's checkpoint directory to start the job over with a fresh snapshot)", err)
				}
				return fmt.Errorf("stream dimensions: %w", err)
			}
		}
	}
	for _, name := range used {
		cfg := o.cfg.Dimensions[name]
		if cfg.Stream == nil {
			d, err := openDimension(ctx, cfg)
			if err != nil {
				return err
			}
			dims[name] = d
			continue
		}
		d, err := openStreamDimension(ctx, cfg, store)
		if err != nil {
			return err
		}
		dims[name] = d
		if cfg.Stream.Kafka != nil {
			if err := d.openKafkaFeed(ctx, store); err != nil {
				return err
			}
			feeds = append(feeds, d)
			continue
		}
		streams[cfg.Stream.Table] = append(streams[cfg.Stream.Table], d)
	}
	o.dims, o.store, o.streams, o.feeds = dims, store, streams, feeds
	o.plans = map[pipeline.TableID]*plan{}
	o.seen = map[lookupKey]struct{}{}
	o.got = map[lookupKey]*entry{}
	return nil
}

// Snapshot implements pipeline.Operator. JDBC dimensions have no state:
// their caches are a copy of the dimensions as of processing time,
// rebuilt by lookups after a restart. Stream dimensions are checkpointed:
// their store is made durable as checkpoint id (see checkpoint.StateDB).
func (o *Operator) Snapshot(_ context.Context, id uint64) ([]byte, error) {
	if o.store == nil {
		return nil, nil
	}
	return o.store.Snapshot(id)
}

// Close closes the dimensions' connections and store, and empties their
// caches. Stream dimension changes since the last Snapshot are dropped:
// the next Open restores a checkpoint, and the source replays from it.
func (o *Operator) Close() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(o.dims)) {
		if err := o.dims[name].close(); err != nil {
			errs = append(errs, fmt.Errorf("dimension %s: close: %w", name, err))
		}
	}
	if o.store != nil {
		errs = append(errs, o.store.Close())
	}
	o.dims, o.plans, o.store, o.streams, o.feeds = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}

// Stats returns the counters. Safe to call from any goroutine.
func (o *Operator) Stats() Stats {
	c := &o.stats
	return Stats{
		Lookups: c.lookups.Load(), CacheHits: c.hits.Load(), CacheMisses: c.misses.Load(),
		KeysFetched: c.fetched.Load(), Queries: c.queries.Load(), Missing: c.missing.Load(),
		Dropped: c.dropped.Load(), DeadLettered: c.deadLettered.Load(), CacheEntries: c.entries.Load(),
		StreamChanges: c.applied.Load(),
	}
}

// Process enriches one batch. Batches of tables no rule matches, and
// dead-letter batches, pass through as they are. Otherwise it emits the
// enriched batch (records in input order, minus dropped and dead-lettered
// ones; nothing when none is left), then a batch of dead letters if any.
// A failed lookup query is returned as an error, never dead-lettered: it
// says nothing about the record, and the runner restarts from the last
// checkpoint.
func (o *Operator) Process(ctx context.Context, b *pipeline.Batch, emit func(*pipeline.Batch) error) error {
	if o.dims == nil {
		return errors.New("process called before open")
	}
	if len(o.feeds) > 0 {
		// Kafka-fed dimensions take in what their topics have before the
		// batch is looked up (all of it, up to the end, before the
		// first batch).
		var dead []pipeline.Record
		for _, d := range o.feeds {
			if err := o.pullKafka(ctx, d, &dead); err != nil {
				return err
			}
		}
		if len(dead) > 0 {
			o.stats.deadLettered.Add(int64(len(dead)))
			if err := emit(&pipeline.Batch{Schema: pipeline.DeadLetterSchema, Records: dead}); err != nil {
				return err
			}
		}
	}
	if b.Schema.Table == pipeline.DeadLetterTable {
		return emit(b)
	}
	if len(o.streams) > 0 {
		// A batch of a stream dimension's table is applied before it is
		// passed on (and enriched itself, if rules match it): records
		// after it in the stream see its changes.
		for _, d := range o.streams[b.Schema.Table.String()] {
			n, err := d.applyStream(b, o.store)
			o.stats.applied.Add(int64(n))
			if err != nil {
				return err
			}
		}
	}
	p, err := o.planFor(b.Schema)
	if err != nil {
		return err
	}
	if len(p.steps) == 0 {
		return emit(b)
	}
	out := widen(b, len(p.out.Columns))
	n := len(out)
	o.dropped = grow(o.dropped, n)
	clear(o.dropped)
	var dead []pipeline.Record
	// One clock reading per batch: a batch is enriched as of one moment.
	now := o.now()
	for _, st := range p.steps {
		if err := o.apply(ctx, st, b, out, now, &dead); err != nil {
			return err
		}
	}
	var entries int64
	for _, d := range o.dims {
		entries += int64(d.cache.Len())
	}
	o.stats.entries.Store(entries)

	kept := out[:0]
	for i := range out {
		if !o.dropped[i] {
			kept = append(kept, out[i])
		}
	}
	if len(kept) > 0 {
		bytes := 0
		if b.Bytes > 0 && n > 0 {
			// The input's share per record plus an interface header per
			// added value; the values themselves are shared with the cache.
			bytes = b.Bytes/n*len(kept) + len(kept)*(len(p.out.Columns)-len(b.Schema.Columns))*16
		}
		if err := emit(&pipeline.Batch{Schema: p.out, Records: kept, Bytes: bytes}); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		return emit(&pipeline.Batch{Schema: pipeline.DeadLetterSchema, Records: dead})
	}
	return nil
}

// widen copies the batch's records with images of the output width; the
// added columns start NULL. Deletes (and the before image of updates) keep
// those NULLs: a delete removes a row downstream by its primary key, which
// the added columns are never part of, so a lookup would cost a round trip
// for a value nobody reads, and a missing dimension row must not drop or
// dead-letter a delete, which would leave the deleted row in the lake.
func widen(b *pipeline.Batch, width int) []pipeline.Record {
	// One allocation for every image of the batch.
	backing := make([]any, b.Images()*width)
	take := func(src []any) []any {
		row := backing[:width:width]
		backing = backing[width:]
		copy(row, src)
		return row
	}
	out := make([]pipeline.Record, len(b.Records))
	for i, r := range b.Records {
		out[i] = r
		if r.Before != nil {
			out[i].Before = take(r.Before)
		}
		if r.After != nil {
			out[i].After = take(r.After)
		}
	}
	return out
}

// apply runs one rule over the batch: it collects the keys the cache
// cannot answer, fetches them in as few queries as BatchSize allows, then
// fills the rule's columns or applies its Missing policy.
func (o *Operator) apply(ctx context.Context, st step, in *pipeline.Batch, out []pipeline.Record, now time.Time, dead *[]pipeline.Record) error {
	d := st.dim
	n := len(out)
	o.res = grow(o.res, n)
	o.keys = grow(o.keys, n)
	o.usable = grow(o.usable, n)
	o.pending = o.pending[:0]
	clear(o.seen)
	clear(o.got)
	var lookups, hits int64
	for i := range out {
		o.res[i], o.usable[i] = nil, false
		if o.dropped[i] || out[i].After == nil {
			continue
		}
		k, ok := d.keyOf(out[i].After[st.on])
		if !ok {
			continue
		}
		o.keys[i], o.usable[i] = k, true
		lookups++
		if e := d.cached(k, now); e != nil {
			o.res[i] = e
			hits++
			continue
		}
		if _, dup := o.seen[k]; !dup {
			o.seen[k] = struct{}{}
			o.pending = append(o.pending, k)
		}
	}
	o.stats.lookups.Add(lookups)
	o.stats.hits.Add(hits)
	o.stats.misses.Add(lookups - hits)
	if len(o.pending) > 0 && d.stream != nil {
		o.stats.fetched.Add(int64(len(o.pending)))
		if err := d.fetchStream(o.store, o.pending, o.got); err != nil {
			return err
		}
	} else if len(o.pending) > 0 {
		o.stats.fetched.Add(int64(len(o.pending)))
		q, err := d.fetch(ctx, o.pending, o.got, now)
		o.stats.queries.Add(int64(q))
		if err != nil {
			return err
		}
	}
	var missing, dropped, dl int64
	for i := range out {
		if o.dropped[i] || out[i].After == nil {
			continue
		}
		var e *entry
		if o.usable[i] {
			if e = o.res[i]; e == nil {
				e = o.got[o.keys[i]]
			}
		}
		if e != nil && e.row != nil {
			row := out[i].After
			for j, a := range st.rule.adds {
				row[st.dst+j] = e.row[a.from]
			}
			continue
		}
		missing++
		switch st.rule.cfg.Missing {
		case MissingDrop:
			o.dropped[i] = true
			dropped++
		case MissingDeadLetter:
			o.dropped[i] = true
			dl++
			reason := o.reason(st, out[i].After[st.on], o.usable[i])
			*dead = append(*dead, pipeline.DeadLetter(in.Schema, &in.Records[i], Name, reason, ""))
		}
		// MissingNull: the added columns are NULL already.
	}
	o.stats.missing.Add(missing)
	o.stats.dropped.Add(dropped)
	o.stats.deadLettered.Add(dl)
	return nil
}

func (o *Operator) reason(st step, v any, usable bool) string {
	d := st.dim
	on := st.rule.cfg.On
	switch {
	case v == nil:
		return fmt.Sprintf("no row in dimension %s for %s=NULL (a NULL key matches no row)", d.cfg.Name, on)
	case !usable:
		return fmt.Sprintf("no row in dimension %s for %s=%v: not a valid key for its %s key column %s", d.cfg.Name, on, v, d.kind, d.keyName())
	}
	k, _ := d.keyOf(v)
	return fmt.Sprintf("no row in dimension %s for %s=%s", d.cfg.Name, on, d.render(k))
}

// planFor returns the plan for an input schema. The output schema is
// built once per input *Schema, so that consumers caching per pointer see
// one pointer until the input's shape changes.
func (o *Operator) planFor(s *pipeline.Schema) (*plan, error) {
	if p, ok := o.plans[s.Table]; ok && p.in == s {
		return p, nil
	}
	p, err := o.buildPlan(s)
	if err != nil {
		return nil, err
	}
	o.plans[s.Table] = p
	return p, nil
}

// buildPlan applies the matching rules to a schema. A rule that names a
// column the table lacks, or adds one it already has, is a configuration
// error for that table: it is returned rather than turned into NULLs.
func (o *Operator) buildPlan(s *pipeline.Schema) (*plan, error) {
	name := s.Table.String()
	cols := slices.Clone(s.Columns)
	index := func(n string) int {
		return slices.IndexFunc(cols, func(c pipeline.Column) bool { return c.Name == n })
	}
	var steps []step
	for _, r := range o.rules {
		if ok, _ := path.Match(r.cfg.Match, name); !ok {
			continue
		}
		d := o.dims[r.cfg.Dim]
		if d.stream != nil && !d.stream.known {
			why := "no batch of it has been seen yet and the source cannot be asked for its column types"
			if d.kafka != nil {
				why = "its topic has had no row yet (JSON carries no types; they are learnt from the first row)"
			} else if d.stream.probeErr != nil {
				why = fmt.Sprintf("no batch of it has been seen yet and reading the types from the source failed: %v", d.stream.probeErr)
			}
			return nil, fmt.Errorf("enrich[%d]: %s: the types of its columns are unknown: %s", r.idx, d.describe(), why)
		}
		on := index(r.cfg.On)
		if on < 0 {
			return nil, fmt.Errorf("enrich[%d].on: table %s (schema version %d) has no column %q", r.idx, name, s.Version, r.cfg.On)
		}
		if !d.keyAcceptable(cols[on].Type) {
			return nil, fmt.Errorf("enrich[%d].on: column %s of %s is a %s, which cannot hold keys of dimension %s (key column %s is %s)",
				r.idx, r.cfg.On, name, cols[on].Type, d.cfg.Name, d.keyName(), d.keyCol.Type)
		}
		dst := len(cols)
		for _, a := range r.adds {
			if index(a.as) >= 0 {
				return nil, fmt.Errorf("enrich[%d].add.%s: table %s already has a column %s", r.idx, a.as, name, strconv.Quote(a.as))
			}
			c := d.cols[a.from]
			c.Name = a.as
			cols = append(cols, c)
		}
		steps = append(steps, step{rule: r, dim: d, on: on, dst: dst})
	}
	if len(steps) == 0 {
		return &plan{in: s, out: s}, nil
	}
	out := &pipeline.Schema{Table: s.Table, Columns: cols, Key: slices.Clone(s.Key), Version: s.Version}
	return &plan{in: s, out: out, steps: steps}, nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
