//go:build cgo && linux

package main

/*
#include <malloc.h>
#include <stdlib.h>

static int sluice_malloc_arenas_limited;
static int sluice_mmap_threshold_fixed;

// Runs when the binary is loaded, before the Go runtime starts threads:
// glibc fixes the arena count when a thread other than the first one
// first allocates, and the runtime's threads do so before main.main.
__attribute__((constructor)) static void sluice_one_malloc_arena(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		sluice_malloc_arenas_limited = mallopt(M_ARENA_MAX, 1) == 1;
	}
#endif
	if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL) {
		sluice_mmap_threshold_fixed = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1;
	}
}

static int sluice_one_malloc_arena_done(void) { return sluice_malloc_arenas_limited; }
static int sluice_mmap_threshold_done(void) { return sluice_mmap_threshold_fixed; }
*/
import "C"

// cgoMalloc: Pebble allocates its cache and memtables through C.
const cgoMalloc = true

// oneMallocArena reports whether glibc's malloc was limited to one arena,
// as MALLOC_ARENA_MAX=1 would: a C constructor does it when the binary
// loads, unless MALLOC_ARENA_MAX is set (then that wins).
//
// Only a binary built with cgo allocates through C: Pebble's block cache
// and memtables then live in malloc's heap, not Go's. glibc gives threads
// that contend for malloc arenas of their own, up to eight per core, and
// the cache's blocks, freed and reallocated across them, leave each arena
// fragmented. With one arena the operator-chain benchmark (6M keys) peaked
// at 421-443 MB instead of 485-501 MB, at the same rate.
func oneMallocArena() bool { return C.sluice_one_malloc_arena_done() != 0 }

// mmapThresholdFixed reports whether glibc's mmap threshold was pinned at
// its initial 128 KiB, as MALLOC_MMAP_THRESHOLD_=131072 would: the same C
// constructor does it, unless that variable is set.
//
// glibc raises the threshold each time a mapped chunk is freed, up to 32
// MiB, so that after Pebble frees its first memtable (16 MiB) later ones
// come from the brk heap, where freed space is rarely returned to the
// system and the cache's small blocks fragment around it. Pinned, every
// large allocation is its own mapping, returned when freed and resident
// only where touched. A dedupe job over 10M keys peaked at 334-347 MB
// instead of 381 MB, for the same CPU.
func mmapThresholdFixed() bool { return C.sluice_mmap_threshold_done() != 0 }
