// Package datagen is a synthetic change-data source for the quickstart, the
// tests and the benchmarks. Its point is that the whole change stream is
// known in advance: a test can compute the exact final state of every table
// and the exact changelog a run must produce, and a crash test can kill a
// run anywhere and still know what the lake must hold afterwards.
//
// # The determinism contract
//
// The stream is a sequence of changes numbered i = 0, 1, 2, ... across all
// tables. For a given Config (ignoring Rate and BatchSize, which never
// change the data):
//
//   - The table and the key of change i are a pure function of (Seed, i):
//     a splitmix64 hash of the seed and i, not a sequential random stream.
//     A restart can therefore resume at any i without generating what came
//     before it. The table is drawn by Weight, the key uniformly from
//     [0, Keys).
//   - The op depends on whether that key exists, which is a function of the
//     changes before i: an absent key is inserted; a present one is deleted
//     with probability Delete/(Insert+Update+Delete) and updated otherwise
//     (an insert of a present key is not possible, so Insert counts as
//     update).
//   - The values of change i's row are a pure function of (Seed, i, column),
//     except the key columns, which derive from the key number: a long or
//     int key is the number, a string key "k%08d", a binary key its 8
//     big-endian bytes, a decimal key the number as unscaled value. With a
//     composite key only the last column carries the full number; earlier
//     ones carry it modulo 100.
//   - An update's or delete's Before is exactly the After that the key's
//     previous change produced. The generator keeps no rows: it remembers
//     per key which change last wrote it and regenerates that image. That
//     costs 8 bytes per key, so above 50,000,000 keys only the existence
//     bitmap is kept and Before images carry the key columns alone.
//   - Record.Position is "seq=<i>" and Record.Seq is i+1; Record.EventTime is
//     2026-01-01T00:00:00Z plus i milliseconds.
//
// Config.Replay regenerates the first n changes through the same code the
// Source uses, which is how tests get their expectations.
//
// # Batches, positions and restarts
//
// Read returns consecutive changes of one table, cut where the next change
// belongs to another table or at BatchSize, so batches never reorder the
// stream. Snapshot's state is {"next": i}, the number of changes emitted;
// Open with that state replays only the key existence of changes [0, i),
// which takes milliseconds per million changes, and continues at i exactly
// as an uninterrupted run would. Restoring with a different Seed, table
// list, key space, mix or schema silently yields other data: the state
// does not carry the config.
//
// In available-now mode a bounded generator (Total > 0) runs to Total and an
// unbounded one ends at once, as nothing new "exists" in an endless stream.
//
// # Concurrency
//
// The Runner calls Open, Read, Snapshot and Close from one goroutine; Ack
// and Close do nothing. Progress may be called from any goroutine. Records
// handed out are never touched again by the generator, so consumers may
// keep them.
package datagen
