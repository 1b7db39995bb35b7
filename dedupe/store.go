package dedupe

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/checkpoint"
)

// Layout of Config.Dir, all of it owned by the operator (see doc.go):
//
//	live/          the Pebble database Process writes (no WAL)
//	ckpt-<id>/     Pebble checkpoints of the two newest Snapshots, each
//	               with DEDUPE-FILTER and DEDUPE-META
//	tmp-ckpt/      a checkpoint being written
const (
	liveDir    = "live"
	ckptPrefix = "ckpt-"
	tmpCkpt    = "tmp-ckpt"
)

func ckptName(id uint64) string { return fmt.Sprintf("%s%020d", ckptPrefix, id) }

// meta is written into every checkpoint directory, so that it says which
// Snapshot made it.
type meta struct {
	// DB identifies the lineage: a fresh start or a reset draws a new one.
	DB string `json:"db"`
	// Epoch is the checkpoint id of the Snapshot; Nonce is drawn by it, so
	// that a checkpoint of a lost branch that reused an id is never taken
	// for the one a manifest names.
	Epoch uint64 `json:"epoch,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// snapState is what Snapshot returns and Open takes back.
type snapState struct {
	DB    string `json:"db"`
	Epoch uint64 `json:"epoch"`
	Nonce string `json:"nonce"`
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Pebble tuning. Each choice follows from the workload: point lookups of
// keys sorted per batch, one small value per key, durability needed only at
// checkpoints, 2 cores shared with the rest of the job, and a process budget
// of a few hundred MB whatever the key count.
const (
	// memTableSize: a memtable absorbs many batches before a flush, so
	// that recently written keys (the ones updates tend to hit) are found
	// in memory. 32 MiB measured the same CPU per row as 16 MiB at 10M
	// keys (L0 compactions are batched anyway, see below) for 50 MB more
	// RSS; larger ones also make every lookup's skiplist seek slower.
	memTableSize = 16 << 20
	// memTableStopWrites lets one memtable fill while another is flushed,
	// plus one of slack, before writes stall: bounded memory.
	memTableStopWrites = 3
	// l0CompactionThreshold: let 32 flushes pile up in L0 before
	// compacting them into Lbase together. A stream of changes to random
	// keys makes every flush overlap the whole key range, so each L0
	// compaction rewrites much of Lbase: the fewer of them, the less is
	// written. Once per two flushes (the default) gave a write
	// amplification of 5.9; once per eight 4.0; once per 32 cut the
	// operator's CPU per row by a further 18% and its peak RSS by 15 MB at
	// 10M random keys (BenchmarkDedupe, DEDUPE_BENCH_RANDOM=1, 5% updates).
	// The price is up to 32 sublevels for a lookup to probe, which only
	// keys the key filter may have seen pay (updates, mostly), and whose
	// bloom filters stay cached.
	l0CompactionThreshold = 32
	// l0StopWrites: stalling the pipeline is worse than extra probes
	// during a burst, so allow three times the compaction threshold.
	l0StopWrites = 96
	// bloomBitsPerKey: 10 bits give a ~1% false-positive rate, so a key
	// that is not in an sstable almost never costs a block read.
	bloomBitsPerKey = 10
	// targetFileSize for every level: a filter block covers a whole
	// sstable, and Pebble's default of doubling per level makes
	// bottom-level files (and their filter blocks, read whole) of 64-128
	// MiB; every compaction that replaces such a file makes the next
	// lookups read megabytes of filter back into the cache.
	targetFileSize = 8 << 20
	// maxManifestSize bounds what each checkpoint copies (the manifest is
	// copied, sstables are hard-linked).
	maxManifestSize = 4 << 20
)

func pebbleOptions(fs vfs.FS, log *zap.Logger) *pebble.Options {
	o := &pebble.Options{
		FS:                          fs,
		Logger:                      pebbleLogger{log},
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0StopWrites,
		MaxManifestFileSize:         maxManifestSize,
		// No WAL: the live database is never recovered from its own log.
		// Every restart rebuilds it from a checkpoint (or starts empty),
		// and a checkpoint flushes the memtable first. This saves writing
		// every state change twice.
		DisableWAL: true,
		// One compaction at a time, two under debt: the machine has two
		// cores and the pipeline needs one of them.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
	}
	// Columnar blocks (Pebble's default at this format) store the
	// per-entry sequence numbers apart from the keys, where they compress
	// to almost nothing: at 10M keys the state takes 212 MB instead of 306
	// MB with row blocks, so a third fewer lookups miss the block cache,
	// for the same CPU per row (measured).
	o.Experimental.EnableColumnarBlocks = func() bool { return true }
	for i := range o.Levels {
		l := &o.Levels[i]
		// Blooms on every level, L0 included: Pebble's default has none on
		// L0, where a stream of new keys would otherwise probe every file.
		l.FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
		// No compression: a state value is mostly an 8-byte hash, which
		// does not compress, and the block format already shares key
		// prefixes. Snappy costs CPU in every flush, compaction and block
		// read for little space (it measured higher CPU per row at 4M
		// keys).
		l.Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	for i := range o.TargetFileSizes {
		o.TargetFileSizes[i] = targetFileSize
	}
	return o
}

// openDB opens (creating if needed) the Pebble database in dir.
func openDB(fs vfs.FS, dir string, cacheSize int64, log *zap.Logger) (*pebble.DB, error) {
	o := pebbleOptions(fs, log)
	// Pebble charges its memtables to the block cache (Cache.Reserve):
	// without room for them a cache the size of the memtables holds no
	// blocks at all, and every lookup reads from disk.
	cache := pebble.NewCache(cacheSize + memTableStopWrites*memTableSize)
	// The DB keeps its own reference; ours goes once Open returned.
	defer cache.Unref()
	o.Cache = cache
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("dedupe: open state %s: %w", dir, err)
	}
	return db, nil
}

// removeAll deletes path, which may not exist.
func removeAll(fs vfs.FS, path string) error {
	if err := fs.RemoveAll(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dedupe: remove %s: %w", path, err)
	}
	return nil
}

// metaFile is the checkpoint's own bookkeeping, written into the
// checkpoint directory before it is renamed into place.
const metaFile = "DEDUPE-META"

// readMeta returns the checkpoint directory's meta, nil if it has none.
func readMeta(fs vfs.FS, dir string) (*meta, error) {
	m := new(meta)
	found, err := checkpoint.ReadJSONFile(fs, dir, metaFile, m)
	if err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	if !found {
		return nil, nil
	}
	return m, nil
}

// loadTables reads the table registry: "db.table" -> tag.
func loadTables(db *pebble.DB) (map[string]uint64, uint64, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTable}, UpperBound: []byte{prefixTable + 1}})
	if err != nil {
		return nil, 0, fmt.Errorf("dedupe: scan tables: %w", err)
	}
	defer it.Close()
	tags := map[string]uint64{}
	var maxTag uint64
	for ok := it.First(); ok; ok = it.Next() {
		tag, n := binary.Uvarint(it.Value())
		if n <= 0 {
			return nil, 0, fmt.Errorf("dedupe: corrupt table entry %q", it.Key())
		}
		tags[string(it.Key()[1:])] = tag
		maxTag = max(maxTag, tag)
	}
	if err := it.Error(); err != nil {
		return nil, 0, fmt.Errorf("dedupe: scan tables: %w", err)
	}
	return tags, maxTag, nil
}

// pebbleLogger routes Pebble's messages to zap: its informational chatter
// at debug level, so that it does not interleave with the job's own logs.
type pebbleLogger struct{ l *zap.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Sugar().Debugf("pebble: "+format, args...)
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Sugar().Errorf("pebble: "+format, args...)
}

// Fatalf must not return: Pebble calls it on broken invariants and does not
// expect to continue.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Sugar().Errorf("pebble: "+format, args...)
	_ = p.l.Sync()
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}
