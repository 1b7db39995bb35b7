package checkpoint

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPolicy(Config{Interval: time.Minute, MaxRecords: 100, MaxBytes: 1000}, t0)
	for _, tc := range []struct {
		now            time.Duration
		records, bytes int64
		want           bool
	}{
		{0, 0, 0, false},
		{2 * time.Minute, 0, 0, false}, // idle: no empty snapshots
		{time.Second, 99, 999, false},
		{time.Second, 100, 0, true},
		{time.Second, 1, 1000, true},
		{time.Minute, 1, 1, true},
	} {
		if got := p.Due(t0.Add(tc.now), tc.records, tc.bytes); got != tc.want {
			t.Errorf("Due(+%s, %d, %d) = %v, want %v", tc.now, tc.records, tc.bytes, got, tc.want)
		}
	}
	p.Started(t0.Add(time.Minute))
	if p.Due(t0.Add(90*time.Second), 1, 1) {
		t.Error("interval clock was not reset by Started")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{}
	good.Defaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{
		{Interval: -time.Second, Retain: 1},
		{Interval: time.Millisecond, Retain: 1},
		{Interval: time.Second, MaxRecords: -1, Retain: 1},
		{Interval: time.Second, Retain: 0},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v passed validation", bad)
		}
	}
}

func TestPebbleStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenPebble(dir, "job", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Latest(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store Latest: %v", err)
	}
	for id := uint64(1); id <= 6; id++ {
		m := &Manifest{ID: id, Job: "job", Kind: KindPeriodic,
			Sources: map[string]Position{"src": {State: []byte(fmt.Sprint(id)), Summary: fmt.Sprint("at ", id)}},
			Sink:    []byte("files"),
		}
		if id == 2 {
			m.Kind, m.Name = KindSavepoint, "keep"
		}
		if err := s.Put(m); err != nil {
			t.Fatal(err)
		}
		if id < 6 { // the newest stays incomplete, as after a crash
			if err := s.Complete(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Durable across reopen: the store is closed and opened again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenPebble(dir, "job", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	latest, err := s.Latest()
	if err != nil || latest.ID != 6 || latest.Complete || string(latest.Sources["src"].State) != "6" || latest.Summaries()["src"] != "at 6" {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	all, _ := s.List()
	var ids []uint64
	for _, m := range all {
		ids = append(ids, m.ID)
	}
	// retain 2 completed periodic ones (4, 5), the savepoint (2), and the
	// incomplete newest (6).
	if fmt.Sprint(ids) != "[2 4 5 6]" {
		t.Errorf("kept %v", ids)
	}
	sp, err := s.Savepoint("keep")
	if err != nil || sp.ID != 2 {
		t.Fatalf("savepoint: %+v %v", sp, err)
	}
	if err := s.DeleteSavepoint("keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Savepoint("keep"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted savepoint still found: %v", err)
	}
	if _, err := OpenPebble(t.TempDir(), "job", 1); err != nil {
		t.Fatal(err)
	}
}

func TestStoreRefusesAnotherJob(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenPebble(dir, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenPebble(dir, "b", 1); !errors.Is(err, ErrJobMismatch) {
		t.Fatalf("opening job a's store as job b: %v", err)
	}
}
