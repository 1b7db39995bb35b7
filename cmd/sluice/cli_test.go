package main

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-cdc/sluice/pipeline"
)

type fakeProgress struct{ done, total atomic.Int64 }

func (f *fakeProgress) Progress() (int64, int64) { return f.done.Load(), f.total.Load() }

func TestSumProgress(t *testing.T) {
	t.Parallel()
	a, b := &fakeProgress{}, &fakeProgress{}
	a.done.Store(10)
	a.total.Store(100)
	b.done.Store(5)
	b.total.Store(50)
	if d, tot := sumProgress([]progresser{a, b}); d != 15 || tot != 150 {
		t.Errorf("got %d/%d, want 15/150", d, tot)
	}
	b.total.Store(0) // unbounded: the whole total is unknown
	if d, tot := sumProgress([]progresser{a, b}); d != 15 || tot != 0 {
		t.Errorf("got %d/%d, want 15/0", d, tot)
	}
}

func TestProgressLog(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	p := &fakeProgress{}
	p.total.Store(1000)
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		progressLog(zap.New(core), []progresser{p}, 10*time.Millisecond, quit)
	}()
	p.done.Store(250)
	for logs.FilterMessage("backfill progress").Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.done.Store(1000)
	close(quit)
	<-finished
	last := logs.FilterMessage("backfill read done").All()
	if len(last) != 1 {
		t.Fatalf("want one final line, got %d", len(last))
	}
	f := last[0].ContextMap()
	if f["done"] != int64(1000) || f["total"] != int64(1000) || f["percent"] != "100.0" {
		t.Errorf("final fields = %v", f)
	}
	if _, ok := f["rows_per_sec"]; !ok {
		t.Errorf("no rate in %v", f)
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tests := []struct {
		in   any
		want string
	}{
		{nil, "NULL"},
		{"a\tb\nc", `a\tb\nc`},
		{[]byte{0xde, 0xad}, "0xdead"},
		{ts, "2026-01-02T03:04:05.000006Z"},
		{int64(-7), "-7"},
		{0.1, "0.1"},
		{float32(0.1), "0.1"},
		{true, "true"},
		{pipeline.Decimal{Unscaled: 12345, Scale: 2}, "123.45"},
		{pipeline.Decimal{Unscaled: -5, Scale: 3}, "-0.005"},
		{pipeline.Decimal{Unscaled: 7, Scale: 0}, "7"},
		{pipeline.Decimal{Unscaled: 7, Scale: -2}, "700"},
		{90 * time.Minute, "1h30m0s"},
	}
	for _, tc := range tests {
		if got := formatValue(tc.in); got != tc.want {
			t.Errorf("formatValue(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:secret@db:5432/cat": "postgres://u:xxxxx@db:5432/cat",
		"postgres://u@db/cat":             "postgres://u@db/cat",
		"sqlite://./lake/catalog.db":      "sqlite://./lake/catalog.db",
		"https://rest.example/catalog":    "https://rest.example/catalog",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
}
