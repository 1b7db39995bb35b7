package testinfra

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// EnvInfra names the environment variable that selects the backend.
const EnvInfra = "SLUICE_TEST_INFRA"

// startTimeout bounds a server's start, readiness included. Generous: the
// CI machine has 2 cores shared with other test binaries.
const startTimeout = 60 * time.Second

// Main runs the tests of a package and then stops every server this
// package started, whatever the tests' outcome. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testinfra.Main(m) }
func Main(m *testing.M) {
	mainUsed.Store(true)
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started so far, by PID, and removes their
// directories. For a TestMain that cannot use Main; no server may be used
// afterwards.
func StopAll() {
	reg.mu.Lock()
	stops := reg.stops
	reg.stops = nil
	reg.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

var (
	mainUsed   atomic.Bool
	warnNoMain sync.Once
	reg        struct {
		mu    sync.Mutex
		stops []func()
	}
)

func atExit(stop func()) {
	reg.mu.Lock()
	reg.stops = append(reg.stops, stop)
	reg.mu.Unlock()
}

// checkMain notes once that the package's TestMain does not call Main.
func checkMain(t testing.TB) {
	t.Helper()
	if !mainUsed.Load() {
		warnNoMain.Do(func() {
			t.Logf("testinfra: this package's TestMain does not call testinfra.Main: servers die with the test binary (parent-death signal, or Ryuk for containers), their directories are removed by a later run")
		})
	}
}

// missing ends a test whose server binary is not installed: a skip, or a
// failure under CI=true (CI installs the binaries, so it never skips).
func missing(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("testinfra: %s not found; install it: %s", what, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (with CI=true this fails instead)")
}

// lookBin finds a program on PATH or in one of dirs.
func lookBin(name string, dirs ...string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// goBinDirs are where go install and go build -o put the servers built
// from Go: GOBIN, each GOPATH's bin, ~/go/bin, and the bin folder at the
// root of this repository (the nearest parent of the working directory
// with a go.mod and a tools folder).
func goBinDirs() []string {
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, d := range filepath.SplitList(gp) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			_, errMod := os.Stat(filepath.Join(d, "go.mod"))
			_, errTools := os.Stat(filepath.Join(d, "tools"))
			if errMod == nil && errTools == nil {
				dirs = append(dirs, filepath.Join(d, "bin"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return dirs
}

// shared starts a server at most once per test binary and remembers the
// outcome.
type shared[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (s *shared[T]) get(start func() (T, error)) (T, error) {
	s.once.Do(func() { s.v, s.err = start() })
	return s.v, s.err
}

var nameSeq atomic.Int64

// uniqueName derives a database or bucket name from the test's name:
// lowercase letters, digits and sep, unique in this test binary.
func uniqueName(t testing.TB, sep byte, maxLen int) string {
	parts := strings.FieldsFunc(strings.ToLower(t.Name()), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
	s := fmt.Sprintf("t%d", nameSeq.Add(1))
	if len(parts) > 0 {
		s += string(sep) + strings.Join(parts, string(sep))
	}
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return strings.TrimRight(s, string(sep))
}

// dirPrefix names the directories of this test binary's servers; the PID
// lets a later binary remove what a killed one left behind.
func dirPrefix() string { return "sluice-testinfra-" }

var sweepOnce sync.Once

// newServerDir makes a directory for one server. Not t.TempDir: the server
// outlives the test that started it.
func newServerDir(kind string) (string, error) {
	sweepOnce.Do(sweepStale)
	return os.MkdirTemp("", fmt.Sprintf("%s%d-%s-", dirPrefix(), os.Getpid(), kind))
}

// sweepStale removes server directories of test binaries that are gone.
func sweepStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix()+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), dirPrefix())
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(m)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. A
// server that loses the race for it fails to start and is retried.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// The parent-death signal is tied to the thread that forked the child, and
// the Go runtime may end threads (a goroutine that exits while locked to
// its thread). One goroutine locked to its thread for the life of the
// process forks every child, so that the signal fires only when the test
// binary dies.
var spawner = sync.OnceValue(func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for f := range ch {
			f()
		}
	}()
	return ch
})

func startOnSpawner(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return <-errc
}

// proc is a running child process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logs    []string // files whose tails explain a failure
	stopSig syscall.Signal
	exited  chan struct{}
	waitErr error
}

// startProc starts bin with its output appended to logPath.
func startProc(name, logPath string, cred *syscall.Credential, stopSig syscall.Signal, extraLogs []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = filepath.Dir(logPath) // readable by a child that runs as another user
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := startOnSpawner(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logs: append([]string{logPath}, extraLogs...), stopSig: stopSig, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process by PID: stopSig, then SIGKILL after a grace period.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(p.stopSig)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// logTail is the end of the process's log files, for error messages.
func (p *proc) logTail() string {
	var b strings.Builder
	for _, l := range p.logs {
		b.WriteString(fileTail(l, 25))
	}
	return b.String()
}

func fileTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	data = bytes.TrimRight(data, "\n")
	ls := bytes.Split(data, []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return fmt.Sprintf("\n--- last lines of %s ---\n%s", path, bytes.Join(ls, []byte("\n")))
}

// waitReady polls probe until it succeeds, the process exits or the
// deadline passes; errors carry the server's log tail.
func (p *proc) waitReady(deadline time.Time, probe func(ctx context.Context) error) error {
	var last error
	for sleep := 20 * time.Millisecond; ; sleep = min(sleep*2, 250*time.Millisecond) {
		if p.hasExited() {
			return fmt.Errorf("%s (pid %d) exited before it was ready: %v%s", p.name, p.pid(), p.waitErr, p.logTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = probe(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %v: %v%s", p.name, p.pid(), startTimeout, last, p.logTail())
		}
		time.Sleep(sleep)
	}
}

// runTool runs a short-lived program (initdb, mariadb-install-db) to its
// end, with its output in logPath.
func runTool(logPath string, cred *syscall.Credential, bin string, args ...string) error {
	p, err := startProc(filepath.Base(bin), logPath, cred, syscall.SIGKILL, nil, bin, args...)
	if err != nil {
		return err
	}
	select {
	case <-p.exited:
	case <-time.After(startTimeout):
		p.stop()
		return fmt.Errorf("%s did not finish in %v%s", p.name, startTimeout, p.logTail())
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s %s: %v%s", p.name, strings.Join(args, " "), p.waitErr, p.logTail())
	}
	return nil
}

// startWithRetry starts a server on a fresh port until it gets ready: a
// port picked by freePort may be taken by another process before the server
// binds it.
func startWithRetry(start func(port int) (*proc, error), probe func(port int) func(ctx context.Context) error) (*proc, int, error) {
	deadline := time.Now().Add(startTimeout)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		port, err = freePort()
		if err != nil {
			return nil, 0, err
		}
		var p *proc
		p, err = start(port)
		if err != nil {
			return nil, 0, err
		}
		err = p.waitReady(deadline, probe(port))
		if err == nil {
			return p, port, nil
		}
		exitedEarly := p.hasExited()
		p.stop()
		if !exitedEarly || time.Now().After(deadline) {
			break
		}
	}
	return nil, 0, err
}

// openPinged opens a database handle and proves the server answers; it is
// the readiness probe of the SQL servers. On error no handle is left open.
func openPinged(ctx context.Context, driver, dsn string) (*sql.DB, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
