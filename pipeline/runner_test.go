package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
)

var testSchema = &Schema{Table: TableID{Namespace: "t", Name: "x"}, Columns: []Column{{Name: "v", Type: TypeInt64}}, Key: []int{0}}

// countSource emits values base+0, base+1, ... in batches of 3, up to n
// values when bounded, and resumes from its snapshot.
type countSource struct {
	name    string
	base    int64
	n       int64
	next    int64
	mu      sync.Mutex
	acked   []uint64
	reads   int
	gate    chan struct{} // if set, Read waits on it (to hold a source back)
	bounded bool
}

func (s *countSource) Name() string { return s.name }
func (s *countSource) Open(_ context.Context, o OpenOptions) error {
	s.bounded = o.AvailableNow || s.n > 0
	if o.State != nil {
		return json.Unmarshal(o.State, &s.next)
	}
	return nil
}
func (s *countSource) Read(ctx context.Context) (*Batch, error) {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
			return nil, nil
		}
	}
	if s.n > 0 && s.next >= s.n {
		return nil, ErrEndOfInput
	}
	b := &Batch{Schema: testSchema}
	for i := 0; i < 3 && (s.n == 0 || s.next < s.n); i++ {
		b.Records = append(b.Records, Record{Op: OpInsert, After: []any{s.base + s.next}, Position: fmt.Sprint(s.next)})
		s.next++
	}
	return b, nil
}
func (s *countSource) Snapshot() (checkpoint.Position, error) {
	b, _ := json.Marshal(s.next)
	return checkpoint.Position{State: b, Summary: fmt.Sprint("next=", s.next)}, nil
}
func (s *countSource) Ack(_ context.Context, id uint64) error {
	s.mu.Lock()
	s.acked = append(s.acked, id)
	s.mu.Unlock()
	return nil
}
func (s *countSource) Close() error { return nil }

// memSink is a two-phase sink over a map; committed checkpoints are
// recorded so tests can check idempotence.
type memSink struct {
	mu        sync.Mutex
	buf       []int64
	committed map[uint64][]int64
	rows      []int64
	raw       int    // records written to the raw layer
	failAt    uint64 // Commit of this id fails once
	opened    bool
}

func newMemSink() *memSink { return &memSink{committed: map[uint64][]int64{}} }

func (m *memSink) Open(context.Context) error { m.opened = true; return nil }
func (m *memSink) Write(_ context.Context, b *Batch) error {
	if b.Layer == LayerRaw {
		m.raw += len(b.Records)
		return nil
	}
	for _, r := range b.Records {
		m.buf = append(m.buf, r.After[0].(int64))
	}
	return nil
}
func (m *memSink) Prepare(_ context.Context, id uint64) ([]byte, error) {
	b, err := json.Marshal(m.buf)
	m.buf = nil
	return b, err
}
func (m *memSink) Commit(_ context.Context, c Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.opened {
		return errors.New("commit before open")
	}
	if c.ID == m.failAt {
		m.failAt = 0
		return errors.New("injected commit failure")
	}
	if _, ok := m.committed[c.ID]; ok {
		return nil
	}
	var vals []int64
	if err := json.Unmarshal(c.Prepared, &vals); err != nil {
		return err
	}
	m.committed[c.ID] = vals
	m.rows = append(m.rows, vals...)
	return nil
}
func (m *memSink) Close() error { m.opened = false; return nil }

// countOp passes batches through and counts records in its state.
type countOp struct{ seen int64 }

func (o *countOp) Name() string { return "count" }
func (o *countOp) Open(_ context.Context, st []byte) error {
	if st != nil {
		n, err := strconv.ParseInt(string(st), 10, 64)
		o.seen = n
		return err
	}
	return nil
}
func (o *countOp) Process(_ context.Context, b *Batch, emit func(*Batch) error) error {
	o.seen += int64(len(b.Records))
	return emit(b)
}
func (o *countOp) Snapshot(context.Context, uint64) ([]byte, error) {
	return []byte(strconv.FormatInt(o.seen, 10)), nil
}
func (o *countOp) Close() error { return nil }

func openStore(t *testing.T, dir string) checkpoint.Store {
	t.Helper()
	st, err := checkpoint.OpenPebble(dir, "job", 3)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRunnerBoundedTwoSources(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	a := &countSource{name: "a", n: 1000}
	b := &countSource{name: "b", base: 1_000_000, n: 700}
	sink := newMemSink()
	op := &countOp{}
	r, err := NewRunner(RunnerConfig{Job: "job", Sources: []Source{a, b}, Operators: []Operator{op}, Sink: sink, Store: st,
		Policy: checkpoint.Config{MaxRecords: 100, Interval: time.Hour}, AvailableNow: true, QueueDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.rows); got != 1700 {
		t.Fatalf("sink committed %d rows, want 1700", got)
	}
	// With an operator in the chain, the raw layer sees every record too.
	if sink.raw != 1700 {
		t.Fatalf("raw layer got %d records, want 1700", sink.raw)
	}
	seen := map[int64]bool{}
	for _, v := range sink.rows {
		if seen[v] {
			t.Fatalf("value %d committed twice", v)
		}
		seen[v] = true
	}
	if len(sink.committed) < 10 {
		t.Errorf("only %d checkpoints for 1700 records at max_records 100", len(sink.committed))
	}
	m, err := st.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.Kind != checkpoint.KindFinal || string(m.Operators["count"]) != "1700" {
		t.Errorf("final manifest = %+v", m)
	}
	if m.Sources["a"].Summary != "next=1000" || m.Sources["b"].Summary != "next=700" {
		t.Errorf("final positions = %v", m.Summaries())
	}
	if len(a.acked) != len(sink.committed) {
		t.Errorf("source a acked %d checkpoints, %d were committed", len(a.acked), len(sink.committed))
	}
}

// A checkpoint's cut must be consistent: every record before a source's
// barrier is in the checkpoint, none after. With one source held back, the
// other must not run ahead into the next checkpoint's data.
func TestRunnerAlignmentIsConsistent(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	a := &countSource{name: "a"} // unbounded
	gate := make(chan struct{})
	b := &countSource{name: "b", base: 1_000_000, gate: gate}
	sink := newMemSink()
	r, err := NewRunner(RunnerConfig{Job: "job", Sources: []Source{a, b}, Sink: sink, Store: st,
		Policy: checkpoint.Config{MaxRecords: 50, Interval: time.Hour}, QueueDepth: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go func() {
		for i := 0; i < 200; i++ {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	deadline := time.After(20 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.committed)
		sink.mu.Unlock()
		if n >= 5 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("fewer than 5 checkpoints in 20s")
		case err := <-done:
			t.Fatalf("runner returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every committed checkpoint holds, per source, a contiguous range that
	// starts where the previous one ended: nothing skipped, nothing twice.
	m, _ := st.Latest()
	var nextA, nextB int64
	for id := uint64(1); id <= m.ID; id++ {
		vals, ok := sink.committed[id]
		if !ok {
			continue
		}
		for _, v := range vals {
			if v >= 1_000_000 {
				if v-1_000_000 != nextB {
					t.Fatalf("checkpoint %d: b value %d, want %d", id, v-1_000_000, nextB)
				}
				nextB++
			} else {
				if v != nextA {
					t.Fatalf("checkpoint %d: a value %d, want %d", id, v, nextA)
				}
				nextA++
			}
		}
	}
	var fa, fb int64
	_ = json.Unmarshal(m.Sources["a"].State, &fa)
	_ = json.Unmarshal(m.Sources["b"].State, &fb)
	if fa != nextA || fb != nextB {
		t.Errorf("final positions a=%d b=%d, committed up to a=%d b=%d", fa, fb, nextA, nextB)
	}
}

// A crash after the manifest became durable but before the commit: the
// next run must commit it from the manifest, then resume after it.
func TestRunnerRecoversDurableCheckpoint(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	sink := newMemSink()
	sink.failAt = 1
	a := &countSource{name: "a", n: 30}
	r, _ := NewRunner(RunnerConfig{Job: "job", Sources: []Source{a}, Sink: sink, Store: st,
		Policy: checkpoint.Config{MaxRecords: 10, Interval: time.Hour}, AvailableNow: true})
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("injected commit failure did not fail the run")
	}
	m, _ := st.Latest()
	if m.ID != 1 || m.Complete {
		t.Fatalf("latest manifest %d complete=%v, want 1 incomplete", m.ID, m.Complete)
	}
	// Restart: same sink state (the lake), fresh source object.
	a2 := &countSource{name: "a", n: 30}
	r2, _ := NewRunner(RunnerConfig{Job: "job", Sources: []Source{a2}, Sink: sink, Store: st,
		Policy: checkpoint.Config{MaxRecords: 10, Interval: time.Hour}, AvailableNow: true})
	if err := r2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if len(sink.rows) != 30 {
		t.Fatalf("committed %d rows, want 30 exactly once: %v", len(sink.rows), sink.rows)
	}
	for i, v := range sink.rows {
		if v != int64(i) {
			t.Fatalf("row %d = %d", i, v)
		}
	}
	if len(a2.acked) == 0 || a2.acked[0] != 1 {
		t.Errorf("restored source acks = %v, want the recovered checkpoint 1 first", a2.acked)
	}
}

func TestRunnerSavepointAndRestore(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	a := &countSource{name: "a"}
	sink := newMemSink()
	r, _ := NewRunner(RunnerConfig{Job: "job", Sources: []Source{a}, Sink: sink, Store: st,
		Policy: checkpoint.Config{Interval: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	var err error
	for i := 0; i < 50; i++ {
		if err = r.Savepoint(ctx, "before-upgrade"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sp, err := st.Savepoint("before-upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Kind != checkpoint.KindSavepoint || !sp.Complete {
		t.Fatalf("savepoint manifest %+v", sp)
	}
	latest, _ := st.Latest()
	if latest.ID <= sp.ID || latest.Kind != checkpoint.KindFinal {
		t.Fatalf("stop did not take a final checkpoint after the savepoint: latest %d %s", latest.ID, latest.Kind)
	}
	// Restoring the savepoint resumes the source from its position there.
	b := &countSource{name: "a", n: 1} // n small: bounded, ends at once past n
	r2, _ := NewRunner(RunnerConfig{Job: "job", Sources: []Source{b}, Sink: newMemSink(), Store: st,
		Policy: checkpoint.Config{Interval: time.Hour}, Restore: "before-upgrade", AvailableNow: true})
	if err := r2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want int64
	_ = json.Unmarshal(sp.Sources["a"].State, &want)
	if b.next != want {
		t.Errorf("restored source at %d, want savepoint position %d", b.next, want)
	}
}

// The last checkpoint of a bounded run is final, also when the last
// source ends while a periodic checkpoint it triggered is still pending
// (the count reaches max_records with the last batch). Which of the two
// comes first is a race, so the run is repeated.
func TestRunnerLastCheckpointIsFinal(t *testing.T) {
	periodic := 0
	for i := 0; i < 200; i++ {
		st := openStore(t, t.TempDir())
		src := &countSource{name: "a", n: 99}
		r, err := NewRunner(RunnerConfig{Job: "job", Sources: []Source{src}, Sink: newMemSink(), Store: st,
			Policy: checkpoint.Config{MaxRecords: 99, Interval: time.Hour}, AvailableNow: true, QueueDepth: 4})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		m, err := st.Latest()
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != checkpoint.KindFinal || m.Sources["a"].Summary != "next=99" {
			periodic++
			t.Errorf("run %d: last manifest is %s at %s", i, m.Kind, m.Sources["a"].Summary)
		}
		st.Close()
		if periodic > 3 {
			t.FailNow()
		}
	}
}
