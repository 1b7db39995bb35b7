package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary built for the tests that need a real process:
// exit codes, signals, and what reaches stderr. TestMain owns the
// directory; the first test that needs the binary builds it, once, so that
// `go test -run TestConfig` does not pay for linking.
var binDir string

var buildSluice = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// sluiceBin returns the built binary.
func sluiceBin(t *testing.T) string {
	t.Helper()
	bin, err := buildSluice()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

// sluice runs the binary in dir and waits for it.
func sluice(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	bin := sluiceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("sluice %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func assertNoCrash(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic", "goroutine "} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, stderr)
		}
	}
}

func TestBinaryValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		env      []string
		code     int
		stdout   string // substring
		stderrAt string // the location that must start stderr
	}{
		{
			name:   "valid",
			yaml:   doc("job: demo", "source:", "  datagen: {total: 10}"),
			code:   0,
			stdout: "ok: job demo, 1 source(s), 1 sink table rule(s)\n",
		},
		{
			name:     "unknown key",
			yaml:     doc("job: demo", "source:", "  datagen: {total: 10}", "checkpoint:", "  intervall: 5s"),
			code:     2,
			stderrAt: "bad.yaml:5:3: unknown field \"intervall\" in checkpoint",
		},
		{
			name:     "wrong type",
			yaml:     doc("job: demo", "source:", "  datagen: {total: 10}", "checkpoint:", "  interval: abc"),
			code:     2,
			stderrAt: "bad.yaml:5:13: checkpoint.interval: expected a duration",
		},
		{
			name:     "unset variable",
			yaml:     doc("job: demo", "sink:", "  warehouse: ${SLUICE_TEST_UNSET_VAR}"),
			code:     2,
			stderrAt: "bad.yaml:3:14: environment variable SLUICE_TEST_UNSET_VAR is not set",
		},
		{
			name:   "variable with default",
			yaml:   doc("job: ${SLUICE_TEST_UNSET_VAR:-fromdefault}", "source: {datagen: {}}"),
			code:   0,
			stdout: "ok: job fromdefault,",
		},
		{
			name:     "bad catalog type",
			yaml:     doc("job: demo", "source: {datagen: {}}", "sink:", "  catalog:", "    type: nessie"),
			code:     2,
			stderrAt: "bad.yaml:5:5: sink.catalog.type: expected sql, rest, glue or hive, got \"nessie\"",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, "bad.yaml", tc.yaml)
			r := sluice(t, dir, tc.env, "validate", "-c", "bad.yaml")
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout != "" && !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout %q does not contain %q", r.stdout, tc.stdout)
			}
			if tc.stderrAt != "" && !strings.HasPrefix(r.stderr, tc.stderrAt) {
				t.Errorf("stderr does not start with %q:\n%s", tc.stderrAt, r.stderr)
			}
			assertNoCrash(t, r.stderr)
		})
	}
}

func TestBinaryUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "job.yaml", doc("job: demo", "source: {datagen: {}}"))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"validate"}, 2, `required flag(s) "config" not set`},
		{[]string{"validate", "-c", "job.yaml", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"validate", "-c", "missing.yaml"}, 2, "missing.yaml: cannot read job file"},
		{[]string{"scan", "-c", "job.yaml"}, 2, "scan takes one table name"},
		{[]string{"version"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := sluice(t, dir, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr does not contain %q:\n%s", tc.want, r.stderr)
			}
			assertNoCrash(t, r.stderr)
		})
	}
}

const e2eJob = `job: e2e
source:
  datagen:
    total: 3000
    tables:
      - {name: shop.orders, preset: orders, keys: 500}
sink:
  tables:
    - {match: "shop.*", dwd: "{table}"}
checkpoint:
  interval: 200ms
`

// TestBinaryRunOnceThenInspect is the quickstart: a bounded run, then the
// commands a user reaches for to see what landed.
func TestBinaryRunOnceThenInspect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "job.yaml", e2eJob)

	r := sluice(t, dir, nil, "checkpoints", "-c", "job.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "no checkpoints") {
		t.Fatalf("checkpoints before any run: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("listing checkpoints created the store directory (stat: %v)", err)
	}

	r = sluice(t, dir, nil, "run", "--once", "-c", "job.yaml")
	if r.code != 0 {
		t.Fatalf("run --once: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"catalog:   sqlite://./lake/catalog.db", "warehouse: file://./lake/warehouse", "  default.orders\n", "sluice scan -c job.yaml default.orders"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, r.stdout)
		}
	}
	// stderr is not a terminal here, so the logs are JSON with the job id.
	if !strings.Contains(r.stderr, `"job":"e2e"`) || !strings.Contains(r.stderr, `"msg":"checkpoint complete"`) {
		t.Errorf("logs are not JSON lines tagged with the job:\n%s", r.stderr)
	}
	assertNoCrash(t, r.stderr)

	r = sluice(t, dir, nil, "tables", "-c", "job.yaml")
	if r.code != 0 || r.stdout != "default.orders\n" {
		t.Errorf("tables: code %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}

	r = sluice(t, dir, nil, "scan", "-c", "job.yaml", "default.orders", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "id ") || lines[3] != "(2 row(s))" {
		t.Errorf("scan: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = sluice(t, dir, nil, "checkpoints", "-c", "job.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "final") || !strings.Contains(r.stdout, "datagen=seq=3000") {
		t.Errorf("checkpoints: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = sluice(t, dir, nil, "maintain", "-c", "job.yaml", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "default.orders") || !strings.Contains(r.stdout, "dry run") {
		t.Errorf("maintain: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The input is exhausted: a backfill resumes at its end and finishes.
	r = sluice(t, dir, nil, "backfill", "-c", "job.yaml")
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"backfill read done"`) {
		t.Errorf("backfill: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	assertNoCrash(t, r.stderr)
}

// TestBinaryDaemonStopsOnSignal checks the daemon's life: its store is
// locked against a second process, and SIGTERM ends it cleanly after a
// final checkpoint.
func TestBinaryDaemonStopsOnSignal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "job.yaml", doc(
		"job: daemon",
		"source:",
		"  datagen: {rate: 2000}",
		"checkpoint: {interval: 200ms}",
	))
	cmd := exec.Command(sluiceBin(t), "run", "-c", "job.yaml")
	cmd.Dir = dir
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// A completed checkpoint means the run loop, and so the signal
	// handler, is up.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"checkpoint complete"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint within 30s:\n%s", stderr.String())
		}
		select {
		case err := <-exited:
			t.Fatalf("daemon exited early (%v):\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}

	r := sluice(t, dir, nil, "checkpoints", "-c", "job.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "is locked by another process") || !strings.Contains(r.stderr, "sluice run") {
		t.Errorf("checkpoints while the daemon runs: code %d\n%s", r.code, r.stderr)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop within 30s of SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"kind":"final"`) {
		t.Errorf("no final checkpoint logged:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "tables written:") {
		t.Errorf("run did not say where the tables are:\n%s", stdout.String())
	}
	assertNoCrash(t, stderr.String())
}

// TestExecuteInProcess covers the CLI plumbing without a process.
func TestExecuteInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, dir, "good.yaml", doc("job: demo", "source: {datagen: {}}", "sink: {tables: [{match: a.*, dwd: x}, {match: '*', ods: y}]}"))
	writeFile(t, dir, "bad.yaml", doc("job: demo", "source: {datagen: {}}", "sink: {format_version: 9}"))
	tests := []struct {
		args       []string
		code       int
		stdout     string
		stderrHead string
	}{
		{[]string{"validate", "-c", good}, 0, "ok: job demo, 1 source(s), 2 sink table rule(s)\n", ""},
		{[]string{"validate", "-c", filepath.Join(dir, "bad.yaml")}, 2, "", filepath.Join(dir, "bad.yaml") + ":3:8: sink.format_version: expected 2 or 3, got 9\n"},
		{[]string{"version"}, 0, "sluice ", ""},
		{[]string{"maintain", "-c", good, "--retain", "-1"}, 2, "", "sluice: --older-than and --retain must not be negative"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := execute(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want prefix %q", stdout.String(), tc.stdout)
			}
			if !strings.HasPrefix(stderr.String(), tc.stderrHead) {
				t.Errorf("stderr %q, want prefix %q", stderr.String(), tc.stderrHead)
			}
		})
	}
}

// The C constructor pins glibc's mmap threshold (and limits the arenas)
// in every cgo build on Linux, unless the environment says otherwise.
func TestMallocTuning(t *testing.T) {
	if !cgoMalloc {
		if oneMallocArena() || mmapThresholdFixed() {
			t.Fatal("a binary without cgo reports malloc tuning")
		}
		t.Skip("no cgo: nothing is allocated through C")
	}
	if os.Getenv("MALLOC_MMAP_THRESHOLD_") == "" && !mmapThresholdFixed() {
		t.Error("the mmap threshold was not pinned")
	}
	if os.Getenv("MALLOC_ARENA_MAX") == "" && !oneMallocArena() {
		t.Error("malloc was not limited to one arena")
	}
}
