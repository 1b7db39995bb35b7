package checkpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Fault points of the checkpoint protocol, in protocol order. Crash tests
// set SLUICE_FAULT to "point" (first time it is reached) or "point@N" (at
// checkpoint N) and the process kills itself with SIGKILL there, exactly as
// a crash would: no deferred function runs, nothing is flushed.
const (
	FaultAfterOperatorState = "after-operator-state"
	FaultAfterPrepare       = "after-prepare"
	FaultAfterManifest      = "after-manifest"
	FaultBetweenTableCommit = "between-table-commits"
	FaultAfterCommit        = "after-commit"
	FaultAfterComplete      = "after-complete"
	FaultAfterAck           = "after-ack"
)

// FaultPoints lists every point, for tests that visit them all.
var FaultPoints = []string{
	FaultAfterOperatorState, FaultAfterPrepare, FaultAfterManifest,
	FaultBetweenTableCommit, FaultAfterCommit, FaultAfterComplete, FaultAfterAck,
}

var faultSpec = sync.OnceValue(func() struct {
	point string
	id    uint64
} {
	v := os.Getenv("SLUICE_FAULT")
	point, idStr, _ := strings.Cut(v, "@")
	id, _ := strconv.ParseUint(idStr, 10, 64)
	return struct {
		point string
		id    uint64
	}{point, id}
})

// Fault kills the process if SLUICE_FAULT names this point (and checkpoint).
func Fault(point string, id uint64) {
	spec := faultSpec()
	if spec.point == "" || spec.point != point || (spec.id != 0 && spec.id != id) {
		return
	}
	fmt.Fprintf(os.Stderr, "sluice: fault injected at %s (checkpoint %d)\n", point, id)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not deliverable to a blocked goroutine late; wait for it
}
