package e2e

import (
	"io"
	"os/exec"
)

type execCmd = exec.Cmd

// newCmd prepares a long-running sluice whose output the test does not
// read; tests that need the output use job.run.
func newCmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = io.Discard, io.Discard
	return c
}
