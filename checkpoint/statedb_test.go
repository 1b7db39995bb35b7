package checkpoint

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func stateGet(t *testing.T, s *StateDB, k string) string {
	t.Helper()
	v, ok, err := s.Get([]byte(k), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "<none>"
	}
	return string(v)
}

// A restore gives the named checkpoint's content, not what was written
// after it, and the two newest checkpoints are kept.
func TestStateDBRestoresTheCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	opts := StateDBOptions{Dir: "/st", FS: fs}
	s, err := OpenStateDB(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Set([]byte("a"), []byte("1")))
	must(s.Set([]byte("b"), []byte("1")))
	must(s.Commit())
	st1, err := s.Snapshot(1)
	must(err)
	must(s.Set([]byte("a"), []byte("2")))
	must(s.Delete([]byte("b")))
	must(s.Commit())
	st2, err := s.Snapshot(2)
	must(err)
	must(s.Set([]byte("a"), []byte("3")))
	must(s.Set([]byte("c"), []byte("3")))
	must(s.Commit())
	st3, err := s.Snapshot(3)
	must(err)
	must(s.Set([]byte("a"), []byte("later")))
	must(s.Commit())
	if got := stateGet(t, s, "a"); got != "later" {
		t.Fatalf("live a = %s", got)
	}
	ids, err := s.Checkpoints()
	must(err)
	if len(ids) != 2 || ids[0] != 2 || ids[1] != 3 {
		t.Fatalf("checkpoints kept: %v, want [2 3]", ids)
	}
	must(s.Close())

	for _, c := range []struct {
		state   []byte
		a, b, c string
	}{{st3, "3", "<none>", "3"}, {st2, "2", "<none>", "<none>"}} {
		r, err := OpenStateDB(opts, c.state)
		must(err)
		if a, b, cc := stateGet(t, r, "a"), stateGet(t, r, "b"), stateGet(t, r, "c"); a != c.a || b != c.b || cc != c.c {
			t.Errorf("restore %s: a=%s b=%s c=%s, want %s %s %s", c.state, a, b, cc, c.a, c.b, c.c)
		}
		// Writes after a restore do not change the checkpoint.
		must(r.Set([]byte("a"), []byte("x")))
		must(r.Commit())
		must(r.Close())
	}
	again, err := OpenStateDB(opts, st3)
	must(err)
	if a := stateGet(t, again, "a"); a != "3" {
		t.Errorf("second restore of checkpoint 3: a=%s", a)
	}
	must(again.Close())
	// Checkpoint 1 was removed: restoring it is an error, not an empty start.
	if _, err := OpenStateDB(opts, st1); !errors.Is(err, ErrStateLost) {
		t.Errorf("restore of a removed checkpoint: %v, want ErrStateLost", err)
	}
	// A fresh start is empty.
	f, err := OpenStateDB(opts, nil)
	must(err)
	if a := stateGet(t, f, "a"); a != "<none>" {
		t.Errorf("fresh start: a=%s", a)
	}
	must(f.Close())
}
