// Package dedupe will hold the primary-key deduplication operator: keyed
// state in Pebble per table and key (the last applied source position and a
// hash of the row), dropping changes older than what was applied and
// updates that change nothing, snapshotted at each checkpoint.
//
// Nothing is implemented here yet; see pipeline/doc.go for the Operator
// contract it will follow.
package dedupe
