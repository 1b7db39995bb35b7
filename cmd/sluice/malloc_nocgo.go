//go:build !cgo || !linux

package main

// oneMallocArena does nothing without cgo: nothing is allocated through C
// (Pebble's cache is on the Go heap).
func oneMallocArena() bool { return false }

// cgoMalloc: Pebble allocates its cache and memtables on the Go heap.
const cgoMalloc = false

// mmapThresholdFixed does nothing without cgo.
func mmapThresholdFixed() bool { return false }
