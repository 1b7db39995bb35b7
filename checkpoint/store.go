package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Store keeps manifests durably.
type Store interface {
	// Put writes m synced; once it returns, m survives a crash.
	Put(m *Manifest) error
	// Complete marks checkpoint id committed everywhere, then prunes old
	// periodic checkpoints beyond the retention count.
	Complete(id uint64) error
	// Latest returns the newest manifest, complete or not, or ErrNotFound.
	Latest() (*Manifest, error)
	// Get returns checkpoint id.
	Get(id uint64) (*Manifest, error)
	// Savepoint returns the savepoint of that name.
	Savepoint(name string) (*Manifest, error)
	// List returns every stored manifest, oldest first.
	List() ([]*Manifest, error)
	// DeleteSavepoint removes a named savepoint.
	DeleteSavepoint(name string) error
	Close() error
}

// Key layout: "m/" + big-endian id -> manifest JSON; "s/" + name -> id.
// Big-endian ids sort numerically, so the newest manifest is the last "m/" key.
var (
	manifestPrefix  = []byte("m/")
	savepointPrefix = []byte("s/")
	jobKey          = []byte("job")
)

func manifestKey(id uint64) []byte {
	k := make([]byte, len(manifestPrefix)+8)
	copy(k, manifestPrefix)
	binary.BigEndian.PutUint64(k[len(manifestPrefix):], id)
	return k
}

// PebbleStore is the Store on a Pebble database in its own directory.
type PebbleStore struct {
	db     *pebble.DB
	retain int
}

// OpenPebble opens (creating if needed) the store in dir for job. A store
// created for another job is refused: mixing two jobs' checkpoints would
// commit one job's files under the other's id.
func OpenPebble(dir, job string, retain int) (*PebbleStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	s := &PebbleStore{db: db, retain: max(retain, 1)}
	v, closer, err := db.Get(jobKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := db.Set(jobKey, []byte(job), pebble.Sync); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("init checkpoint store %s: %w", dir, err)
		}
	case err != nil:
		_ = db.Close()
		return nil, fmt.Errorf("read checkpoint store %s: %w", dir, err)
	default:
		owner := string(v)
		_ = closer.Close()
		if owner != job {
			_ = db.Close()
			return nil, fmt.Errorf("%w: %s holds job %q, not %q", ErrJobMismatch, dir, owner, job)
		}
	}
	return s, nil
}

func (s *PebbleStore) Put(m *Manifest) error {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now().UTC()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest %d: %w", m.ID, err)
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	_ = batch.Set(manifestKey(m.ID), b, nil)
	if m.Kind == KindSavepoint && m.Name != "" {
		idb := make([]byte, 8)
		binary.BigEndian.PutUint64(idb, m.ID)
		_ = batch.Set(append(append([]byte{}, savepointPrefix...), m.Name...), idb, nil)
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("write manifest %d: %w", m.ID, err)
	}
	return nil
}

func (s *PebbleStore) Complete(id uint64) error {
	m, err := s.Get(id)
	if err != nil {
		return err
	}
	m.Complete = true
	if err := s.Put(m); err != nil {
		return err
	}
	return s.prune()
}

// prune deletes completed periodic/final checkpoints beyond the newest
// `retain` completed ones. Savepoints stay; incomplete manifests newer than
// the retained ones stay because recovery needs them.
func (s *PebbleStore) prune() error {
	all, err := s.List()
	if err != nil {
		return err
	}
	kept := 0
	batch := s.db.NewBatch()
	defer batch.Close()
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Kind == KindSavepoint || !m.Complete {
			continue
		}
		kept++
		if kept > s.retain {
			_ = batch.Delete(manifestKey(m.ID), nil)
		}
	}
	if batch.Empty() {
		return nil
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("prune checkpoints: %w", err)
	}
	return nil
}

func (s *PebbleStore) get(key []byte) (*Manifest, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer closer.Close()
	m := new(Manifest)
	if err := json.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	return m, nil
}

func (s *PebbleStore) Get(id uint64) (*Manifest, error) {
	m, err := s.get(manifestKey(id))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return m, nil
}

func (s *PebbleStore) Latest() (*Manifest, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: manifestPrefix, UpperBound: manifestKey(^uint64(0))})
	if err != nil {
		return nil, fmt.Errorf("scan manifests: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return nil, ErrNotFound
	}
	m := new(Manifest)
	if err := json.Unmarshal(it.Value(), m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	return m, nil
}

func (s *PebbleStore) Savepoint(name string) (*Manifest, error) {
	v, closer, err := s.db.Get(append(append([]byte{}, savepointPrefix...), name...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("savepoint %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read savepoint %q: %w", name, err)
	}
	id := binary.BigEndian.Uint64(v)
	_ = closer.Close()
	return s.Get(id)
}

func (s *PebbleStore) DeleteSavepoint(name string) error {
	m, err := s.Savepoint(name)
	if err != nil {
		return err
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	_ = batch.Delete(append(append([]byte{}, savepointPrefix...), name...), nil)
	_ = batch.Delete(manifestKey(m.ID), nil)
	return batch.Commit(pebble.Sync)
}

func (s *PebbleStore) List() ([]*Manifest, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: manifestPrefix, UpperBound: manifestKey(^uint64(0))})
	if err != nil {
		return nil, fmt.Errorf("scan manifests: %w", err)
	}
	defer it.Close()
	var out []*Manifest
	for ok := it.First(); ok; ok = it.Next() {
		m := new(Manifest)
		if err := json.Unmarshal(it.Value(), m); err != nil {
			return nil, fmt.Errorf("decode manifest: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *PebbleStore) Close() error { return s.db.Close() }

// quietLogger drops Pebble's informational chatter ("Found 0 WALs") that
// would otherwise interleave with sluice's structured logs; errors still
// reach stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}
