package datagen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// maxWait bounds how long one Read sleeps for the rate limiter, so that
// barriers reach an idle, throttled stream quickly.
const maxWait = 500 * time.Millisecond

// Source is the datagen pipeline.Source.
type Source struct {
	cfg Config
	g   *gen

	opened bool
	limit  uint64 // changes [0, limit) are produced

	lim     *rate.Limiter
	burst   int
	pendN   int // changes reserved from lim and not yet produced
	readyAt time.Time

	done  atomic.Int64
	total int64
	// data fingerprints what decides the generated values (seed and
	// tables); checkpoints carry it so that a restore under another config
	// is refused instead of silently producing other data.
	data string
}

var _ pipeline.Source = (*Source)(nil)

// New builds a Source. cfg is defaulted and validated again on a copy.
func New(cfg Config) (*Source, error) {
	cfg, err := cfg.prepared()
	if err != nil {
		return nil, err
	}
	g, err := newGen(cfg)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, g: g, total: cfg.Total, data: fingerprint(cfg)}
	if cfg.Rate > 0 {
		// A tenth of a second's worth per batch keeps the output smooth.
		s.burst = int(min(math.Ceil(cfg.Rate/10), float64(cfg.BatchSize)))
		s.burst = max(s.burst, 1)
		s.lim = rate.NewLimiter(rate.Limit(cfg.Rate), s.burst)
	}
	return s, nil
}

// Name implements pipeline.Source.
func (s *Source) Name() string { return "datagen" }

type state struct {
	Next *int64 `json:"next"`
	Data string `json:"data,omitempty"`
}

// fingerprint hashes the parts of cfg that decide the data. Rate,
// BatchSize and Total may change between runs; Total only moves the end.
func fingerprint(cfg Config) string {
	b, _ := json.Marshal(struct {
		Seed   int64
		Tables []TableConfig
	}{cfg.Seed, cfg.Tables})
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%016x", h.Sum64())
}

// Open implements pipeline.Source. Restoring replays only the key
// existence of the changes before the checkpoint, which is cheap.
func (s *Source) Open(ctx context.Context, opts pipeline.OpenOptions) error {
	s.g.reset()
	s.pendN = 0
	s.opened = false
	var next uint64
	if opts.State != nil {
		var st state
		if err := json.Unmarshal(opts.State, &st); err != nil {
			return fmt.Errorf("datagen: restore state %q: %w", opts.State, err)
		}
		if st.Next == nil || *st.Next < 0 {
			return fmt.Errorf("datagen: restore state %q: \"next\" must be a non-negative number", opts.State)
		}
		if st.Data != "" && st.Data != s.data {
			return fmt.Errorf("datagen: the checkpoint was taken with another seed or other tables (data %s, now %s): restore with the same source.datagen settings, or start from an empty checkpoint.dir", st.Data, s.data)
		}
		next = uint64(*st.Next)
		if err := s.g.skipTo(ctx, next); err != nil {
			return fmt.Errorf("datagen: restore to seq=%d: %w", next, err)
		}
	}
	switch {
	case s.cfg.Total > 0:
		s.limit = uint64(s.cfg.Total)
	case opts.AvailableNow:
		// An endless generator has nothing that "exists at start".
		s.limit = next
	default:
		s.limit = math.MaxUint64
	}
	s.done.Store(int64(next))
	s.opened = true
	return nil
}

// Read implements pipeline.Source.
func (s *Source) Read(ctx context.Context) (*pipeline.Batch, error) {
	if !s.opened {
		return nil, errors.New("datagen: Read before Open")
	}
	if s.g.next >= s.limit {
		return nil, pipeline.ErrEndOfInput
	}
	n := s.cfg.BatchSize
	if s.lim != nil {
		if s.pendN == 0 {
			// Reserve before generating: the table cut is known in advance,
			// so the batch that is finally produced is the reserved one.
			s.pendN = s.g.runLength(s.burst, s.limit)
			now := time.Now()
			s.readyAt = now.Add(s.lim.ReserveN(now, s.pendN).DelayFrom(now))
		}
		if d := time.Until(s.readyAt); d > 0 {
			t := time.NewTimer(min(d, maxWait))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			if d > maxWait {
				return nil, nil
			}
		}
		n, s.pendN = s.pendN, 0
	}
	b := s.g.batch(n, s.limit)
	s.done.Store(int64(s.g.next))
	return b, nil
}

// Snapshot implements pipeline.Source: the state is {"next": i, "data": f},
// the number of changes emitted so far and the data fingerprint.
func (s *Source) Snapshot() (checkpoint.Position, error) {
	next := strconv.FormatUint(s.g.next, 10)
	return checkpoint.Position{
		State:   []byte(`{"next":` + next + `,"data":"` + s.data + `"}`),
		Summary: "seq=" + next,
	}, nil
}

// Ack implements pipeline.Source; there is nothing upstream to release.
func (s *Source) Ack(context.Context, uint64) error { return nil }

// Close implements pipeline.Source.
func (s *Source) Close() error { return nil }

// Progress reports changes emitted so far and Total (0 when unbounded). It
// is safe to call from any goroutine.
func (s *Source) Progress() (done, total int64) { return s.done.Load(), s.total }

// Replay calls fn for each of the first n changes exactly as a Source with
// this config emits them, without rate limiting. It stops early at Total,
// as a Source does.
func (c Config) Replay(n int64, fn func(s *pipeline.Schema, r pipeline.Record)) error {
	c, err := c.prepared()
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("datagen: replay of %d changes", n)
	}
	if c.Total > 0 {
		n = min(n, c.Total)
	}
	g, err := newGen(c)
	if err != nil {
		return err
	}
	g.reset()
	for {
		b := g.batch(c.BatchSize, uint64(n))
		if b == nil {
			return nil
		}
		for _, r := range b.Records {
			fn(b.Schema, r)
		}
	}
}
