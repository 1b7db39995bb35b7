package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/cdc/mysql"
	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/datagen"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// errStoreLocked means another process has the checkpoint store open.
// Pebble takes an exclusive lock on its directory, so a second process (a
// running daemon, most likely) cannot open it, and must not: two writers
// of one job's manifests would commit each other's files.
var errStoreLocked = errors.New("checkpoint store is locked by another process")

// storeLockedError names the store, the job and the likely cause.
type storeLockedError struct {
	dir, job string
	err      error
}

func (e *storeLockedError) Error() string {
	return fmt.Sprintf("checkpoint store %s is locked by another process: is `sluice run` of job %q still running? Stop it first (%v)", e.dir, e.job, e.err)
}

func (e *storeLockedError) Is(target error) bool { return target == errStoreLocked }
func (e *storeLockedError) Unwrap() error        { return e.err }

// runOptions are the parts of a run that come from flags, not the file.
type runOptions struct {
	availableNow bool
	// backfill reads the tables' rows only: a MySQL source in snapshot mode
	// initial runs as initial_only.
	backfill bool
	restore  string
}

// job is a wired pipeline. The Runner closes sources and the sink it
// opened; the store is ours to close.
type job struct {
	cfg     *JobConfig
	log     *zap.Logger
	sources []pipeline.Source
	sink    *lake.Sink
	store   *checkpoint.PebbleStore
	runner  *pipeline.Runner
	ops     []pipeline.Operator
}

// wire builds a job from its configuration. The store is opened first:
// it fails fast, without touching the catalog, when a daemon already runs.
func wire(cfg *JobConfig, log *zap.Logger, opts runOptions) (_ *job, err error) {
	store, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, store.Close())
		}
	}()
	sources, err := buildSources(cfg, log, opts)
	if err != nil {
		return nil, err
	}
	ops, err := buildOperators(cfg, log)
	if err != nil {
		return nil, err
	}
	sink, err := lake.NewSink(&cfg.Sink, cfg.Job, log)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	runner, err := pipeline.NewRunner(pipeline.RunnerConfig{
		Job:          cfg.Job,
		Sources:      sources,
		Operators:    ops,
		Sink:         sink,
		Store:        store,
		Policy:       cfg.Checkpoint,
		AvailableNow: opts.availableNow,
		Restore:      opts.restore,
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	return &job{cfg: cfg, log: log, sources: sources, sink: sink, store: store, runner: runner, ops: ops}, nil
}

// buildSources is the one place that turns a source kind into a Source:
// an explicit switch rather than a registry, so that every kind the binary
// supports is visible here and in SourceConfig.
func buildSources(cfg *JobConfig, log *zap.Logger, opts runOptions) ([]pipeline.Source, error) {
	switch {
	case cfg.Source.Datagen != nil:
		src, err := datagen.New(*cfg.Source.Datagen)
		if err != nil {
			return nil, fmt.Errorf("source.datagen: %w", err)
		}
		return []pipeline.Source{src}, nil
	case cfg.Source.MySQL != nil:
		mc := *cfg.Source.MySQL
		if opts.backfill && mc.Snapshot == mysql.SnapshotInitial {
			mc.Snapshot = mysql.SnapshotInitialOnly
		}
		src, err := mysql.New(mc)
		if err != nil {
			return nil, fmt.Errorf("source.mysql: %w", err)
		}
		src.SetLogger(log.Named("mysql"))
		return []pipeline.Source{src}, nil
	}
	return nil, errors.New("no source configured (validation should have caught this)")
}

// openStore opens the job's checkpoint store and names the usual cause
// when it is locked.
func openStore(cfg *JobConfig) (*checkpoint.PebbleStore, error) {
	st, err := checkpoint.OpenPebble(cfg.Checkpoint.Dir, cfg.Job, cfg.Checkpoint.Retain)
	if err != nil {
		if isLockError(err) {
			return nil, &storeLockedError{dir: cfg.Checkpoint.Dir, job: cfg.Job, err: errors.Unwrap(err)}
		}
		return nil, err
	}
	return st, nil
}

// isLockError recognizes Pebble's directory lock failing: flock returns
// EAGAIN when another process holds it; within one process Pebble says so
// itself.
func isLockError(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) ||
		strings.Contains(err.Error(), "lock held by current process")
}
