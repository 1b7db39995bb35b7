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
// records later may add other values. The cache is therefore not state:
// Snapshot returns nothing, and a restarted job starts with empty caches.
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
// # Calls and goroutines
//
// The runner calls Open, then Process and Snapshot from one goroutine,
// then Close; Open may follow Close. Stats may be called from any
// goroutine. The operator starts no goroutines, and each dimension holds
// one database connection.
package enrich
