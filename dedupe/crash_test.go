package dedupe

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

// workload is a deterministic stream of batches over two tables that
// exercises every kind of state change: inserts of new (increasing) ids,
// updates of old keys, no-op updates, deletes, replays, stale and
// unsequenced changes, key moves.
type workload struct {
	rng     *rand.Rand
	seq     uint64
	nextID  int64
	past    []pipeline.Record
	schemas []*pipeline.Schema
}

type batchIn struct {
	schema *pipeline.Schema
	recs   []pipeline.Record
}

func newWorkload(seed int64) *workload {
	items := ordersSchema()
	items.Table.Name = "items"
	return &workload{rng: rand.New(rand.NewSource(seed)), schemas: []*pipeline.Schema{ordersSchema(), items}}
}

func (w *workload) segment(batches, size int) []batchIn {
	var out []batchIn
	names := []string{"a", "b", "c"}
	for range batches {
		s := w.schemas[w.rng.Intn(len(w.schemas))]
		recs := make([]pipeline.Record, 0, size)
		for range size {
			w.seq++
			old := int64(0)
			if w.nextID > 0 {
				old = w.rng.Int63n(w.nextID)
			}
			name := names[w.rng.Intn(len(names))]
			var r pipeline.Record
			switch p := w.rng.Intn(100); {
			case p < 35 || w.nextID == 0:
				w.nextID++
				r = ins(w.seq, w.nextID, name)
			case p < 65:
				r = upd(w.seq, old, "?", name)
			case p < 75:
				r = del(w.seq, old, "?")
			case p < 85 && len(w.past) > 0:
				r = w.past[w.rng.Intn(len(w.past))] // replay
			case p < 90:
				r = upd(w.seq-uint64(w.rng.Intn(50)), old, "?", name) // maybe stale
			case p < 95:
				r = upd(0, old, "?", name) // unsequenced
			case p < 97:
				r = pipeline.Record{Op: pipeline.OpUpdate, Seq: w.seq, Before: row(old, "?"), After: row(old+1, name)}
			default:
				r = ins(w.seq, old, name) // re-insert (maybe after delete)
			}
			recs = append(recs, r)
			w.past = append(w.past, r)
		}
		out = append(out, batchIn{schema: s, recs: recs})
	}
	return out
}

// feed processes a segment and renders what passed.
func feed(t *testing.T, o *Operator, seg []batchIn) string {
	t.Helper()
	out := ""
	for i, b := range seg {
		got := run(t, o, b.schema, b.recs...)
		out += fmt.Sprintf("batch %d %s:\n%s", i, b.schema.Table, render(got))
	}
	return out
}

type crashMode int

const (
	crashSyncedOnly crashMode = iota // machine crash: only synced data survives
	crashProcess                     // kill -9: everything written survives
	crashClose                       // clean Close without Snapshot
)

func (m crashMode) String() string {
	return [...]string{"synced-only", "process", "close"}[m]
}

// crash ends o as mode says and returns the file system a restart sees.
func crash(t *testing.T, o *Operator, fs *vfs.MemFS, mode crashMode) *vfs.MemFS {
	t.Helper()
	switch mode {
	case crashClose:
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		return fs
	case crashProcess:
		c := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: randv2.New(randv2.NewPCG(1, 1))})
		t.Cleanup(func() { _ = o.Close() }) // the abandoned handle
		return c
	default:
		c := fs.CrashClone(vfs.CrashCloneCfg{})
		t.Cleanup(func() { _ = o.Close() })
		return c
	}
}

// TestCrashRestore is the protocol's central promise: after Snapshot(1),
// more records, Snapshot(2), more records and a crash, a restart from the
// state of checkpoint 1 (manifest 2 never became durable) or of 2 replays
// the records after it with exactly the output of the first run.
func TestCrashRestore(t *testing.T) {
	for _, mode := range []crashMode{crashSyncedOnly, crashProcess, crashClose} {
		for _, target := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/restore-%d", mode, target), func(t *testing.T) {
				w := newWorkload(int64(target))
				a, b, c := w.segment(20, 64), w.segment(20, 64), w.segment(20, 64)
				fs := vfs.NewCrashableMem()
				cfg := memCfg(defaultRules()...)
				o := newOp(t, cfg, fs, nil)
				feed(t, o, a)
				st1 := snapshot(t, o, 1)
				// Push the next writes partly into sstables, partly into
				// the memtable.
				if err := o.db.Flush(); err != nil {
					t.Fatal(err)
				}
				outB := feed(t, o, b)
				st2 := snapshot(t, o, 2)
				outC := feed(t, o, c)
				fs2 := crash(t, o, fs, mode)

				state, replay, want := st1, [][]batchIn{b, c}, []string{outB, outC}
				if target == 2 {
					state, replay, want = st2, [][]batchIn{c}, []string{outC}
				}
				o2 := newOp(t, cfg, fs2, state)
				defer o2.Close()
				for i, seg := range replay {
					if got := feed(t, o2, seg); got != want[i] {
						t.Fatalf("replayed segment %d differs from the first run:\n--- got\n%s\n--- want\n%s", i, got, want[i])
					}
				}
				if s := o2.Stats(); s.Resets != 0 {
					t.Fatalf("restore fell back to empty state: %+v", s)
				}
			})
		}
	}
}

// TestCrashTwice restores, works on, crashes again and restores again; the
// lost branch's checkpoint must never be mistaken for a new one.
func TestCrashTwice(t *testing.T) {
	w := newWorkload(7)
	a, b, c, d := w.segment(10, 64), w.segment(10, 64), w.segment(10, 64), w.segment(10, 64)
	cfg := memCfg(defaultRules()...)
	fs := vfs.NewCrashableMem()
	o := newOp(t, cfg, fs, nil)
	feed(t, o, a)
	st1 := snapshot(t, o, 1)
	outB := feed(t, o, b)
	st2 := snapshot(t, o, 2) // manifest 2 is lost below
	firstC := feed(t, o, c)
	fs = crash(t, o, fs, crashSyncedOnly)

	o = newOp(t, cfg, fs, st1)
	if got := feed(t, o, b); got != outB {
		t.Fatalf("first restore: replay differs")
	}
	snapshot(t, o, 3)
	if got := feed(t, o, c); got != firstC {
		t.Fatalf("after the first restore: output differs from the first run")
	}
	st4 := snapshot(t, o, 4)
	outD := feed(t, o, d)
	fs = crash(t, o, fs, crashProcess)

	o = newOp(t, cfg, fs, st4)
	if got := feed(t, o, d); got != outD {
		t.Fatalf("second restore: replay differs")
	}
	// The lost branch's checkpoint 2 is gone: asking for it resets
	// instead of restoring something else.
	fs = crash(t, o, fs, crashClose)
	o = newOp(t, cfg, fs, st2)
	defer o.Close()
	if s := o.Stats(); s.Resets != 1 {
		t.Fatalf("restore of a lost checkpoint did not reset: %+v", s)
	}
}

// TestOpenNilStartsEmpty: a fresh start ignores whatever an earlier
// (crashed) run left in the directory.
func TestOpenNilStartsEmpty(t *testing.T) {
	w := newWorkload(3)
	a, b := w.segment(10, 64), w.segment(10, 64)
	cfg := memCfg(defaultRules()...)
	fs := vfs.NewCrashableMem()
	o := newOp(t, cfg, fs, nil)
	outA := feed(t, o, a)
	snapshot(t, o, 1)
	feed(t, o, b)
	fs = crash(t, o, fs, crashProcess)
	o = newOp(t, cfg, fs, nil)
	defer o.Close()
	if got := feed(t, o, a); got != outA {
		t.Fatalf("fresh start on a dirty directory did not start empty:\n%s\n---\n%s", got, outA)
	}
}

// TestRealDiskCloseAndReopen runs the crash protocol on the real file
// system: Close without Snapshot, reopen from checkpoint 1, replay.
func TestRealDiskCloseAndReopen(t *testing.T) {
	w := newWorkload(11)
	a, b, c := w.segment(10, 64), w.segment(10, 64), w.segment(10, 64)
	cfg := diskCfg(t, defaultRules()...)
	o := newOp(t, cfg, nil, nil)
	feed(t, o, a)
	st1 := snapshot(t, o, 1)
	outB := feed(t, o, b)
	snapshot(t, o, 2)
	outC := feed(t, o, c)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = newOp(t, cfg, nil, st1)
	if got := feed(t, o, b) + feed(t, o, c); got != outB+outC {
		t.Fatal("replay after reopen differs")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// Open(nil) on the same directory starts empty.
	o = newOp(t, cfg, nil, nil)
	defer o.Close()
	if n := countState(t, o); n != 0 {
		t.Fatalf("fresh start kept %d entries", n)
	}
}

// TestRestoreFallbacks: states the directory cannot provide start empty
// (and say so) rather than restore something else.
func TestRestoreFallbacks(t *testing.T) {
	cfg := memCfg(defaultRules()...)
	s := ordersSchema()
	fs := vfs.NewCrashableMem()
	o := newOp(t, cfg, fs, nil)
	run(t, o, s, ins(1, 1, "a"))
	st1 := snapshot(t, o, 1)
	run(t, o, s, ins(2, 2, "a"))
	snapshot(t, o, 2)
	run(t, o, s, ins(3, 3, "a"))
	st3 := snapshot(t, o, 3) // removes checkpoint 1
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() ([]byte, vfs.FS){
		"epoch too old": func() ([]byte, vfs.FS) { return st1, fs },
		"other lineage": func() ([]byte, vfs.FS) {
			var ss snapState
			_ = json.Unmarshal(st3, &ss)
			ss.DB = "0123456789abcdef"
			b, _ := json.Marshal(ss)
			return b, fs
		},
		"other nonce": func() ([]byte, vfs.FS) {
			var ss snapState
			_ = json.Unmarshal(st3, &ss)
			ss.Nonce = "0123456789abcdef"
			b, _ := json.Marshal(ss)
			return b, fs
		},
		"missing directory": func() ([]byte, vfs.FS) { return st3, vfs.NewMem() },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			st, fs := mk()
			o := newOp(t, cfg, fs, st)
			defer o.Close()
			if o.Stats().Resets != 1 {
				t.Fatal("no reset")
			}
			if out := run(t, o, s, ins(1, 1, "a")); len(out) != 1 {
				t.Fatal("state survived the reset")
			}
		})
	}
	// The reset is logged as a warning naming the reason.
	core, logs := observer.New(zap.WarnLevel)
	o3, err := New(cfg, zap.New(core), withFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	if err := o3.Open(context.Background(), st3); err != nil {
		t.Fatal(err)
	}
	_ = o3.Close()
	if logs.Len() != 1 || !strings.Contains(logs.All()[0].ContextMap()["reason"].(string), "missing") {
		t.Fatalf("warnings: %+v", logs.All())
	}
	o2, err := New(cfg, nil, withFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"{", `{"db":"x"}`, `{"epoch":3}`, `{"db":"x","epoch":3}`} {
		if err := o2.Open(context.Background(), []byte(bad)); err == nil {
			t.Fatalf("state %s accepted", bad)
		}
	}
}

// TestRestoreIsRepeatable: a restore leaves its checkpoint untouched, so
// that a crash of the restored run can restore it again; leftovers of a
// crashed Snapshot or restore do not matter.
func TestRestoreIsRepeatable(t *testing.T) {
	w := newWorkload(5)
	a, b, c := w.segment(10, 64), w.segment(20, 64), w.segment(10, 64)
	cfg := memCfg(defaultRules()...)
	fs := vfs.NewCrashableMem()
	o := newOp(t, cfg, fs, nil)
	feed(t, o, a)
	st1 := snapshot(t, o, 1)
	outB := feed(t, o, b)
	fs = crash(t, o, fs, crashSyncedOnly)
	for i := range 3 {
		// Garbage where a crashed Snapshot or restore may leave some.
		for _, dir := range []string{tmpCkpt, liveDir} {
			f, err := fs.Create(fs.PathJoin(cfg.Dir, dir, "000999.sst"), vfs.WriteCategoryUnspecified)
			if err == nil {
				_, _ = f.Write([]byte("garbage"))
				_ = f.Close()
			}
		}
		o = newOp(t, cfg, fs, st1)
		if got := feed(t, o, b); got != outB {
			t.Fatalf("restore %d: replay differs", i)
		}
		feed(t, o, c) // more writes that the next restore must not see
		if err := o.db.Flush(); err != nil {
			t.Fatal(err)
		}
		fs = crash(t, o, fs, crashMode(i))
	}
}

// TestCheckpointRetention: only the newest checkpoint and the one before it
// are kept; a restore that comes back to an older one (its successor's
// manifest was lost) keeps it until the next Snapshot replaced it.
func TestCheckpointRetention(t *testing.T) {
	cfg := memCfg(defaultRules()...)
	fs := vfs.NewMem()
	o := newOp(t, cfg, fs, nil)
	s := ordersSchema()
	var states [][]byte
	for id := uint64(1); id <= 4; id++ {
		run(t, o, s, ins(id, int64(id), "a"))
		states = append(states, snapshot(t, o, id))
	}
	ids, _ := checkpoint.CheckpointIDs(fs, cfg.Dir, ckptPrefix)
	if fmt.Sprint(ids) != "[3 4]" {
		t.Fatalf("checkpoints %v", ids)
	}
	_ = o.Close()
	o = newOp(t, cfg, fs, states[2]) // 3: manifest 4 was lost
	run(t, o, s, ins(9, 9, "a"))
	snapshot(t, o, 4) // the runner reuses id 4
	ids, _ = checkpoint.CheckpointIDs(fs, cfg.Dir, ckptPrefix)
	if fmt.Sprint(ids) != "[3 4]" {
		t.Fatalf("checkpoints after restore %v", ids)
	}
	_ = o.Close()
	// The lost branch's state 4 names a checkpoint id that now holds
	// another state: it must not be restored.
	o = newOp(t, cfg, fs, states[3])
	defer o.Close()
	if o.Stats().Resets != 1 {
		t.Fatal("state of a lost branch restored from a reused checkpoint id")
	}
}

// TestRandomCrashes runs many epochs with flushes, crashes at random points
// and restores to the last or the one before last checkpoint; every
// replay must match the uninterrupted run exactly.
func TestRandomCrashes(t *testing.T) {
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(round)))
			w := newWorkload(int64(100 + round))
			segs := make([][]batchIn, 8)
			for i := range segs {
				segs[i] = w.segment(1+rng.Intn(6), 1+rng.Intn(200))
			}
			cfg := memCfg(defaultRules()...)

			// The reference: one uninterrupted run.
			ref := newOp(t, cfg, vfs.NewMem(), nil)
			want := make([]string, len(segs))
			for i, s := range segs {
				want[i] = feed(t, ref, s)
			}
			_ = ref.Close()

			fs := vfs.NewCrashableMem()
			o := newOp(t, cfg, fs, nil)
			// states[i] is the state after segment i-1 (states[0]: fresh).
			states := map[int][]byte{0: nil}
			durable := 0 // newest checkpoint whose manifest is durable
			id := uint64(0)
			for i := 0; i < len(segs); {
				if got := feed(t, o, segs[i]); got != want[i] {
					t.Fatalf("segment %d differs from the reference run", i)
				}
				i++
				if rng.Intn(3) == 0 {
					if err := o.db.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				lost := false
				if rng.Intn(2) == 0 {
					id++
					st := snapshot(t, o, id)
					// Sometimes the manifest does not make it: the run
					// then dies before doing anything else.
					if lost = rng.Intn(3) == 0; !lost {
						durable = i
						states[i] = st
					}
				}
				if lost || rng.Intn(4) == 0 {
					// Crash and restore the newest durable checkpoint; its
					// segments are fed again.
					fs = crash(t, o, fs, crashMode(rng.Intn(3)))
					o = newOp(t, cfg, fs, states[durable])
					if o.Stats().Resets != 0 {
						t.Fatalf("segment %d: restore to the state after segment %d reset", i, durable)
					}
					for k := range states {
						if k > durable {
							delete(states, k)
						}
					}
					i = durable
				}
			}
			_ = o.Close()
		})
	}
}
