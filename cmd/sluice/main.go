// Command sluice moves change data into Apache Iceberg tables. One binary
// runs a job as a daemon (run), as a bounded run (run --once, backfill),
// and offers the tools around it (validate, maintain, checkpoints, tables,
// scan). See DESIGN.md for the system and `sluice --help` for usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Exit codes. Configuration and usage errors get their own code so that a
// deploy pipeline can tell "fix the file" from "the job failed".
const (
	exitOK      = 0
	exitRuntime = 1
	exitConfig  = 2
)

func main() {
	if err := startPprof(); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(exitConfig)
	}
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// app holds what every command shares. It is created per execute call, so
// tests can run the CLI in-process.
type app struct {
	stdout, stderr io.Writer
	// ran is set once a command's own code starts: an error before that
	// came from cobra (unknown command, bad flag) and is a usage error.
	ran bool
	// term is stderr as the logger sees it, set by setupLog; the progress
	// bar draws through it.
	term *sharedTerm
}

// usageError marks errors in how sluice was invoked.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// execute runs the CLI and returns the process exit code. It never lets a
// panic through: operators get one line, not a goroutine dump.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "sluice: internal error: %v (this is a bug; please report it)\n", r)
			if os.Getenv("SLUICE_DEBUG") != "" {
				fmt.Fprintf(stderr, "%s", debug.Stack())
			} else {
				fmt.Fprintln(stderr, "sluice: set SLUICE_DEBUG=1 to print where it happened")
			}
			code = exitRuntime
		}
	}()
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	return a.report(err)
}

// report prints err as one clear message and picks the exit code.
func (a *app) report(err error) int {
	var ce *ConfigError
	var ue usageError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintln(a.stderr, ce.Error())
		if ce.Snippet != "" {
			fmt.Fprint(a.stderr, ce.Snippet)
		}
		return exitConfig
	case errors.As(err, &ue) || !a.ran:
		fmt.Fprintf(a.stderr, "sluice: %v\nRun 'sluice --help' for usage.\n", err)
		return exitConfig
	}
	fmt.Fprintf(a.stderr, "sluice: %v\n", err)
	return exitRuntime
}

const rootLong = `sluice moves change data into Apache Iceberg tables with exactly-once
results. One job file describes one source, the lake it writes to and
where checkpoints are kept.

Job file (YAML):

  job: shop-orders              # required; lowercase letters, digits, - and _
  source:
    datagen: {...}              # exactly one source kind
  sink:
    catalog: {type: sql, uri: "sqlite://./lake/catalog.db"}
    warehouse: file://./lake/warehouse
  checkpoint: {interval: 30s, dir: ./state}
  log: {level: info, format: auto}   # format: auto, console or json

Environment variables are substituted before parsing: ${VAR} (an error
if VAR is unset) and ${VAR:-default} (default if VAR is unset or empty).
Comments are left alone; write $${ for a literal ${.

Relative paths (checkpoint.dir, sqlite:// and file:// locations) are
relative to the current working directory, not to the job file.

Exit codes: 0 success, 1 the job or command failed, 2 the job file or the
command line is invalid.`

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Land change data in Apache Iceberg, exactly once",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No completion command: it would be noise in a server binary.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		a.runCmd(),
		a.backfillCmd(),
		a.validateCmd(),
		a.maintainCmd(),
		a.checkpointsCmd(),
		a.savepointCmd(),
		a.tablesCmd(),
		a.scanCmd(),
		a.versionCmd(),
	)
	return root
}

// runE wraps a command body so that report can tell its errors from
// cobra's usage errors.
func (a *app) runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		return fn(cmd, args)
	}
}

// configFlag adds the -c flag every job command takes.
func configFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "config", "c", "", "job file (YAML); relative paths in it are relative to the working directory")
	_ = cmd.MarkFlagRequired("config")
}

// setupLog builds the root logger of cfg and routes the standard library's
// log package into it: libraries such as Pebble write there, and their
// lines must carry the job and go where the job's logs go. stdLevel is the
// level those lines get: short commands demote them to debug because
// Pebble's recovery chatter is not what someone listing checkpoints asked
// for.
func (a *app) setupLog(cfg *JobConfig, stdLevel zapcore.Level) (*zap.Logger, func(), error) {
	a.term = &sharedTerm{w: a.stderr}
	log, err := newLogger(cfg.Log, cfg.Job, a.term, isTerminal(a.stderr))
	if err != nil {
		return nil, nil, err
	}
	restore, err := zap.RedirectStdLogAt(log.With(zap.String("component", "stdlog")), stdLevel)
	if err != nil {
		restore = func() {}
	}
	return log, func() {
		restore()
		_ = log.Sync()
	}, nil
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, versionString())
			return nil
		}),
	}
}

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionString() string {
	s := "sluice " + version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return s
	}
	var extra []string
	if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		extra = append(extra, bi.Main.Version)
	}
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		extra = append(extra, "commit "+rev[:min(12, len(rev))]+modified)
	}
	extra = append(extra, bi.GoVersion)
	return s + " (" + strings.Join(extra, ", ") + ")"
}
