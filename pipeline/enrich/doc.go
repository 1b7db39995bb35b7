// Package enrich is a lookup join: an operator that adds columns from a
// dimension table to the records of matching tables, keyed by one column
// of the record, as of processing time.
//
// # Configuration
//
// A job declares dimensions and the rules that use them:
//
//	dimensions:
//	  channels:
//	    jdbc:
//	      driver: mysql                 # or postgres; default from the dsn
//	      dsn: ${DIM_DSN}               # user:pass@tcp(host:3306)/crm
//	      table: crm.channels           # "table" or "schema.table"
//	      key: id                       # the column looked up
//	    columns: [name, region]         # default: the columns rules add
//	    cache: {size: 100000, ttl: 10m, negative_ttl: 1m}
//	    batch_size: 500                 # keys per lookup query
//	enrich:
//	  - match: shop.orders              # path.Match glob over "db.table"
//	    dim: channels
//	    on: channel_id                  # record column holding the key
//	    add: {channel_name: name, channel_region: region}
//	    missing: "null"                 # or drop, dead_letter
//
// The lookup is generated, never written by hand:
// SELECT key, columns FROM table WHERE key IN (...), identifiers quoted
// for the driver. Added columns are appended after the record's columns,
// in the order of their names within a rule and of the rules in the list,
// nullable, with the dimension columns' types (MySQL types map as in
// cdc/mysql; decimals wider than 18 digits become strings). Several rules
// may match one table; a rule's `on` may name a column an earlier rule
// added, which chains dimensions.
//
// # Semantics
//
// Processing time: a record gets the dimension row as it was when the
// record was processed, give or take the cache TTL. Replaying the same
// records later may add other values. For JDBC dimensions the cache is
// therefore not state, and a restarted job starts with empty caches
// (stream dimensions are state, below).
//
// Per batch and rule, the operator collects the distinct keys the cache
// cannot answer and fetches them sorted, BatchSize keys per query, one
// round trip each through a prepared statement. Round trips dominate the
// cost of a miss, so a batch of 1,200 new keys costs three queries rather
// than 1,200. Keys without a row are cached too (for NegativeTTL), so a
// stream of orphans does not query once per record.
//
// Keys are compared in a canonical form that depends on the dimension's
// key column: for an integer column, the int64 value (int32 42, int64 42
// and the string "42" are one key; "4x" matches nothing); for a text or
// decimal column, the text (strings as they are, integers in decimal,
// decimals as pipeline.Decimal.String writes them, so scales must agree);
// for a binary column, the bytes. Text compares byte for byte, even where
// the dimension's collation would ignore case or trailing spaces. A NULL
// key, or one that cannot be a key of the column, has no row.
//
// Inserts, reads and updates are looked up by their after image. Deletes
// are passed on without a lookup, their before image extended with NULLs,
// as are the before images of updates: downstream removes rows by primary
// key, the added columns are never part of it, and a missing dimension
// row must not drop or dead-letter a delete (the row would stay in the
// lake).
//
// A record whose key has no row gets its rule's Missing policy: NULL
// columns (default), dropped (Stats.Dropped), or a dead letter in
// pipeline.DeadLetterTable with stage "enrich" and the reason
// "no row in dimension D for col=key". A lookup that fails (connection
// lost, table dropped) is an infrastructure failure, not a property of
// the record: Process returns it, and the runner restarts from the last
// checkpoint.
//
// # Stream dimensions
//
// A dimension may instead be kept current from a change stream of a table
// the job's own source captures:
//
//	dimensions:
//	  customers:
//	    stream: {table: shop.customers, key: id}   # instead of jdbc
//	    columns: [name, tier]
//	    cache: {size: 100000}                      # ttl does not apply
//
// The chain is one goroutine, so the operator sees every batch in stream
// order. A batch of the stream's table (as the chain emits it, after its
// own cleaning and dedupe; the runner's LayerRaw copy never reaches
// operators) is applied to a Pebble store before anything else happens
// to it: inserts, reads and updates put key -> the encoded Columns (an
// update that changes the key removes the old one), deletes remove the
// key. The batch is then passed on unchanged, so the dimension table
// lands in the lake as usual. Rules of a stream dimension look keys up in
// the store, sorted per batch, behind an LRU cache of Cache.Size keys
// that every write updates, so it is never stale and needs no TTL.
// Semantics are still processing time, but deterministic: a fact row sees
// the dimension as of its own position in the stream, and a replay from a
// checkpoint sees the same values again.
//
// State: all stream dimensions of a job share one checkpoint.StateDB in
// the directory WithStateDir names (cmd/sluice uses <checkpoint.dir>/enrich,
// as dedupe uses <checkpoint.dir>/dedupe). Snapshot(id) flushes it and
// takes a Pebble checkpoint per id (with a nonce; the two newest are kept),
// and Open(state) rebuilds the live store from exactly that checkpoint,
// not from the later live content, because the source replays from the
// checkpoint's position. Unlike dedupe's, this state cannot be rebuilt by
// a replay (the dimension's rows were read once, before the position), so
// a missing checkpoint fails Open rather than starting empty. That
// includes a savepoint older than the previous checkpoint: only the two
// newest checkpoints of the store are kept, so a job with stream
// dimensions cannot yet rewind to an older savepoint. Memory is
// bounded whatever the dimension's size: an 8 MiB block cache, two 4 MiB
// memtables and the LRU.
//
// Types: the added columns take the types of the stream table's columns.
// They are fixed when first learnt and stored with the state: from the
// restored state, else from a probe of the source table when the wiring
// gives Stream.ProbeDSN (cmd/sluice does for a MySQL source), else from
// the first batch of the table. A fact batch that needs them before any
// of these is an error saying so. Values of a later schema version whose
// type changed are converted to the first type where possible.
//
// Ordering during an initial snapshot: the source reads tables chunk by
// chunk, so a fact row can be processed before the chunk holding its
// dimension row, and it gets the Missing policy. List the dimension table
// first in the source's tables (so that it is snapshotted first), take the
// snapshot of the dimension in an earlier run, or use missing: "null" and
// accept NULLs for rows read before their dimension row. Once streaming,
// the binlog's order is the order of the changes at the source: a
// dimension change committed before a fact row's transaction is seen by it.
//
// # Kafka-fed stream dimensions
//
// A stream dimension may instead read a Kafka topic of its own:
//
//	dimensions:
//	  customers:
//	    stream:
//	      kafka: {brokers: ["127.0.0.1:9092"], topic: customers}
//	      key: id                                   # instead of table
//	    columns: [name, tier]
//
// The operator owns a franz-go client (package kafkafeed) that reads every
// partition the topic has when the operator opens, with no consumer group:
// from the start of the topic on a fresh start, else from the offsets
// held in the restored state. Partitions added later are not read. An
// offset the topic no longer holds (removed by retention) fails the run
// rather than skipping messages.
//
// Messages are JSON, one row per record value: an object whose Key field
// is the key and whose Columns fields are read by name (an absent field is
// NULL). A Debezium envelope ({"before", "after", "op"}, at the top or in
// "payload") applies its after image for op c, r and u (an update whose
// before image has another key removes that key) and deletes its before
// image's key for op d. A tombstone (no value, or JSON null) deletes the
// key given by the message key: the JSON of the key value (42, "ab"), an
// object holding the Key field (as Debezium writes keys), or plain text.
// A message that cannot be read (not JSON, no key, a value the column's
// type cannot hold, another op) becomes a dead letter in
// pipeline.DeadLetterTable with stage "enrich", source_table
// "kafka.<topic>", the raw value, and a reason and position naming topic,
// partition and offset; the messages after it are applied.
//
// When: the first Process after Open reads the topic up to its end offsets
// as of then (or until it was idle for CatchUpIdle), so that the first
// fact batch of a new or restarted job looks keys up in a current
// dimension. Before every later batch the operator applies what the
// client has fetched in the background since, without waiting: a fact row
// sees the dimension as of its processing time, a few milliseconds behind
// the topic. Unlike a table of the job's own source, the order between a
// dimension change and a fact row is not defined, and a replay may see
// other values.
//
// State: rows, shape and the offsets applied (next offset per partition)
// live in the same StateDB, written in one batch per poll, so Snapshot(id)
// records exactly the offsets whose messages the checkpoint's rows hold,
// and a restore resumes after them: nothing is skipped, nothing before the
// checkpoint is read again.
//
// Types: JSON carries no schema, so the types are learnt from the first
// row and kept with the state: an integer key is a long and a string key
// a string; a column holding an integer is a long, another number a
// double, a boolean a boolean, and a string, object, array or NULL a
// string (objects and arrays as their JSON text). Later values are
// converted to these types; one that does not convert (3.5 for a long) is
// a dead letter. A fact batch that arrives before the topic has any row
// fails, as for a table-fed dimension whose types are unknown.
//
// # Calls and goroutines
//
// The runner calls Open, then Process and Snapshot from one goroutine,
// then Close; Open may follow Close. Stats may be called from any
// goroutine. The operator starts no goroutines, and each JDBC dimension
// holds one database connection (Pebble runs its own compactions). A
// Kafka-fed dimension's client fetches on franz-go's own goroutines,
// which Close stops.
package enrich
