// Package e2e runs the sluice binary as a real process against the embedded
// lake and compares the Iceberg tables with what the source produced, row by
// row, after clean runs, crashes at every protocol step, and random kills.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/datagen"
	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// sluiceBin is a plain build, for the crash tests whose subject is
// durability; sluiceRaceBin carries the race detector when the tests run
// with -race, for the runs whose subject is concurrency (clean runs, stop).
var sluiceBin, sluiceRaceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	sluiceRaceBin = sluiceBin
	builds := [][]string{{"build", "-o", sluiceBin, "../cmd/sluice"}}
	if raceBuild {
		sluiceRaceBin = filepath.Join(dir, "sluice-race")
		builds = append(builds, []string{"build", "-race", "-o", sluiceRaceBin, "../cmd/sluice"})
	}
	for _, args := range builds {
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build sluice:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	testinfra.StopAll()
	os.RemoveAll(dir)
	os.Exit(code)
}

// job is one test job: a datagen source with two tables, both written as an
// append (ods) and an upsert (dwd) table, in a private lake.
type job struct {
	dir        string
	path       string
	gen        datagen.Config
	sink       lake.Config
	maxRecords int
}

func newJob(t *testing.T, total int64, maxRecords int, extra string) *job {
	t.Helper()
	dir := t.TempDir()
	j := &job{dir: dir, maxRecords: maxRecords}
	j.gen = datagen.Config{
		Seed:      7,
		Total:     total,
		BatchSize: 500,
		Tables: []datagen.TableConfig{
			{Name: "shop.orders", Preset: "orders", Keys: 3000, Mix: datagen.MixConfig{Update: 0.6, Delete: 0.2}},
			{Name: "shop.items", Preset: "bench10", Keys: 1000, Mix: datagen.MixConfig{Update: 0.5, Delete: 0.3}, Weight: 0.5},
		},
	}
	yaml := fmt.Sprintf(`job: e2e
source:
  datagen:
    seed: %d
    total: %d
    batch_size: %d
    tables:
      - {name: shop.orders, preset: orders, keys: 3000, mix: {update: 0.6, delete: 0.2}}
      - {name: shop.items, preset: bench10, keys: 1000, mix: {update: 0.5, delete: 0.3}, weight: 0.5}
sink:
  catalog: {type: sql, uri: "sqlite://%[4]s/lake/catalog.db"}
  warehouse: "file://%[4]s/lake/warehouse"
  namespace: lake
  tables:
    - match: "shop.*"
      ods: "ods_{table}"
      dwd: "dwd_{table}"
      partition: ["bucket(4, id)"]
checkpoint:
  dir: %[4]s/state
  interval: 1s
  max_records: %[5]d
log:
  format: json
%[6]s`, j.gen.Seed, total, j.gen.BatchSize, dir, maxRecords, extra)
	j.path = filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(j.path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	j.sink = *lakeAt(dir)
	return j
}

type result struct {
	err    error
	killed bool // ended by SIGKILL (an injected fault or the test)
	stderr string
}

// killPlan kills the process once afterCheckpoints checkpoints completed
// (read from its JSON log) and then delay passed.
type killPlan struct {
	afterCheckpoints int
	delay            time.Duration
	// maxWait kills the process after this long in any case (0: never),
	// for daemons that may go idle before enough checkpoints happened.
	maxWait time.Duration
}

// run starts a sluice binary with args and env, killing it with SIGKILL as
// kill says (nil: never).
func (j *job) run(t *testing.T, bin string, env []string, kill *killPlan, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out syncBuffer
	cmd.Stdout = &out
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill != nil && kill.maxWait > 0 {
		timer := time.AfterFunc(kill.maxWait, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if kill != nil && strings.Contains(line, `"msg":"checkpoint complete"`) {
				seen++
			}
			if kill != nil && seen >= kill.afterCheckpoints {
				d := kill.delay
				kill = nil
				time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-scanned
	res := result{err: err, stderr: out.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
		}
	}
	return res
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (j *job) runOnce(t *testing.T, env ...string) result {
	return j.run(t, sluiceBin, env, nil, "run", "--once", "-c", j.path)
}

// mustFinish runs the job to its end with the race-built binary and fails
// the test unless it exits 0.
func (j *job) mustFinish(t *testing.T) {
	t.Helper()
	if r := j.run(t, sluiceRaceBin, nil, nil, "run", "--once", "-c", j.path); r.err != nil {
		t.Fatalf("run --once: %v\n%s", r.err, tail(r.stderr, 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// expected replays the generator: the final state per table (key -> row)
// and the set of change positions per table.
type expectation struct {
	schemas map[string]*pipeline.Schema
	state   map[string]map[string][]any
	changes map[string]map[string]pipeline.Op
}

func (j *job) expected(t *testing.T) expectation {
	t.Helper()
	cfg := j.gen
	cfg.Defaults()
	e := expectation{schemas: map[string]*pipeline.Schema{}, state: map[string]map[string][]any{}, changes: map[string]map[string]pipeline.Op{}}
	err := cfg.Replay(cfg.Total, func(s *pipeline.Schema, r pipeline.Record) {
		name := s.Table.Name
		if e.state[name] == nil {
			e.schemas[name] = s
			e.state[name] = map[string][]any{}
			e.changes[name] = map[string]pipeline.Op{}
		}
		k := keyOf(s, r.Row())
		if r.Op == pipeline.OpDelete {
			delete(e.state[name], k)
		} else {
			e.state[name][k] = r.After
		}
		if _, dup := e.changes[name][r.Position]; dup {
			t.Fatalf("generator repeated position %s", r.Position)
		}
		e.changes[name][r.Position] = r.Op
	})
	if err != nil {
		t.Fatal(err)
	}
	// Guard against a vacuous comparison: the workload must have produced
	// rows, updates and deletes in every table.
	for name, ch := range e.changes {
		ops := map[pipeline.Op]int{}
		for _, op := range ch {
			ops[op]++
		}
		if len(e.state[name]) == 0 || ops[pipeline.OpInsert] == 0 || ops[pipeline.OpUpdate] == 0 || ops[pipeline.OpDelete] == 0 {
			t.Fatalf("table %s: workload too thin to prove anything: %d rows, ops %v", name, len(e.state[name]), ops)
		}
	}
	if len(e.state) != len(cfg.Tables) {
		t.Fatalf("workload touched %d of %d tables", len(e.state), len(cfg.Tables))
	}
	return e
}

func keyOf(s *pipeline.Schema, row []any) string {
	var parts []string
	for _, k := range s.Key {
		parts = append(parts, lake.FormatValue(row[k]))
	}
	return strings.Join(parts, "|")
}

// verify compares every table with the expectation: the upsert table equals
// the final state value for value, the append table holds every change
// exactly once with the right op.
func (j *job) verify(t *testing.T, e expectation) {
	t.Helper()
	j.verifyTables(t, e, true)
}

// verifyTables checks the upsert tables, and the changelog tables too when
// changelog is set.
func (j *job) verifyTables(t *testing.T, e expectation, changelog bool) {
	t.Helper()
	ctx := context.Background()
	for name, want := range e.state {
		s := e.schemas[name]
		got := map[string][]any{}
		var cols []string
		err := lake.ScanTable(ctx, &j.sink, "lake.dwd_"+name, 0, func(c []string, row []any) error {
			cols = c
			byName := reorder(s, c, row)
			k := keyOf(s, byName)
			if _, dup := got[k]; dup {
				return fmt.Errorf("key %s appears twice", k)
			}
			got[k] = byName
			return nil
		})
		if err != nil {
			t.Fatalf("dwd_%s: %v", name, err)
		}
		_ = cols
		if len(got) != len(want) {
			t.Errorf("dwd_%s has %d rows, the source state has %d", name, len(got), len(want))
		}
		mismatches := 0
		for _, k := range sortedKeys(want) {
			g, ok := got[k]
			if !ok {
				mismatches++
				if mismatches <= 5 {
					t.Errorf("dwd_%s: key %s missing", name, k)
				}
				continue
			}
			for c := range s.Columns {
				if !equalValue(g[c], want[k][c]) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("dwd_%s key %s column %s = %s, want %s", name, k, s.Columns[c].Name, lake.FormatValue(g[c]), lake.FormatValue(want[k][c]))
					}
					break
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				mismatches++
				if mismatches <= 5 {
					t.Errorf("dwd_%s: key %s should not exist (deleted or never inserted)", name, k)
				}
			}
		}
		if mismatches > 0 {
			t.Errorf("dwd_%s: %d mismatches", name, mismatches)
		}

		if !changelog {
			continue
		}
		changes := e.changes[name]
		seen := map[string]int{}
		err = lake.ScanTable(ctx, &j.sink, "lake.ods_"+name, 0, func(c []string, row []any) error {
			var pos, op string
			for i, n := range c {
				switch n {
				case "_pos":
					pos, _ = row[i].(string)
				case "_op":
					op, _ = row[i].(string)
				}
			}
			seen[pos]++
			if want, ok := changes[pos]; ok && want.String() != op {
				return fmt.Errorf("change %s has op %s, want %s", pos, op, want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ods_%s: %v", name, err)
		}
		dups, missing, extra := 0, 0, 0
		for pos, n := range seen {
			if _, ok := changes[pos]; !ok {
				extra++
			} else if n > 1 {
				dups++
			}
		}
		for pos := range changes {
			if seen[pos] == 0 {
				missing++
			}
		}
		if dups+missing+extra > 0 {
			t.Errorf("ods_%s: %d changes duplicated, %d missing, %d unknown (of %d)", name, dups, missing, extra, len(changes))
		}
	}
}

// reorder maps a scanned row (table column order) to the source schema order.
func reorder(s *pipeline.Schema, cols []string, row []any) []any {
	out := make([]any, len(s.Columns))
	for i, c := range cols {
		if idx := s.ColumnIndex(c); idx >= 0 {
			out[idx] = row[i]
		}
	}
	return out
}

func equalValue(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

func sortedKeys(m map[string][]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// liveDaemon is a race-built `sluice run` daemon whose log the test reads.
type liveDaemon struct {
	cmd *exec.Cmd
	out syncBuffer
}

// startLiveDaemon starts a daemon of the job file; it is killed when the
// test ends if it is still running.
func startLiveDaemon(t *testing.T, jobPath string) *liveDaemon {
	t.Helper()
	d := &liveDaemon{cmd: exec.Command(sluiceRaceBin, "run", "-c", jobPath)}
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	return d
}

// stopAtGTID waits until a checkpoint of the daemon covers the MySQL
// source's GTID position final, then stops it with SIGINT (a final
// checkpoint, exit 0) and returns its log.
func (d *liveDaemon) stopAtGTID(t *testing.T, final string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(d.out.String(), `"mysql":"gtid=`+final+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("sluice did not reach %s in %s:\n%s", final, within, tail(d.out.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon: %v\n%s", err, tail(d.out.String(), 30))
	}
	return d.out.String()
}

// lakeAt is the lake every test job file writes: a SQLite catalog and a
// file warehouse under dir/lake, namespace "lake".
func lakeAt(dir string) *lake.Config {
	c := &lake.Config{
		Catalog:   lake.CatalogConfig{Type: "sql", URI: "sqlite://" + dir + "/lake/catalog.db"},
		Warehouse: "file://" + dir + "/lake/warehouse",
		Namespace: "lake",
	}
	c.Defaults()
	return c
}
