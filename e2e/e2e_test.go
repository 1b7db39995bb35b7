package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
)

// A clean bounded run: datagen with inserts, updates and deletes over a
// small key space lands in upsert tables equal to the generator's final
// state and append tables holding every change once.
func TestEndToEnd(t *testing.T) {
	j := newJob(t, 40_000, 7_000, "")
	j.mustFinish(t)
	e := j.expected(t)
	j.verify(t, e)
	// A second available-now run reads nothing new and changes nothing.
	j.mustFinish(t)
	j.verify(t, e)
}

// The process is killed with SIGKILL at each step of the checkpoint
// protocol (through fault injection), then restarted until it finishes.
// The tables must equal the source exactly: nothing lost, nothing twice.
func TestCrashAtEveryProtocolStep(t *testing.T) {
	for _, point := range checkpoint.FaultPoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			j := newJob(t, 20_000, 3_000, "")
			// Crash at checkpoint 2, so that one committed checkpoint
			// precedes the crash, and then again at 4 after a restart.
			for _, at := range []string{"2", "4"} {
				r := j.runOnce(t, "SLUICE_FAULT="+point+"@"+at)
				if !r.killed {
					t.Fatalf("fault %s@%s did not kill the process: err=%v\n%s", point, at, r.err, tail(r.stderr, 20))
				}
				if !strings.Contains(r.stderr, "fault injected at "+point) {
					t.Fatalf("process died, but not at the fault point:\n%s", tail(r.stderr, 20))
				}
			}
			j.mustFinish(t)
			j.verify(t, j.expected(t))
		})
	}
}

// Kills at random moments, repeatedly, then a final run to the end.
func TestCrashAtRandomMoments(t *testing.T) {
	rounds := 6
	if v, err := strconv.Atoi(os.Getenv("SLUICE_CHAOS_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0))
	j := newJob(t, 60_000, 2_500, "")
	// A rate limit spreads the run over several seconds, so that kills land
	// in every phase: start-up, recovery, streaming, prepare and commit.
	rewrite(t, j.path, "    total: 60000\n", "    total: 60000\n    rate: 12000\n")
	killed, progressed := 0, 0
	last := uint64(0)
	for i := 0; i < rounds; i++ {
		// Kill after 0 to 2 checkpoints of this run plus up to 700ms: the
		// moment falls anywhere in streaming, prepare, commit or recovery.
		plan := &killPlan{afterCheckpoints: rng.IntN(3), delay: time.Duration(rng.IntN(700)) * time.Millisecond}
		r := j.run(t, sluiceBin, nil, plan, "run", "--once", "-c", j.path)
		switch {
		case r.killed:
			killed++
		case r.err != nil:
			t.Fatalf("round %d: %v\n%s", i, r.err, tail(r.stderr, 30))
		}
		if id := latestCheckpoint(t, j); id > last {
			progressed++
			last = id
		}
	}
	t.Logf("%d of %d rounds were killed mid-run; %d rounds advanced the checkpoint (now %d)", killed, rounds, progressed, last)
	if killed == 0 || progressed == 0 {
		t.Fatalf("the kills did not interrupt a progressing job (killed %d, progressed %d): the test proved nothing", killed, progressed)
	}
	j.mustFinish(t)
	j.verify(t, j.expected(t))
}

// Stop-with-savepoint: SIGTERM on a daemon takes a final checkpoint and
// exits 0; the next run continues where it stopped.
func TestDaemonStopsCleanlyOnSIGTERM(t *testing.T) {
	j, cmd := startRateLimitedDaemon(t, 1_000_000, 20_000)
	stopped := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGINT: %v", err)
	}
	if took := time.Since(stopped); took > 20*time.Second {
		t.Errorf("stop took %s", took)
	}
	m, err := j.manifest(t, func(st checkpoint.Store) (*checkpoint.Manifest, error) { return st.Latest() })
	if err != nil || !m.Complete || m.Kind != checkpoint.KindFinal {
		t.Fatalf("after stop, latest checkpoint = %+v, %v; want a complete final one", m, err)
	}
	if m.Sources["datagen"].Summary == "seq=30000" {
		t.Fatalf("the daemon finished before it was stopped; the test did not exercise a stop mid-stream")
	}
	j.mustFinish(t)
	j.verify(t, j.expected(t))
}

func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%q not found in %s", old, path)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func startDaemon(t *testing.T, j *job) *execCmd {
	t.Helper()
	cmd := newCmd(sluiceRaceBin, "run", "-c", j.path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

func latestCheckpoint(t *testing.T, j *job) uint64 {
	t.Helper()
	m, err := j.manifest(t, func(st checkpoint.Store) (*checkpoint.Manifest, error) { return st.Latest() })
	if err != nil {
		return 0
	}
	return m.ID
}

// manifest reads one manifest from the job's store; the job must be stopped.
func (j *job) manifest(t *testing.T, get func(checkpoint.Store) (*checkpoint.Manifest, error)) (*checkpoint.Manifest, error) {
	t.Helper()
	st, err := checkpoint.OpenPebble(j.dir+"/state", "e2e", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return get(st)
}

// startRateLimitedDaemon starts a daemon on a 30,000-change job slowed to
// rate changes/s, and returns once it is mid-stream.
func startRateLimitedDaemon(t *testing.T, maxRecords int, rate int) (*job, *execCmd) {
	t.Helper()
	j := newJob(t, 30_000, maxRecords, "")
	rewrite(t, j.path, "    total: 30000\n", fmt.Sprintf("    total: 30000\n    rate: %d\n", rate))
	cmd := startDaemon(t, j)
	// The daemon answers savepoint requests once its control socket is
	// up; on a loaded machine that can take seconds, so wait for it rather
	// than for a fixed time.
	sock := filepath.Join(j.dir, "state", "control.sock")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon opened no control socket at %s in a minute", sock)
		}
	}
	time.Sleep(300 * time.Millisecond) // some records in flight
	return j, cmd
}

// Files of a checkpoint that is durable but not committed look like orphans
// to the lake. Maintenance must not remove them, however old they are, or
// recovery would commit references to missing files.
func TestMaintainKeepsFilesOfAnUncommittedCheckpoint(t *testing.T) {
	j := newJob(t, 20_000, 3_000, "")
	r := j.runOnce(t, "SLUICE_FAULT="+checkpoint.FaultAfterManifest+"@3")
	if !r.killed {
		t.Fatalf("fault did not fire: %v\n%s", r.err, tail(r.stderr, 20))
	}
	// Age every file of the lake past the orphan threshold.
	old := time.Now().Add(-3 * time.Hour)
	err := filepath.WalkDir(j.dir+"/lake/warehouse", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	m := j.run(t, sluiceBin, nil, nil, "maintain", "-c", j.path, "--orphans")
	if m.err != nil {
		t.Fatalf("maintain: %v\n%s", m.err, tail(m.stderr, 20))
	}
	if !strings.Contains(m.stderr, "skipping orphan removal") {
		t.Fatalf("maintain did not hold back orphan removal:\n%s", tail(m.stderr, 20))
	}
	j.mustFinish(t)
	j.verify(t, j.expected(t))
	// Once the checkpoint is committed, true orphans do go: a stray file.
	stray := j.dir + "/lake/warehouse/lake.db/dwd_orders/data/stray.parquet"
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(stray, old, old)
	m = j.run(t, sluiceBin, nil, nil, "maintain", "-c", j.path, "--orphans")
	if m.err != nil {
		t.Fatalf("maintain: %v\n%s", m.err, tail(m.stderr, 20))
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("a real orphan survived maintenance: %v\n%s", err, tail(m.stderr, 20))
	}
	j.verify(t, j.expected(t))
}

// A savepoint is taken from outside while the daemon runs, kept past
// retention, and a later run restored from it converges to the source.
func TestSavepointOnRequestAndRestore(t *testing.T) {
	j, cmd := startRateLimitedDaemon(t, 2_000, 15_000)
	sp := j.run(t, sluiceBin, nil, nil, "savepoint", "-c", j.path, "before-upgrade")
	if sp.err != nil || !strings.Contains(sp.stderr, "savepoint before-upgrade committed") {
		t.Fatalf("savepoint: %v\n%s", sp.err, tail(sp.stderr, 20))
	}
	dup := j.run(t, sluiceBin, nil, nil, "savepoint", "-c", j.path, "before-upgrade")
	if dup.err == nil || !strings.Contains(dup.stderr, "already exists") {
		t.Fatalf("a second savepoint of the same name: %v\n%s", dup.err, tail(dup.stderr, 20))
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	m, err := j.manifest(t, func(st checkpoint.Store) (*checkpoint.Manifest, error) { return st.Savepoint("before-upgrade") })
	if err != nil || !m.Complete || m.Kind != checkpoint.KindSavepoint {
		t.Fatalf("savepoint manifest %+v, %v", m, err)
	}
	// Finish from the savepoint: the upsert tables converge to the source.
	// (The changelog tables receive the changes after the savepoint again,
	// by design of a rewind, so only the upsert tables are compared.)
	r := j.run(t, sluiceRaceBin, nil, nil, "run", "--once", "-c", j.path, "--from-savepoint", "before-upgrade")
	if r.err != nil {
		t.Fatalf("restore: %v\n%s", r.err, tail(r.stderr, 20))
	}
	j.verifyTables(t, j.expected(t), false)
	if none := j.run(t, sluiceBin, nil, nil, "savepoint", "-c", j.path, "x"); none.err == nil || !strings.Contains(none.stderr, "no running job") {
		t.Fatalf("savepoint without a daemon: %v\n%s", none.err, tail(none.stderr, 10))
	}
	if d := j.run(t, sluiceBin, nil, nil, "savepoint", "-c", j.path, "--delete", "before-upgrade"); d.err != nil {
		t.Fatalf("delete savepoint: %v\n%s", d.err, tail(d.stderr, 10))
	}
	if _, err := j.manifest(t, func(st checkpoint.Store) (*checkpoint.Manifest, error) { return st.Savepoint("before-upgrade") }); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("deleted savepoint still stored: %v", err)
	}
}
