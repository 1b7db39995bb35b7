package testinfra

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeTB records what a helper does to its test: Fatal and Skip end the
// goroutine, as they do a test's.
type fakeTB struct {
	testing.TB // the real test, for Name, Cleanup, TempDir
	logs       []string
	failed     string
	skipped    string
}

func (f *fakeTB) Helper()                      {}
func (f *fakeTB) Logf(format string, a ...any) { f.logs = append(f.logs, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.failed = fmt.Sprintf(format, a...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(a ...any) { f.Fatalf("%s", fmt.Sprint(a...)) }
func (f *fakeTB) Skipf(format string, a ...any) {
	f.skipped = fmt.Sprintf(format, a...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(a ...any) { f.Skipf("%s", fmt.Sprint(a...)) }

// withTB runs fn with a fakeTB in a goroutine of its own.
func withTB(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// pretendEngine makes dockerHealth answer err for the rest of the test.
func pretendEngine(t *testing.T, err error) {
	old := dockerHealth
	dockerHealth = func() error { return err }
	t.Cleanup(func() { dockerHealth = old })
}

// Here (the CI machine) no engine answers: auto gives local processes,
// and the health check does not hang.
func TestAutoWithoutEngine(t *testing.T) {
	t.Setenv(EnvInfra, "auto")
	began := time.Now()
	err := dockerHealth()
	if d := time.Since(began); d > 7*time.Second {
		t.Errorf("the health check took %v, want at most 5 s", d)
	}
	if err == nil {
		t.Skip("a Docker engine answers here: the fallback is not exercised")
	}
	t.Logf("no engine: %v", err)
	k := Kafka(t)
	local, err := kafkaShared.get(startKfake)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Brokers, local.brokers) {
		t.Errorf("auto without an engine: brokers %v, want the local kfake's %v", k.Brokers, local.brokers)
	}
}

// An engine answers but the container does not start (no image registry,
// say): auto falls back to the local server, docker fails the test.
func TestContainerFailure(t *testing.T) {
	pretendEngine(t, nil)
	pull := errors.New("pull access denied for nosuch/image")
	var calls int
	failing := func(context.Context) (int, error) { calls++; return 0, pull }

	t.Setenv(EnvInfra, "auto")
	var s shared[int]
	for range 2 {
		var ok bool
		f := withTB(t, func(tb testing.TB) { _, ok = fromDocker(tb, &s, "Fake", failing) })
		if ok || f.failed != "" || f.skipped != "" || !strings.Contains(strings.Join(f.logs, "\n"), "using a local process instead: pull access denied") {
			t.Errorf("auto: ok=%v failed=%q skipped=%q logs=%q", ok, f.failed, f.skipped, f.logs)
		}
	}
	if calls != 1 {
		t.Errorf("the failing start ran %d times, want once per binary", calls)
	}

	t.Setenv(EnvInfra, "docker")
	var s2 shared[int]
	f := withTB(t, func(tb testing.TB) { fromDocker(tb, &s2, "Fake", failing) })
	if !strings.Contains(f.failed, "start Fake container: pull access denied") {
		t.Errorf("docker: failed=%q", f.failed)
	}

	// A panic inside testcontainers is a failure to start, not a crash.
	t.Setenv(EnvInfra, "auto")
	var s3 shared[int]
	var ok bool
	f = withTB(t, func(tb testing.TB) {
		_, ok = fromDocker(tb, &s3, "Fake", func(context.Context) (int, error) { panic("rootless Docker not found") })
	})
	if ok || f.failed != "" || !strings.Contains(strings.Join(f.logs, "\n"), "rootless Docker not found") {
		t.Errorf("panic: ok=%v failed=%q logs=%q", ok, f.failed, f.logs)
	}
}

// The real Redpanda start, with an engine that only seems to answer: the
// container cannot start, and Kafka falls back to kfake.
func TestKafkaFallsBackWhenContainerFails(t *testing.T) {
	if dockerHealth() == nil {
		t.Skip("a Docker engine answers here: Redpanda may start")
	}
	pretendEngine(t, nil)
	t.Setenv(EnvInfra, "auto")
	k := Kafka(t)
	if _, err := kafkaDocker.get(nil); err == nil {
		t.Fatal("a Redpanda container started without an engine")
	}
	local, err := kafkaShared.get(startKfake)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Brokers, local.brokers) {
		t.Errorf("brokers %v, want the local kfake's %v", k.Brokers, local.brokers)
	}
}

func TestModes(t *testing.T) {
	noEngine := errors.New("no engine")
	pretendEngine(t, noEngine)

	t.Setenv(EnvInfra, "docker")
	f := withTB(t, func(tb testing.TB) { useDocker(tb) })
	if !strings.Contains(f.failed, "SLUICE_TEST_INFRA=docker, but no Docker engine answers: no engine") {
		t.Errorf("docker without an engine: failed=%q", f.failed)
	}
	t.Setenv(EnvInfra, "bogus")
	if f := withTB(t, func(tb testing.TB) { useDocker(tb) }); !strings.Contains(f.failed, "want auto, docker or local") {
		t.Errorf("bogus mode: failed=%q", f.failed)
	}
	pretendEngine(t, nil)
	t.Setenv(EnvInfra, "local")
	if f := withTB(t, func(tb testing.TB) {
		if useDocker(tb) {
			tb.Fatal("local mode uses Docker")
		}
	}); f.failed != "" {
		t.Error(f.failed)
	}
}

// MySQL 8 exists only in a container: without an engine the test skips,
// with CI=true too; with SLUICE_TEST_INFRA=docker it fails.
func TestMySQL8WithoutEngine(t *testing.T) {
	pretendEngine(t, errors.New("no engine"))
	t.Setenv("CI", "true")
	for _, mode := range []string{"auto", "local"} {
		t.Setenv(EnvInfra, mode)
		f := withTB(t, func(tb testing.TB) { MySQL8(tb) })
		if f.failed != "" || !strings.Contains(f.skipped, "MySQL 8 needs a Docker engine") {
			t.Errorf("%s: failed=%q skipped=%q", mode, f.failed, f.skipped)
		}
	}
	t.Setenv(EnvInfra, "docker")
	if f := withTB(t, func(tb testing.TB) { MySQL8(tb) }); f.failed == "" {
		t.Errorf("docker without an engine: not failed (skipped=%q)", f.skipped)
	}
}
