// Package checkpoint holds sluice's checkpoint protocol state: checkpoint
// ids, manifests, the durable Store that keeps them, the Policy that decides
// when a checkpoint is due, and the fault-injection points that crash tests
// use to kill the process between protocol steps.
//
// A manifest is durable once Store.Put returns: it was written with a synced
// Pebble batch. From then on recovery must be able to finish the checkpoint
// (commit its prepared files) without any in-memory state. Store.Complete
// records that every table committed; only then may sources ack upstream.
//
// This package imports nothing else of sluice's.
package checkpoint
