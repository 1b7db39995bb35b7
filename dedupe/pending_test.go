package dedupe

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

func TestPendingWrites(t *testing.T) {
	p := newPendingWrites(4) // small: put must grow the slots
	want := map[string]string{}
	rng := rand.New(rand.NewSource(1))
	for run := 0; run < 20; run++ {
		var keys []string
		for range 1 + rng.Intn(30) {
			keys = append(keys, fmt.Sprintf("k%04d", rng.Intn(200)))
		}
		if run%3 != 0 {
			slices.Sort(keys) // most runs in order, as Process puts them
		}
		for i, k := range keys {
			v := fmt.Sprintf("v%d.%d", run, i)
			del := rng.Intn(5) == 0
			if del {
				v = ""
			}
			p.put([]byte(k), keyHash([]byte(k)), []byte(v), del)
			want[k] = v
		}
		p.endRun()
	}
	for k, v := range want {
		got, del, ok := p.get([]byte(k), keyHash([]byte(k)))
		if !ok || string(got) != v || del != (v == "") {
			t.Fatalf("get %s = %q, %v, %v; want %q", k, got, del, ok, v)
		}
	}
	if _, _, ok := p.get([]byte("absent"), keyHash([]byte("absent"))); ok {
		t.Fatal("get of an absent key found it")
	}
	var prev []byte
	n := 0
	if err := p.each(func(e *pendEntry) error {
		k := p.key(e)
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("each: %s after %s", k, prev)
		}
		prev = bytes.Clone(k)
		if v := want[string(k)]; string(p.value(e)) != v || e.del != (v == "") {
			t.Fatalf("each: %s = %q, %v; want %q", k, p.value(e), e.del, v)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("each visited %d entries, want %d", n, len(want))
	}
	p.reset()
	if p.len() != 0 {
		t.Fatal("reset left entries")
	}
	if _, _, ok := p.get([]byte("k0001"), keyHash([]byte("k0001"))); ok {
		t.Fatal("get after reset found a key")
	}
}
