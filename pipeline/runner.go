package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/checkpoint"
)

// ErrBusy is returned by Runner.Savepoint while another checkpoint is in
// flight; asking again shortly after succeeds.
var ErrBusy = errors.New("pipeline: a checkpoint is in progress; try again")

// RunnerConfig wires a Runner.
type RunnerConfig struct {
	Job       string
	Sources   []Source
	Operators []Operator
	Sink      Sink
	Store     checkpoint.Store
	Policy    checkpoint.Config
	// AvailableNow opens sources bounded: the run ends after a final
	// checkpoint once every source reached the end of its input.
	AvailableNow bool
	// Restore names a savepoint to start from instead of the newest
	// checkpoint.
	Restore string
	// QueueDepth bounds the batches in flight between sources and the task
	// loop. Default 4: enough to keep the source busy while the sink works.
	QueueDepth int
	Log        *zap.Logger
	// Metrics receives progress; nil is allowed.
	Metrics Observer
}

// Observer is told about progress. Implementations must be cheap and safe
// for concurrent use.
type Observer interface {
	BatchProcessed(table TableID, records int)
	CheckpointDone(m *checkpoint.Manifest, took time.Duration)
}

// Runner drives one job. Use Run once.
type Runner struct {
	cfg       RunnerConfig
	log       *zap.Logger
	stop      chan struct{}
	stopOnce  sync.Once
	savepoint chan savepointReq
}

type savepointReq struct {
	name string
	done chan error
}

// NewRunner validates the wiring.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Job == "" {
		return nil, errors.New("pipeline: job id is required")
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("pipeline: at least one source is required")
	}
	if cfg.Sink == nil || cfg.Store == nil {
		return nil, errors.New("pipeline: a sink and a checkpoint store are required")
	}
	seen := map[string]bool{}
	for _, s := range cfg.Sources {
		if seen[s.Name()] {
			return nil, fmt.Errorf("pipeline: two sources are named %q", s.Name())
		}
		seen[s.Name()] = true
	}
	if cfg.QueueDepth <= 0 {
		cfg.QueueDepth = 4
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Runner{
		cfg:       cfg,
		log:       cfg.Log.With(zap.String("component", "runner")),
		stop:      make(chan struct{}),
		savepoint: make(chan savepointReq),
	}, nil
}

// Stop asks a running job to take a final checkpoint and return nil. Safe
// to call from any goroutine, more than once.
func (r *Runner) Stop() { r.stopOnce.Do(func() { close(r.stop) }) }

// Savepoint takes a named savepoint and waits until it is committed.
func (r *Runner) Savepoint(ctx context.Context, name string) error {
	req := savepointReq{name: name, done: make(chan error, 1)}
	select {
	case r.savepoint <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// message is what source goroutines send to the task loop.
type message struct {
	src     int
	batch   *Batch
	barrier uint64              // non-zero: barrier for this checkpoint
	pos     checkpoint.Position // with barrier or eof
	eof     bool
	err     error
}

// sourceCtl is the task loop's handle on one source goroutine.
type sourceCtl struct {
	trigger chan uint64 // checkpoint ids to inject; buffered 1
	release chan bool   // true: stop after this barrier
}

// Run executes the job until its input ends (AvailableNow), Stop is called,
// ctx is cancelled (no final checkpoint) or a stage fails.
func (r *Runner) Run(ctx context.Context) (err error) {
	cfg := r.cfg
	// The sink opens first: recovery may have to commit through it.
	if err := cfg.Sink.Open(ctx); err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	defer func() { err = errors.Join(err, cfg.Sink.Close()) }()
	restored, err := r.recover(ctx)
	if err != nil {
		return err
	}
	nextID := uint64(1)
	if restored != nil {
		nextID = restored.ID + 1
		if latest, lerr := cfg.Store.Latest(); lerr == nil && latest.ID >= nextID {
			nextID = latest.ID + 1
		}
	}

	for _, op := range cfg.Operators {
		var state []byte
		if restored != nil {
			state = restored.Operators[op.Name()]
		}
		if err := op.Open(ctx, state); err != nil {
			return fmt.Errorf("open operator %s: %w", op.Name(), err)
		}
		defer func() { err = errors.Join(err, op.Close()) }()
	}
	positions := make([]checkpoint.Position, len(cfg.Sources))
	for i, src := range cfg.Sources {
		opts := OpenOptions{AvailableNow: cfg.AvailableNow}
		if restored != nil {
			positions[i] = restored.Sources[src.Name()]
			opts.State = positions[i].State
		}
		if err := src.Open(ctx, opts); err != nil {
			return fmt.Errorf("open source %s: %w", src.Name(), err)
		}
		defer func() { err = errors.Join(err, src.Close()) }()
		if restored != nil {
			// The restored checkpoint is committed: let the source release
			// upstream what it covers, in case the crash came before the ack.
			if err := src.Ack(ctx, restored.ID); err != nil {
				return fmt.Errorf("ack source %s for restored checkpoint %d: %w", src.Name(), restored.ID, err)
			}
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	queue := make(chan message, cfg.QueueDepth)
	ctls := make([]sourceCtl, len(cfg.Sources))
	for i := range cfg.Sources {
		ctls[i] = sourceCtl{trigger: make(chan uint64, 1), release: make(chan bool, 1)}
		g.Go(func() error { r.driveSource(gctx, i, cfg.Sources[i], ctls[i], queue); return nil })
	}
	defer func() {
		cancel()
		_ = g.Wait()
	}()

	t := &task{
		r: r, ctls: ctls, positions: positions, nextID: nextID,
		live:   len(cfg.Sources),
		ended:  make([]bool, len(cfg.Sources)),
		policy: checkpoint.NewPolicy(cfg.Policy, time.Now()),
	}
	return t.loop(runCtx, queue)
}

// recover finishes the newest checkpoint if it was durable but not complete,
// and returns the manifest to restore from (nil on a fresh start).
func (r *Runner) recover(ctx context.Context) (*checkpoint.Manifest, error) {
	st := r.cfg.Store
	latest, err := st.Latest()
	if errors.Is(err, checkpoint.ErrNotFound) {
		if r.cfg.Restore != "" {
			return nil, fmt.Errorf("restore savepoint %q: no checkpoints stored", r.cfg.Restore)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !latest.Complete {
		r.log.Info("finishing checkpoint interrupted after it became durable", zap.Uint64("checkpoint", latest.ID))
		if err := r.cfg.Sink.Commit(ctx, Commit{ID: latest.ID, Job: latest.Job, Prepared: latest.Sink, Positions: latest.Summaries()}); err != nil {
			return nil, fmt.Errorf("recover checkpoint %d: %w", latest.ID, err)
		}
		if err := st.Complete(latest.ID); err != nil {
			return nil, fmt.Errorf("recover checkpoint %d: %w", latest.ID, err)
		}
		latest.Complete = true
	}
	if r.cfg.Restore != "" {
		sp, err := st.Savepoint(r.cfg.Restore)
		if err != nil {
			return nil, err
		}
		r.log.Info("restoring from savepoint", zap.String("savepoint", sp.Name), zap.Uint64("checkpoint", sp.ID))
		return sp, nil
	}
	// Manifests are written in id order and an incomplete one is always the
	// newest, so after the step above the newest is the one to resume from.
	r.log.Info("restoring from checkpoint", zap.Uint64("checkpoint", latest.ID), zap.Any("positions", latest.Summaries()))
	return latest, nil
}

// driveSource is the goroutine of one source.
func (r *Runner) driveSource(ctx context.Context, idx int, src Source, ctl sourceCtl, queue chan<- message) {
	send := func(m message) bool {
		m.src = idx
		select {
		case queue <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case id := <-ctl.trigger:
			pos, err := src.Snapshot()
			if err != nil {
				send(message{err: fmt.Errorf("source %s: snapshot for checkpoint %d: %w", src.Name(), id, err)})
				return
			}
			if !send(message{barrier: id, pos: pos}) {
				return
			}
			select {
			case stop := <-ctl.release:
				if stop {
					return
				}
			case <-ctx.Done():
				return
			}
			continue
		case <-ctx.Done():
			return
		default:
		}
		b, err := src.Read(ctx)
		if errors.Is(err, ErrEndOfInput) || errors.Is(err, io.EOF) {
			pos, serr := src.Snapshot()
			if serr != nil {
				send(message{err: fmt.Errorf("source %s: final position: %w", src.Name(), serr)})
				return
			}
			send(message{eof: true, pos: pos})
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				send(message{err: fmt.Errorf("source %s: %w", src.Name(), err)})
			}
			return
		}
		if b != nil && len(b.Records) > 0 {
			if !send(message{batch: b}) {
				return
			}
		}
	}
}

// task is the state of the task loop.
type task struct {
	r         *Runner
	ctls      []sourceCtl
	positions []checkpoint.Position
	ended     []bool
	live      int
	nextID    uint64
	policy    *checkpoint.Policy

	// the checkpoint being aligned, if any
	pending   uint64
	kind      checkpoint.Kind
	name      string
	arrived   map[int]bool
	spWaiters []chan error
	stopping  bool // the pending checkpoint is the last one

	records, bytes int64 // since the last checkpoint
}

func (t *task) loop(ctx context.Context, queue <-chan message) error {
	cfg := t.r.cfg
	tick := time.NewTicker(tickEvery(cfg.Policy.Interval))
	defer tick.Stop()
	stop := t.r.stop
	emit := func(b *Batch) error { return cfg.Sink.Write(ctx, b) }
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-queue:
			switch {
			case m.err != nil:
				return m.err
			case m.batch != nil:
				if err := t.process(ctx, m.batch, emit); err != nil {
					return err
				}
				if t.pending == 0 && t.policy.Due(time.Now(), t.records, t.bytes) {
					if done, err := t.begin(ctx, checkpoint.KindPeriodic, "", nil); done || err != nil {
						return err
					}
				}
			case m.barrier != 0:
				if m.barrier != t.pending {
					return fmt.Errorf("pipeline: barrier %d from source %s, expected %d", m.barrier, cfg.Sources[m.src].Name(), t.pending)
				}
				t.positions[m.src] = m.pos
				t.arrived[m.src] = true
				if done, err := t.maybeFinish(ctx); done || err != nil {
					return err
				}
			case m.eof:
				t.positions[m.src] = m.pos
				t.ended[m.src] = true
				t.live--
				t.r.log.Info("source reached end of input", zap.String("source", cfg.Sources[m.src].Name()), zap.String("position", m.pos.Summary))
				if t.pending != 0 {
					if done, err := t.maybeFinish(ctx); done || err != nil {
						return err
					}
				} else if t.live == 0 {
					if done, err := t.begin(ctx, checkpoint.KindFinal, "", nil); done || err != nil {
						return err
					}
				}
			}
		case <-tick.C:
			if t.pending == 0 && t.policy.Due(time.Now(), t.records, t.bytes) {
				if done, err := t.begin(ctx, checkpoint.KindPeriodic, "", nil); done || err != nil {
					return err
				}
			}
		case req := <-t.r.savepoint:
			if t.pending != 0 {
				// Aligning two checkpoints at once is not supported; the
				// caller asks again once this one is done.
				req.done <- ErrBusy
				continue
			}
			if _, err := cfg.Store.Savepoint(req.name); err == nil {
				req.done <- fmt.Errorf("savepoint %q already exists", req.name)
				continue
			}
			if done, err := t.begin(ctx, checkpoint.KindSavepoint, req.name, req.done); done || err != nil {
				return err
			}
		case <-stop:
			stop = nil // fire once
			t.r.log.Info("stop requested: taking a final checkpoint")
			if t.pending != 0 {
				t.stopping = true // the checkpoint in flight becomes the last
				continue
			}
			t.stopping = true
			if done, err := t.begin(ctx, checkpoint.KindFinal, "", nil); done || err != nil {
				return err
			}
		}
	}
}

func tickEvery(interval time.Duration) time.Duration {
	if interval <= 0 || interval > time.Second {
		return 250 * time.Millisecond
	}
	return interval / 4
}

func (t *task) process(ctx context.Context, b *Batch, sink func(*Batch) error) error {
	t.records += int64(len(b.Records))
	if b.Bytes > 0 {
		t.bytes += int64(b.Bytes)
	}
	if m := t.r.cfg.Metrics; m != nil {
		m.BatchProcessed(b.Schema.Table, len(b.Records))
	}
	if len(t.r.cfg.Operators) == 0 {
		b.Layer = LayerAll
		return t.runOps(ctx, 0, b, sink)
	}
	// The changelog gets the batch as read; the operators' output goes to
	// the current-state tables. The sink copies what it keeps, so the
	// operators may then rework the records.
	raw := *b
	raw.Layer = LayerRaw
	if err := sink(&raw); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	return t.runOps(ctx, 0, b, sink)
}

func (t *task) runOps(ctx context.Context, i int, b *Batch, sink func(*Batch) error) error {
	ops := t.r.cfg.Operators
	if i == len(ops) {
		if len(ops) > 0 {
			b.Layer = LayerClean
		}
		if err := sink(b); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		return nil
	}
	err := ops[i].Process(ctx, b, func(out *Batch) error { return t.runOps(ctx, i+1, out, sink) })
	if err != nil {
		return fmt.Errorf("operator %s: %w", ops[i].Name(), err)
	}
	return nil
}

// begin starts aligning a checkpoint. done reports that the run is over.
func (t *task) begin(ctx context.Context, kind checkpoint.Kind, name string, waiter chan error) (bool, error) {
	id := t.nextID
	t.nextID++
	t.pending, t.kind, t.name = id, kind, name
	t.arrived = map[int]bool{}
	if waiter != nil {
		t.spWaiters = append(t.spWaiters, waiter)
	}
	t.policy.Started(time.Now())
	for i, c := range t.ctls {
		if !t.ended[i] {
			c.trigger <- id
		}
	}
	return t.maybeFinish(ctx)
}

// maybeFinish runs the protocol once every live source delivered its barrier.
func (t *task) maybeFinish(ctx context.Context) (bool, error) {
	for i := range t.ctls {
		if !t.ended[i] && !t.arrived[i] {
			return false, nil
		}
	}
	id := t.pending
	last := t.stopping || t.live == 0
	// Release the sources first: they may read ahead into the queue while
	// this goroutine commits, which is safe because the queue is only
	// drained after the protocol below finished.
	for i, c := range t.ctls {
		if !t.ended[i] {
			c.release <- last
		}
	}
	err := t.checkpoint(ctx, id, last)
	for _, w := range t.spWaiters {
		w <- err
	}
	t.spWaiters = nil
	t.pending = 0
	if err != nil {
		return true, err
	}
	return last, nil
}

// checkpoint runs protocol steps 2 to 6 for checkpoint id; last says it
// ends the run (maybeFinish's last).
func (t *task) checkpoint(ctx context.Context, id uint64, last bool) error {
	cfg := t.r.cfg
	started := time.Now()
	m := &checkpoint.Manifest{
		ID: id, Job: cfg.Job, Kind: t.kind, Name: t.name, CreatedAt: started.UTC(),
		Sources:   make(map[string]checkpoint.Position, len(cfg.Sources)),
		Operators: make(map[string][]byte, len(cfg.Operators)),
	}
	// The run's last checkpoint is final whatever began it: a periodic
	// one may be pending when a stop is asked for or the last source
	// ends, and then it is the one that covers the end.
	if last && m.Kind == checkpoint.KindPeriodic {
		m.Kind = checkpoint.KindFinal
	}
	for i, s := range cfg.Sources {
		m.Sources[s.Name()] = t.positions[i]
	}
	for _, op := range cfg.Operators {
		st, err := op.Snapshot(ctx, id)
		if err != nil {
			return fmt.Errorf("checkpoint %d: operator %s: %w", id, op.Name(), err)
		}
		m.Operators[op.Name()] = st
	}
	checkpoint.Fault(checkpoint.FaultAfterOperatorState, id)
	prepared, err := cfg.Sink.Prepare(ctx, id)
	if err != nil {
		return fmt.Errorf("checkpoint %d: prepare: %w", id, err)
	}
	m.Sink = prepared
	checkpoint.Fault(checkpoint.FaultAfterPrepare, id)
	if err := cfg.Store.Put(m); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	checkpoint.Fault(checkpoint.FaultAfterManifest, id)
	if err := cfg.Sink.Commit(ctx, Commit{ID: id, Job: cfg.Job, Prepared: prepared, Positions: m.Summaries()}); err != nil {
		return fmt.Errorf("checkpoint %d: commit: %w", id, err)
	}
	checkpoint.Fault(checkpoint.FaultAfterCommit, id)
	if err := cfg.Store.Complete(id); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	m.Complete = true
	checkpoint.Fault(checkpoint.FaultAfterComplete, id)
	for _, s := range cfg.Sources {
		if err := s.Ack(ctx, id); err != nil {
			return fmt.Errorf("checkpoint %d: ack source %s: %w", id, s.Name(), err)
		}
	}
	checkpoint.Fault(checkpoint.FaultAfterAck, id)
	took := time.Since(started)
	t.r.log.Info("checkpoint complete",
		zap.Uint64("checkpoint", id), zap.String("kind", string(m.Kind)),
		zap.Int64("records", t.records), zap.Duration("took", took),
		zap.Any("positions", m.Summaries()))
	if o := cfg.Metrics; o != nil {
		o.CheckpointDone(m, took)
	}
	t.records, t.bytes = 0, 0
	return nil
}
