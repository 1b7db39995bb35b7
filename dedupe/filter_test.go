package dedupe

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluice-cdc/sluice/pipeline"
)

func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(1 << 20) // 8M bits
	key := func(i int) []byte { return binary.BigEndian.AppendUint64([]byte("k\x01"), uint64(i)) }
	const n = 500_000 // ~16 bits a key
	for i := range n {
		f.add(key(i))
	}
	for i := range n {
		if !f.mayContain(key(i)) {
			t.Fatalf("false negative for key %d", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.mayContain(key(i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.01 {
		t.Fatalf("false-positive rate %.4f at 16 bits a key", rate)
	}

	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.write(fs, "/d"); err != nil {
		t.Fatal(err)
	}
	g, err := readKeyFilter(fs, "/d", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !g.mayContain(key(i)) {
			t.Fatalf("false negative after reload for key %d", i)
		}
	}
	if _, err := readKeyFilter(fs, "/d", 2<<20); !errors.Is(err, errFilter) {
		t.Fatalf("size change: %v", err)
	}
	if _, err := readKeyFilter(fs, "/nope", 1<<20); !errors.Is(err, errFilter) {
		t.Fatalf("missing file: %v", err)
	}
	// Flip one bit in the middle: the checksum must catch it.
	file, err := fs.OpenReadWrite("/d/"+filterFile, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	_, _ = file.ReadAt(b, 1000)
	b[0] ^= 1
	_, _ = file.WriteAt(b, 1000)
	_ = file.Close()
	if _, err := readKeyFilter(fs, "/d", 1<<20); !errors.Is(err, errFilter) {
		t.Fatalf("damaged file: %v", err)
	}
}

// TestFilterRebuiltOnRestore: a checkpoint whose filter does not fit the
// configuration (filter_size changed) is restored with a filter rebuilt from
// the state, and decides exactly as before.
func TestFilterRebuiltOnRestore(t *testing.T) {
	w := newWorkload(21)
	a, b := w.segment(10, 64), w.segment(10, 64)
	cfg := memCfg(defaultRules()...)
	fs := vfs.NewCrashableMem()
	o := newOp(t, cfg, fs, nil)
	feed(t, o, a)
	st := snapshot(t, o, 1)
	outB := feed(t, o, b)
	fs = crash(t, o, fs, crashSyncedOnly)
	cfg.FilterSize *= 2
	o = newOp(t, cfg, fs, st)
	defer o.Close()
	if got := feed(t, o, b); got != outB {
		t.Fatal("replay with a rebuilt filter differs")
	}
}

// TestRandomKeysSkipLookups: new keys below the table's largest key are
// decided without Pebble when the filter has never seen them.
func TestRandomKeysSkipLookups(t *testing.T) {
	o := newOp(t, memCfg(defaultRules()...), vfs.NewMem(), nil)
	defer o.Close()
	s := ordersSchema()
	var recs []pipeline.Record
	for i := range 2000 {
		recs = append(recs, ins(uint64(i+1), scramble(uint64(i+1)), "a"))
	}
	run(t, o, s, recs[:1000]...)
	if err := o.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := o.db.Metrics().BlockCache
	run(t, o, s, recs[1000:]...)
	after := o.db.Metrics().BlockCache
	if reads := (after.Hits + after.Misses) - (before.Hits + before.Misses); reads > 100 {
		t.Fatalf("%d block reads for 1000 new keys", reads)
	}
	// And the old ones are still found.
	if out := run(t, o, s, recs[:1000]...); len(out) != 0 {
		t.Fatalf("%d replays passed", len(out))
	}
}
