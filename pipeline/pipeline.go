package pipeline

import (
	"context"
	"errors"

	"github.com/sluice-cdc/sluice/checkpoint"
)

// ErrEndOfInput is returned by Source.Read when a bounded source has
// delivered everything it will ever deliver. io.EOF is accepted as well.
var ErrEndOfInput = errors.New("pipeline: end of input")

// OpenOptions are handed to Source.Open.
type OpenOptions struct {
	// State is the source's Position.State from the manifest being restored,
	// or nil on a fresh start.
	State []byte
	// AvailableNow asks the source to read what exists when it opens and
	// then return ErrEndOfInput (run --once and backfill).
	AvailableNow bool
}

// Source produces batches. The Runner calls Open, then Read, Snapshot and
// Close from one goroutine it owns; Ack may come from another goroutine at
// any time after Open and must be safe against a concurrent Read.
type Source interface {
	// Name is stable across restarts: it keys the source's position in
	// manifests.
	Name() string
	Open(ctx context.Context, opts OpenOptions) error
	// Read returns the next batch. It must return within about a second
	// even when no data arrives (nil, nil), so that barriers can be
	// injected into idle streams. A bounded source returns ErrEndOfInput.
	// Errors are fatal to the run; the runner restarts from the last
	// checkpoint.
	Read(ctx context.Context) (*Batch, error)
	// Snapshot returns the position just after the last batch Read
	// returned. It is called between two Reads.
	Snapshot() (checkpoint.Position, error)
	// Ack tells the source that checkpoint id, and every one before it, is
	// committed to the lake: it may now release upstream what it covers
	// (commit Kafka offsets, delete SQS messages, purge files). It is also
	// called once after Open on a restore, for the restored checkpoint.
	Ack(ctx context.Context, id uint64) error
	Close() error
}

// Operator transforms batches. It is driven by a single goroutine: Process
// and Snapshot are never called concurrently.
type Operator interface {
	Name() string
	// Open restores state from the manifest (nil on a fresh start).
	Open(ctx context.Context, state []byte) error
	// Process handles one batch and passes zero or more batches on through
	// emit. It may keep the input batch only until it returns.
	Process(ctx context.Context, b *Batch, emit func(*Batch) error) error
	// Snapshot makes the operator's state for checkpoint id durable (or
	// returns it) and returns what Open needs to restore it.
	Snapshot(ctx context.Context, id uint64) ([]byte, error)
	Close() error
}

// Commit is what a sink needs to make a prepared checkpoint visible.
type Commit struct {
	ID       uint64
	Job      string
	Prepared []byte
	// Positions are source name -> position summary, recorded with the
	// commit so that a table says which input it covers.
	Positions map[string]string
}

// Sink is the end of the chain: a two-phase committer.
type Sink interface {
	Open(ctx context.Context) error
	// Write buffers or writes a batch; nothing becomes visible.
	Write(ctx context.Context, b *Batch) error
	// Prepare finishes everything written since the last Prepare so that
	// it can be committed later from the returned bytes alone (possibly by
	// another process after a crash).
	Prepare(ctx context.Context, id uint64) ([]byte, error)
	// Commit makes a prepared checkpoint visible. It must be idempotent:
	// committing a checkpoint that is already visible is a no-op.
	Commit(ctx context.Context, c Commit) error
	Close() error
}
