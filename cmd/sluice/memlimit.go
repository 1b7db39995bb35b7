package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/dedupe"
)

// DefaultMemoryLimit is the base of process.memory_limit when unset: a
// soft limit on the Go runtime's memory of 256 MiB, plus dedupe's Pebble
// cache and a memtable when the binary has no cgo (see memoryLimit).
//
// Without a limit the Go heap grows to twice the live data between
// collections (GOGC=100), and the runtime returns freed pages to the OS
// only lazily: a 10M-key operator-chain job whose live heap peaked near
// 170 MB (the sink's column buffers and zstd windows, dedupe's key filter
// and pending writes, the source) held 320 MB of heap at its peak. With
// the limit the runtime collects sooner, and returns memory eagerly, as
// the heap approaches it. It is soft: a live heap above it is not an
// error, the collector then runs more often (using at most about half the
// CPU), so a limit far below a job's live data costs throughput.
const DefaultMemoryLimit int64 = 256 << 20

// DefaultMemoryLimitDedupe replaces DefaultMemoryLimit for a job with
// dedupe in a cgo build, where Pebble's block cache and memtables (80 MiB
// by default) live outside the Go heap and outside the limit. At
// 10,000,000 distinct keys the operator-chain benchmark peaked at 447-449
// MB with 256 MiB and at 377-394 MB with 200 MiB, for about a quarter more
// CPU in the chain (the collector runs more often): the lower limit keeps
// such a job within a 400 MB budget. process.memory_limit trades back.
// Since glibc's mmap threshold is pinned (see mmapThresholdFixed) the
// chain peaks lower at 200 MiB, but still at 388-394 MB with 256 MiB, for
// no clear gain in rate: 200 MiB stays.
const DefaultMemoryLimitDedupe int64 = 200 << 20

// ProcessConfig tunes the process that runs the job.
type ProcessConfig struct {
	// MemoryLimit is the Go runtime's soft memory limit in bytes
	// (runtime/debug.SetMemoryLimit). 0 (the default) is
	// DefaultMemoryLimit; with dedupe, DefaultMemoryLimitDedupe in a cgo
	// build, and DefaultMemoryLimit plus dedupe's cache_size and 16 MiB in
	// a binary built without cgo, where Pebble allocates on the Go heap; -1
	// sets none. The GOMEMLIMIT environment variable, when set, wins.
	MemoryLimit int64 `yaml:"memory_limit"`
}

// Validate reports the first invalid field.
func (c *ProcessConfig) Validate() error {
	if c.MemoryLimit != 0 && c.MemoryLimit != -1 && c.MemoryLimit < 32<<20 {
		return fmt.Errorf("process.memory_limit: must be at least 32 MiB (33554432), or -1 for none, got %d", c.MemoryLimit)
	}
	return nil
}

// memoryLimit is the job's Go memory limit in bytes, -1 for none.
func (cfg *JobConfig) memoryLimit() int64 {
	if l := cfg.Process.MemoryLimit; l != 0 {
		return l
	}
	l := DefaultMemoryLimit
	if cgoMalloc && cfg.hasDedupe() {
		return DefaultMemoryLimitDedupe
	}
	if !cgoMalloc && cfg.hasDedupe() {
		// Pebble's block cache and memtables are Go memory here.
		cache := cfg.Dedupe.CacheSize
		if cache == 0 {
			cache = dedupe.DefaultCacheSize
		}
		l += cache + 16<<20
	}
	return l
}

func (cfg *JobConfig) hasDedupe() bool {
	for _, t := range cfg.Transforms {
		if t.Dedupe != nil {
			return true
		}
	}
	return false
}

// applyMemoryLimit sets the Go runtime's soft memory limit from the job,
// unless GOMEMLIMIT is set.
func applyMemoryLimit(cfg *JobConfig, log *zap.Logger) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("memory limit from GOMEMLIMIT", zap.String("GOMEMLIMIT", v), zap.Int64("bytes", debug.SetMemoryLimit(-1)))
		return
	}
	if l := cfg.memoryLimit(); l > 0 {
		debug.SetMemoryLimit(l)
		log.Info("memory limit", zap.Int64("bytes", l), zap.Bool("one_malloc_arena", oneMallocArena()), zap.Bool("mmap_threshold_fixed", mmapThresholdFixed()))
	}
}
