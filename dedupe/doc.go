// Package dedupe is the primary-key deduplication operator: a
// pipeline.Operator named "dedupe" that drops changes which would not change
// the lake, with keyed state in Pebble that is snapshotted at every
// checkpoint.
//
// # What is dropped
//
// For every table a rule matches (Config.Tables, first match wins) the
// operator remembers, per key, the row image the lake holds after every
// change that passed (a 64-bit xxhash of the after-image, or a tombstone for
// a delete) and the order of the last change: Record.Seq when the source
// sets it, and the configured version column's value when there is one.
// Tables no rule matches, and pipeline.DeadLetterTable, pass untouched. A
// matched table must have a key: the rule's, else Schema.Key; without one
// Process fails naming the table.
//
// Two orders compare by Seq when both are non-zero, else by version when
// both have comparable versions (int/long/decimal with each other, dates
// and timestamps with each other, strings with strings); otherwise the
// order is unknown. A change is
//
//   - dropped as stale when its order is older than the stored one;
//   - dropped as a replay when its order equals the stored one and it would
//     not change the stored image (the same row, or a delete of a deleted
//     row). An equal order with a different image passes: the changes of
//     one transaction may share a sequence (a MariaDB GTID), and dropping
//     all but the first would lose them;
//   - dropped as unchanged when its order is newer or unknown and it would
//     not change the stored image (an insert, read or update of the same
//     row, a delete of a deleted row); a newer order is still remembered,
//     so that a late change between the two is recognized as stale;
//   - passed otherwise, and the state takes its image and order. A delete
//     leaves a tombstone with its order, so a late, older insert is dropped.
//
// When the order is unknown only the image rules apply: nothing is dropped
// for being "older". A key with a NULL column identifies no row and passes
// without state (NullKey in Stats). An update whose before-image has another
// key than its after-image moves the row: it always passes, the new key
// takes its image, and the old key is forgotten. A key no change passed for
// a rule's TTL is forgotten, tombstone included: lookups treat it as never
// seen, and each Snapshot deletes up to 100,000 expired entries from disk
// (keys stored while the rule had no TTL count as expired). TTL runs on the
// processing clock (WithClock replaces it), so a replay after a long outage
// may let through what the first run dropped, never the reverse.
//
// Records of one batch are decided together: their keys are sorted, looked
// up in key order with one Pebble iterator (SeekPrefixGE, which consults
// the sstables' bloom filters), and the records of one key are decided in
// their original order, each seeing the ones before it. The records that
// pass keep their order. Lookups that cannot hit are skipped: a key above
// the largest key the table ever stored (streams of increasing ids never
// read Pebble), and a key that a fixed-size in-memory bloom filter of every
// key ever written has never seen (new random ids, UUIDs).
//
// # Checkpoints: what Open restores
//
// The runner calls Snapshot(n) at step 2 of the checkpoint protocol, before
// manifest n is written. A crash can therefore come after Snapshot(n) wrote
// its state but before manifest n is durable; the restart then restores
// checkpoint n-1 and replays the input after it. The state restored must be
// exactly the state of n-1, or replayed records would be dropped as
// duplicates and lost. Likewise every write after the last Snapshot must be
// undone, and Open(nil) must start empty whatever the directory holds.
//
// The operator therefore never trusts its working database. Config.Dir
// holds:
//
//	live/        the Pebble database Process reads and writes
//	ckpt-<n>/    a Pebble checkpoint per Snapshot(n), the newest two kept
//	tmp-ckpt/    a checkpoint being written (a leftover is removed)
//
// Snapshot(n) flushes the live database's memtable and takes a Pebble
// checkpoint into tmp-ckpt (sstables are immutable and hard-linked, the
// small manifest is copied, everything is synced), writes the key filter
// (DEDUPE-FILTER) and a DEDUPE-META file (the lineage id, n and a random
// nonce) into it, syncs them and the directory, renames it to ckpt-<n> and
// syncs Config.Dir. It returns {"db": lineage, "epoch": n, "nonce": ...}.
// It then deletes every checkpoint but ckpt-<n> and the previous one (the one restored by Open or
// made by the previous Snapshot): Snapshot(n) is only called once
// checkpoint n-1 finished (the runner runs checkpoints one at a time, and a
// failed one ends the run), so manifest n-1 is durable and no restart can
// ask for anything older than n-1.
//
// Open(state) checks that ckpt-<n> exists and that its DEDUPE-META matches
// the lineage, n and nonce of state, and rebuilds live/ from it (links and
// copies; the checkpoint itself is never opened, so it stays exactly as
// Snapshot left it however often it is restored). Everything the live
// database held after Snapshot(n), checkpointed or not, is gone. The nonce
// matters because the runner reuses checkpoint ids after a lost manifest:
// ckpt-<n> of a branch a restore abandoned is never taken for the ckpt-<n>
// a manifest names. Open(nil) deletes live/ and every checkpoint and
// starts empty under a new lineage id.
//
// Because a restart never recovers live/ from its own log, the live
// database runs without a write-ahead log: Process writes collect in
// memory (the pending writes, flushed to Pebble every 2^18 keys as one
// sorted batch) and nothing is synced until the next Snapshot. That saves
// writing every state change twice. The cost is a Snapshot proportional to
// the pending writes (one flush) and the key filter (16 MiB written), a few
// hundred hard links, and disk space for sstables that only the two kept
// checkpoints still reference.
//
// When the checkpoint named by state is not there (the directory was lost,
// or a savepoint older than the previous checkpoint is restored) or holds
// another state, Open falls back to empty state, with a warning and
// Stats.Resets. Empty state is the safe side: it only lets through
// duplicates, which the sink's keyed upserts absorb, while wrong state
// would drop replayed records for good.
//
// # Memory
//
// The state lives in Pebble; the operator's memory is Pebble's block cache
// (Config.CacheSize, default 32 MiB), the key filter (Config.FilterSize,
// default 16 MiB, in the Go heap), the pending writes (about 15 MiB at
// most, Go heap) and the batch they are flushed as until Pebble has written
// it out, and per-batch scratch, whatever the key count. Pebble's memtables
// (16 MiB each) now only take the small writes of Snapshot. In a binary
// built with cgo Pebble allocates its cache and memtables through C: with
// glibc, one malloc arena and a pinned mmap threshold (MALLOC_ARENA_MAX=1,
// MALLOC_MMAP_THRESHOLD_=131072, both of which sluice sets itself)
// keep the process' RSS close to that figure (see the benchmark). Pebble's
// options are set in store.go, each with its reason.
//
// # Concurrency
//
// Process, Snapshot, Open and Close are called from one goroutine, as
// pipeline.Operator promises. Stats may be called from any goroutine.
package dedupe
