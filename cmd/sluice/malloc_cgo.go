//go:build cgo && linux

package main

/*
#include <malloc.h>
#include <stdlib.h>

static int sluice_malloc_arenas_limited;

// Runs when the binary is loaded, before the Go runtime starts threads:
// glibc fixes the arena count when a thread other than the first one
// first allocates, and the runtime's threads do so before main.main.
__attribute__((constructor)) static void sluice_one_malloc_arena(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		sluice_malloc_arenas_limited = mallopt(M_ARENA_MAX, 1) == 1;
	}
#endif
}

static int sluice_one_malloc_arena_done(void) { return sluice_malloc_arenas_limited; }
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
