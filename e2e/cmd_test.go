package e2e

import (
	"os"
	"os/exec"
)

type execCmd = exec.Cmd

func newCmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Stderr = os.Stderr
	return c
}
