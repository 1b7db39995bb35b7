// Package pipeline defines sluice's records, batches and stage interfaces,
// and the Runner that drives sources, operators and the sink through the
// checkpoint protocol.
//
// # Goroutines and channels
//
// The Runner owns every goroutine. Each Source is driven by one goroutine
// that calls Read in a loop and sends batches into one bounded queue shared
// by all sources; the queue's depth is the backpressure: a slow sink blocks
// the senders, which stop calling Read. The Runner's own goroutine (the
// task loop) receives from the queue, runs the operator chain and the sink
// in order, and runs the checkpoint protocol. Only the Runner closes the
// queue, after every source goroutine returned. Sources, operators and
// sinks never start goroutines that outlive a call, with two exceptions
// that their owners join: a source's own client library (a Kafka client, a
// binlog stream), stopped by Close, and a sink's one background segment
// write, joined by the next Prepare or Close.
//
// # Barriers and alignment
//
// A checkpoint n starts when the task loop asks every live source for it.
// Each source goroutine, between two Reads, calls Snapshot, sends barrier n
// with that position into the queue and then waits. Once barrier n arrived
// from every live source, everything before it has been processed and
// nothing after it has been sent, so the cut is consistent: the task loop
// releases the sources and runs the protocol below. A source that reached
// its end sends its final position and counts as aligned for every later
// checkpoint.
//
// # The protocol (see DESIGN.md)
//
//  1. sources record positions and emit barriers (above);
//  2. operators snapshot state, in chain order;
//  3. the sink prepares: files are written, nothing is visible;
//  4. the manifest (positions, operator state, prepared files) is written
//     synced: checkpoint n is durable;
//  5. the sink commits, idempotently per table;
//  6. the store marks n complete and sources Ack n upstream.
//
// On start the Runner loads the newest manifest. If it is not complete,
// step 5 and 6 are redone from the manifest alone. Sources and operators
// then open from its state. A crash at any instruction therefore loses
// nothing (positions never run ahead of committed data) and duplicates
// nothing (the sink skips checkpoints a table already holds).
//
// # Modes
//
// With AvailableNow, sources end on their own and the Runner takes a final
// checkpoint when every source ended. Stop asks a daemon for the same: a
// final checkpoint, then a clean return.
package pipeline
