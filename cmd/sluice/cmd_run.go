package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-cdc/sluice/pipeline"
)

// errAborted is returned when a second signal cut a run short.
var errAborted = errors.New("aborted by a second signal before the final checkpoint; the next run resumes from the last complete checkpoint")

func (a *app) runCmd() *cobra.Command {
	var (
		file      string
		once      bool
		savepoint string
	)
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the job until stopped (or, with --once, until caught up)",
		Long: `Run the job as a daemon: read the source, write the lake, checkpoint
every checkpoint.interval. It resumes from the newest checkpoint in
checkpoint.dir.

SIGINT or SIGTERM stops it gracefully: a final checkpoint is taken and
committed, then sluice exits 0. A second signal aborts at once (exit 1);
nothing is lost, the next run resumes from the last complete checkpoint.

With --once (available-now), the sources read what exists when the run
starts, a final checkpoint commits it, and sluice exits 0: for cron jobs
and Kubernetes CronJobs.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			return a.runJob(cmd.Context(), file, runOptions{availableNow: once, restore: savepoint}, false)
		}),
	}
	configFlag(cmd, &file)
	cmd.Flags().BoolVar(&once, "once", false, "available-now: read what exists at start, commit it, exit")
	cmd.Flags().StringVar(&savepoint, "from-savepoint", "", "start from the named savepoint instead of the newest checkpoint")
	return cmd
}

func (a *app) backfillCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "backfill -c FILE",
		Short: "Run the job bounded, with a progress bar, then exit",
		Long: `Run the job bounded (available-now): the sources read what exists now,
a final checkpoint commits it, and sluice exits 0. Progress is shown as
a bar on a terminal, and logged every 5 seconds otherwise.

A MySQL/MariaDB source with snapshot: initial reads its tables' rows only
(as snapshot: initial_only), chunk by chunk without locks, and no binlog;
a later "sluice run" of the same job streams the binlog from where the
backfill began, so nothing changed meanwhile is missed.

Signals behave as for run: the first stops with a final checkpoint, the
second aborts.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			return a.runJob(cmd.Context(), file, runOptions{availableNow: true, backfill: true}, true)
		}),
	}
	configFlag(cmd, &file)
	return cmd
}

// runJob loads, wires and runs a job, then says where its tables are.
func (a *app) runJob(ctx context.Context, file string, opts runOptions, progress bool) error {
	cfg, err := LoadConfig(file)
	if err != nil {
		return err
	}
	log, done, err := a.setupLog(cfg, zapcore.InfoLevel)
	if err != nil {
		return err
	}
	defer done()
	applyMemoryLimit(cfg, log)
	j, err := wire(cfg, log, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.store.Close(); cerr != nil {
			log.Warn("closing the checkpoint store", zap.Error(cerr))
		}
	}()
	mode := "daemon"
	if opts.availableNow {
		mode = "available-now"
	}
	log.Info("job starting", zap.String("mode", mode), zap.String("catalog", redactURI(cfg.Sink.Catalog.URI)),
		zap.String("warehouse", cfg.Sink.Warehouse), zap.String("checkpoint_dir", cfg.Checkpoint.Dir))

	started := time.Now()
	stopProgress := func() {}
	if progress {
		// Deferred as well: a panic must not leave the bar drawing over
		// the one-line report of it.
		stopProgress = sync.OnceFunc(a.startProgress(j.sources, log))
		defer stopProgress()
	}
	stopControl, err := serveControl(ctx, controlSocket(cfg), j.runner, log.With(zap.String("component", "control")))
	if err != nil {
		// Savepoints on request are a convenience; the job runs without.
		log.Warn("no control socket: `sluice savepoint` will not reach this job", zap.Error(err))
		stopControl = func() {}
	}
	stopStats := startOperatorStats(j.ops, log, time.Minute)
	err = runUntilSignalled(ctx, j.runner, log)
	stopStats()
	stopControl()
	stopProgress()
	if tables := j.sink.TablesWritten(); err == nil || len(tables) > 0 {
		a.printTables(cfg, file, tables)
	}
	if err != nil {
		return fmt.Errorf("job %s: %w", cfg.Job, err)
	}
	log.Info("job finished", zap.Duration("took", time.Since(started).Round(time.Millisecond)))
	return nil
}

// startOperatorStats logs each operator's counts every period and once
// more when stopped, so that nothing an operator drops or dead-letters
// goes unreported.
func startOperatorStats(ops []pipeline.Operator, log *zap.Logger, period time.Duration) (stop func()) {
	report := func() {
		for _, op := range ops {
			if st, ok := operatorStats(op); ok {
				log.Info("operator stats", zap.String("operator", op.Name()), zap.Any("stats", st))
			}
		}
	}
	if len(ops) == 0 {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-quit:
				report()
				return
			}
		}
	}()
	return sync.OnceFunc(func() { close(quit); <-done })
}

// operatorStats returns an operator's Stats() value; each operator has
// its own Stats type, and the log only needs to render it.
func operatorStats(op pipeline.Operator) (any, bool) {
	m := reflect.ValueOf(op).MethodByName("Stats")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil, false
	}
	return m.Call(nil)[0].Interface(), true
}

// runUntilSignalled runs r. The first SIGINT/SIGTERM asks for a final
// checkpoint (Runner.Stop); the second cancels the context, which ends
// the run without one. Run stays on the calling goroutine so that a panic
// in the task loop reaches execute's recover instead of killing the
// process with a goroutine dump; the signals are watched from a helper.
func runUntilSignalled(ctx context.Context, r *pipeline.Runner, log *zap.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var aborted atomic.Bool
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		for signals := 0; ; {
			select {
			case <-finished:
				return
			case s := <-sigs:
				signals++
				if signals == 1 {
					log.Info("signal received: taking a final checkpoint, then exiting (send it again to abort)", zap.String("signal", s.String()))
					r.Stop()
					continue
				}
				log.Warn("second signal: aborting without a final checkpoint", zap.String("signal", s.String()))
				aborted.Store(true)
				cancel()
			}
		}
	}()
	err := r.Run(ctx)
	if err != nil && aborted.Load() {
		return fmt.Errorf("%w (%w)", errAborted, err)
	}
	return err
}

// printTables tells the user, on stdout, where the job's data landed and
// how to look at it: the first question after a run.
func (a *app) printTables(cfg *JobConfig, file string, tables []string) {
	w := a.stdout
	fmt.Fprintf(w, "catalog:   %s (%s)\n", redactURI(cfg.Sink.Catalog.URI), cfg.Sink.Catalog.Type)
	fmt.Fprintf(w, "warehouse: %s\n", cfg.Sink.Warehouse)
	if len(tables) == 0 {
		fmt.Fprintf(w, "this run wrote no new rows; list the job's tables with: sluice tables -c %s\n", file)
		return
	}
	fmt.Fprintln(w, "tables written:")
	for _, t := range tables {
		fmt.Fprintf(w, "  %s\n", t)
	}
	fmt.Fprintf(w, "read them with: sluice scan -c %s %s\n", file, tables[0])
}

// redactURI hides the password of a URI such as postgres://u:pw@host/db:
// it often comes from the environment precisely to keep it out of sight.
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}

// progresser is implemented by sources that know how far a bounded read
// got. total <= 0 means unknown.
type progresser interface {
	Progress() (done, total int64)
}

// sumProgress adds up the sources that report progress. The total is
// unknown (0) if any reporter's is.
func sumProgress(srcs []progresser) (done, total int64) {
	unknown := false
	for _, p := range srcs {
		d, t := p.Progress()
		done += d
		if t <= 0 {
			unknown = true
		}
		total += t
	}
	if unknown {
		total = 0
	}
	return done, total
}

// startProgress shows backfill progress until the returned func is called:
// a bar when stderr is a terminal, else a log line every 5 s (a bar in a
// log file is a wall of carriage returns).
func (a *app) startProgress(sources []pipeline.Source, log *zap.Logger) (stop func()) {
	var ps []progresser
	for _, s := range sources {
		if p, ok := s.(progresser); ok {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	if isTerminal(a.stderr) && a.term != nil {
		go func() {
			defer close(finished)
			progressBar(a.term, ps, quit)
		}()
	} else {
		go func() {
			defer close(finished)
			progressLog(log, ps, 5*time.Second, quit)
		}()
	}
	return func() {
		close(quit)
		<-finished
	}
}

// progressBar draws on term's underlying writer; log lines go through term
// and erase the bar first.
func progressBar(term *sharedTerm, ps []progresser, quit <-chan struct{}) {
	w := term.w
	_, total := sumProgress(ps)
	size := total
	if size <= 0 {
		size = -1 // a spinner: the total is unknown
	}
	// The bar calls this both when it fills up and on Exit: end its line
	// once, so that what is printed next does not overwrite it.
	var newline sync.Once
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("backfill"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { newline.Do(func() { fmt.Fprintln(w) }) }),
	)
	// Start the clock now; otherwise the first update counts everything
	// read so far as done in no time.
	_ = bar.RenderBlank()
	term.setBar(bar)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	update := func(bar *progressbar.ProgressBar) {
		done, total := sumProgress(ps)
		if total > 0 && total != bar.GetMax64() {
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
	}
	for {
		select {
		case <-tick.C:
			term.withBar(update)
		case <-quit:
			term.withBar(func(bar *progressbar.ProgressBar) {
				update(bar)
				_ = bar.Exit() // keeps the last state on screen
			})
			term.setBar(nil)
			return
		}
	}
}

func progressLog(log *zap.Logger, ps []progresser, every time.Duration, quit <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	last, lastAt := int64(0), start
	report := func(msg string) {
		now := time.Now()
		done, total := sumProgress(ps)
		fields := []zap.Field{zap.Int64("done", done)}
		if total > 0 {
			fields = append(fields, zap.Int64("total", total), zap.String("percent", fmt.Sprintf("%.1f", 100*float64(done)/float64(total))))
		}
		if dt := now.Sub(lastAt).Seconds(); dt > 0 {
			fields = append(fields, zap.Float64("rows_per_sec", float64(done-last)/dt))
		}
		if el := now.Sub(start).Seconds(); el > 0 {
			fields = append(fields, zap.Float64("avg_rows_per_sec", float64(done)/el))
		}
		log.Info(msg, fields...)
		last, lastAt = done, now
	}
	for {
		select {
		case <-tick.C:
			report("backfill progress")
		case <-quit:
			report("backfill read done")
			return
		}
	}
}
