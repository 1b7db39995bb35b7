package checkpoint

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrStateLost is returned by OpenStateDB when the checkpoint a manifest
// names is not in the directory (or holds another state). Operators whose
// state cannot be rebuilt by a replay must not start empty then.
var ErrStateLost = errors.New("checkpoint: operator state lost")

// StateDB is an operator's keyed state in a Pebble database, checkpointed
// per checkpoint id the way dedupe keeps its state (see dedupe/doc.go):
//
//	<dir>/live/        the database writes go to (no WAL)
//	<dir>/ckpt-<id>/   Pebble checkpoints of the two newest Snapshots,
//	                   each with a STATE-META naming its lineage and nonce
//	<dir>/tmp-ckpt/    a checkpoint being written
//
// Open with nil state starts empty (wiping the directory); Open with the
// bytes a Snapshot returned rebuilds live/ from that checkpoint, so that
// the state is the checkpoint's, never the later live content. It is used
// by one goroutine.
//
// dedupe predates it and keeps its own database layer (with its key
// filter in the checkpoint), sharing the directory helpers of
// pebbledir.go; new keyed operators use this one so that Pebble stays in
// checkpoint/ and dedupe/.
type StateDB struct {
	fs      vfs.FS
	dir     string
	cache   int64
	db      *pebble.DB
	batch   *pebble.Batch
	meta    stateMeta
	prev    uint64
	hasPrev bool
}

// StateDBOptions configure a StateDB.
type StateDBOptions struct {
	// Dir is owned by the StateDB: a fresh start deletes what it holds.
	Dir string
	// CacheSize is Pebble's block cache in bytes (the memtables come on
	// top, 2 x 4 MiB at most). Default 8 MiB.
	CacheSize int64
	// FS is the file system; default the real one (tests use vfs.NewMem).
	FS vfs.FS
}

const (
	stateLive     = "live"
	stateCkpt     = "ckpt-"
	stateTmp      = "tmp-ckpt"
	stateMetaFile = "STATE-META"
	// Small memtables: operator state written through a StateDB (a
	// dimension, say) changes slowly next to the facts it serves, and
	// memory must stay bounded whatever the key count.
	stateMemTable = 4 << 20
	stateMemStop  = 2
)

type stateMeta struct {
	DB    string `json:"db"`
	Epoch uint64 `json:"epoch,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

func stateCkptName(id uint64) string { return fmt.Sprintf("%s%020d", stateCkpt, id) }

func randomNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// OpenStateDB opens the state of the Snapshot that returned state, or an
// empty one when state is empty. A checkpoint that is missing or is not
// the one state names gives ErrStateLost.
func OpenStateDB(opts StateDBOptions, state []byte) (*StateDB, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 8 << 20
	}
	s := &StateDB{fs: opts.FS, dir: opts.Dir, cache: opts.CacheSize}
	if err := s.fs.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	if len(state) == 0 {
		return s, s.startEmpty()
	}
	var want stateMeta
	if err := json.Unmarshal(state, &want); err != nil || want.DB == "" || want.Epoch == 0 || want.Nonce == "" {
		return nil, fmt.Errorf("state %s: bad state %q", s.dir, state)
	}
	src := s.fs.PathJoin(s.dir, stateCkptName(want.Epoch))
	m := new(stateMeta)
	found, err := ReadJSONFile(s.fs, src, stateMetaFile, m)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: checkpoint %d is not in %s", ErrStateLost, want.Epoch, s.dir)
	}
	if *m != want {
		return nil, fmt.Errorf("%w: %s holds another state (%+v, want %+v)", ErrStateLost, src, *m, want)
	}
	live := s.fs.PathJoin(s.dir, stateLive)
	if err := ClonePebbleCheckpoint(s.fs, src, live, stateMetaFile); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	if err := s.open(live); err != nil {
		return nil, err
	}
	s.meta, s.prev, s.hasPrev = want, want.Epoch, true
	return s, nil
}

func (s *StateDB) startEmpty() error {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("state %s: %w", s.dir, err)
	}
	for _, n := range names {
		if n == stateLive || n == stateTmp || strings.HasPrefix(n, stateCkpt) {
			if err := s.fs.RemoveAll(s.fs.PathJoin(s.dir, n)); err != nil {
				return fmt.Errorf("state %s: %w", s.dir, err)
			}
		}
	}
	if err := s.open(s.fs.PathJoin(s.dir, stateLive)); err != nil {
		return err
	}
	s.meta = stateMeta{DB: randomNonce()}
	return nil
}

func (s *StateDB) open(dir string) error {
	o := &pebble.Options{
		FS:                          s.fs,
		Logger:                      quietLogger{},
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                stateMemTable,
		MemTableStopWritesThreshold: stateMemStop,
		// Every restart rebuilds live/ from a checkpoint, and Snapshot
		// flushes first: a WAL would only write every change twice.
		DisableWAL:                 true,
		CompactionConcurrencyRange: func() (int, int) { return 1, 1 },
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	cache := pebble.NewCache(s.cache + stateMemStop*stateMemTable)
	defer cache.Unref()
	o.Cache = cache
	db, err := pebble.Open(dir, o)
	if err != nil {
		return fmt.Errorf("state %s: open: %w", dir, err)
	}
	s.db, s.batch = db, db.NewBatch()
	return nil
}

// Get returns a copy of key's value appended to dst[:0]; ok is false when
// the key is absent.
func (s *StateDB) Get(key, dst []byte) (val []byte, ok bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst[:0], false, nil
	}
	if err != nil {
		return dst[:0], false, fmt.Errorf("state %s: get: %w", s.dir, err)
	}
	dst = append(dst[:0], v...)
	return dst, true, closer.Close()
}

// Set and Delete stage a change; Commit applies the staged changes
// atomically (without sync: durability comes with Snapshot).
func (s *StateDB) Set(key, val []byte) error { return s.batch.Set(key, val, nil) }

// Delete stages the removal of key.
func (s *StateDB) Delete(key []byte) error { return s.batch.Delete(key, nil) }

// Commit applies what Set and Delete staged. Gets see only committed
// changes.
func (s *StateDB) Commit() error {
	if s.batch.Empty() {
		return nil
	}
	err := s.batch.Commit(pebble.NoSync)
	s.batch.Reset()
	if err != nil {
		return fmt.Errorf("state %s: commit: %w", s.dir, err)
	}
	return nil
}

// Snapshot makes the committed state durable as checkpoint id and returns
// what OpenStateDB needs to restore it. It keeps this checkpoint and the
// previous one (a restart may need either until the manifest of id is
// written) and removes older ones.
func (s *StateDB) Snapshot(id uint64) ([]byte, error) {
	if id == 0 {
		return nil, errors.New("state: checkpoint id 0")
	}
	if err := s.Commit(); err != nil {
		return nil, err
	}
	if err := s.db.Flush(); err != nil {
		return nil, fmt.Errorf("state %s: checkpoint %d: flush: %w", s.dir, id, err)
	}
	tmp := s.fs.PathJoin(s.dir, stateTmp)
	dst := s.fs.PathJoin(s.dir, stateCkptName(id))
	// Leftovers of a crashed Snapshot, or of a branch a restore abandoned
	// that reused this id: neither is named by any manifest.
	for _, p := range []string{tmp, dst} {
		if err := s.fs.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("state %s: %w", s.dir, err)
		}
	}
	if err := s.db.Checkpoint(tmp); err != nil {
		return nil, fmt.Errorf("state %s: checkpoint %d: %w", s.dir, id, err)
	}
	m := stateMeta{DB: s.meta.DB, Epoch: id, Nonce: randomNonce()}
	if err := WriteJSONFile(s.fs, tmp, stateMetaFile, &m); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	if err := s.fs.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("state %s: checkpoint %d: %w", s.dir, id, err)
	}
	if err := SyncDir(s.fs, s.dir); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	s.meta = m
	ids, err := CheckpointIDs(s.fs, s.dir, stateCkpt)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", s.dir, err)
	}
	for _, old := range ids {
		if old == id || (s.hasPrev && old == s.prev) {
			continue
		}
		if err := s.fs.RemoveAll(s.fs.PathJoin(s.dir, stateCkptName(old))); err != nil {
			return nil, fmt.Errorf("state %s: %w", s.dir, err)
		}
	}
	s.prev, s.hasPrev = id, true
	return json.Marshal(m)
}

// Checkpoints lists the checkpoint ids kept in the directory, oldest
// first (for tests and diagnostics).
func (s *StateDB) Checkpoints() ([]uint64, error) {
	return CheckpointIDs(s.fs, s.dir, stateCkpt)
}

// Close releases the database. Changes since the last Snapshot are lost
// with it on purpose: the next open restores a checkpoint.
func (s *StateDB) Close() error {
	if s.db == nil {
		return nil
	}
	_ = s.batch.Close()
	err := s.db.Close()
	s.db, s.batch = nil, nil
	if err != nil {
		return fmt.Errorf("state %s: close: %w", s.dir, err)
	}
	return nil
}
