package clean

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Operator applies cleaning rules to the batches of the tables they
// match. It keeps no state across checkpoints.
type Operator struct {
	rules []Rule
	clock func() time.Time

	// plans caches one compiled plan per input schema pointer, nil for
	// a schema no rule matches. Sources hand out one pointer per shape,
	// so a new pointer is a new shape.
	plans map[*pipeline.Schema]*Plan
	// latest is the newest schema seen per table: when a table's shape
	// changes, the plan of the old shape is dropped, so a long-running
	// job with many schema changes does not collect them.
	latest map[pipeline.TableID]*pipeline.Schema

	stats counters
}

// counters are atomics because a status page reads Stats while the task
// loop runs Process.
type counters struct {
	records, out, passed, filtered, retracted, rejected, failed atomic.Int64
}

// Stats counts records since New.
type Stats struct {
	// Records is the number of records of tables that a rule matches.
	Records int64
	// Out is the number of records emitted for them, retractions
	// included.
	Out int64
	// Passed is the number of records of tables that no rule matches,
	// passed on untouched.
	Passed int64
	// Filtered is the number of rows dropped because where was false.
	Filtered int64
	// Retracted is the number of updates whose new image failed where,
	// emitted as deletes of their row.
	Retracted int64
	// Rejected is the number of records dead-lettered because reject was
	// true.
	Rejected int64
	// DeadLettered is the number of records dead-lettered because a step
	// failed on them (a cast, an expression, a NULL in a required
	// column). Rejected records are not counted here.
	DeadLettered int64
}

// Option configures an Operator.
type Option func(*Operator)

// WithClock sets what now() returns in expressions (once per batch);
// time.Now by default.
func WithClock(now func() time.Time) Option {
	return func(o *Operator) { o.clock = now }
}

// New validates the rules and returns the operator. Expressions are
// compiled against a table's schema when its first batch arrives; use
// Compile to check them earlier when the schemas are known.
func New(rules []Rule, opts ...Option) (*Operator, error) {
	if err := Validate(rules); err != nil {
		return nil, err
	}
	o := &Operator{
		rules:  slices.Clone(rules),
		clock:  time.Now,
		plans:  map[*pipeline.Schema]*Plan{},
		latest: map[pipeline.TableID]*pipeline.Schema{},
	}
	for _, opt := range opts {
		opt(o)
	}
	return o, nil
}

// Name implements pipeline.Operator.
func (o *Operator) Name() string { return "clean" }

// Open implements pipeline.Operator. There is no state to restore; a
// state left by another version of the chain is ignored.
func (o *Operator) Open(ctx context.Context, state []byte) error { return nil }

// Snapshot implements pipeline.Operator: there is no state.
func (o *Operator) Snapshot(ctx context.Context, id uint64) ([]byte, error) { return nil, nil }

// Close drops the compiled plans.
func (o *Operator) Close() error {
	clear(o.plans)
	clear(o.latest)
	return nil
}

// Stats returns the counts so far. It is safe to call from any goroutine.
func (o *Operator) Stats() Stats {
	c := &o.stats
	return Stats{
		Records: c.records.Load(), Out: c.out.Load(), Passed: c.passed.Load(),
		Filtered: c.filtered.Load(), Retracted: c.retracted.Load(),
		Rejected: c.rejected.Load(), DeadLettered: c.failed.Load(),
	}
}

// Process implements pipeline.Operator. It emits the cleaned batch, then
// a dead-letter batch when some records failed; batches of tables no
// rule matches, and dead letters, pass through as they are.
func (o *Operator) Process(ctx context.Context, b *pipeline.Batch, emit func(*pipeline.Batch) error) error {
	if b == nil || b.Schema == nil || b.Schema.Table == pipeline.DeadLetterTable {
		return emit(b)
	}
	p, err := o.plan(b.Schema)
	if err != nil {
		return err
	}
	if p == nil {
		o.stats.passed.Add(int64(len(b.Records)))
		return emit(b)
	}
	res := p.apply(b, o.clock().UTC())
	c := &o.stats
	c.records.Add(int64(len(b.Records)))
	c.out.Add(int64(len(res.out)))
	c.filtered.Add(int64(res.filtered))
	c.retracted.Add(int64(res.retracted))
	c.rejected.Add(int64(res.rejected))
	c.failed.Add(int64(res.failed))
	if len(res.out) > 0 {
		bytes := 0
		if len(b.Records) > 0 {
			bytes = b.Bytes * len(res.out) / len(b.Records)
		}
		if err := emit(&pipeline.Batch{Schema: p.out, Records: res.out, Bytes: bytes}); err != nil {
			return err
		}
	}
	if len(res.dead) > 0 {
		bytes := 0
		for i := range res.dead {
			if raw, ok := res.dead[i].After[6].(string); ok {
				bytes += len(raw)
			}
			bytes += 128
		}
		if err := emit(&pipeline.Batch{Schema: pipeline.DeadLetterSchema, Records: res.dead, Bytes: bytes}); err != nil {
			return err
		}
	}
	return nil
}

// plan returns the plan for schema s, compiling it on its first batch.
func (o *Operator) plan(s *pipeline.Schema) (*Plan, error) {
	if p, ok := o.plans[s]; ok {
		return p, nil
	}
	if old, ok := o.latest[s.Table]; ok && old != s {
		delete(o.plans, old)
	}
	o.latest[s.Table] = s
	var p *Plan
	for i := range o.rules {
		r := &o.rules[i]
		if !r.Matches(s.Table) {
			continue
		}
		var err error
		if p, err = r.compile(s, i); err != nil {
			// The rules validated in New, so the schema is the news: a
			// column the rule names is gone or changed type. Going on
			// would write rows the user did not ask for.
			return nil, fmt.Errorf("%w: table %s (schema version %d), rule %d (match %q): %w",
				ErrIncompatibleSchema, s.Table, s.Version, i, r.Match, describeExpr(atRule(err, i)))
		}
		break
	}
	o.plans[s] = p
	return p, nil
}

// describeExpr adds the expression's source to an error about one, since
// a runtime error has no job file at hand to show it.
func describeExpr(err error) error {
	if e, ok := err.(*Error); ok && e.Expr != "" {
		return fmt.Errorf("%w, in %q", e, e.Expr)
	}
	return err
}
