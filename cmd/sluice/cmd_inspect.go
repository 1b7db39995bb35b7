package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
)

func (a *app) validateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a job file without connecting to anything",
		Long: `Load the job file, substitute environment variables, apply defaults and
check every section. Nothing is connected to and nothing is written.
Errors name the file, line and column of the offending key.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "ok: job %s, %d source(s), %d sink table rule(s)\n",
				cfg.Job, len(cfg.Source.kinds()), len(cfg.Sink.Tables))
			return nil
		}),
	}
	configFlag(cmd, &file)
	return cmd
}

func (a *app) checkpointsCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "checkpoints -c FILE",
		Short: "List the job's stored checkpoints and savepoints",
		Long: `List the manifests in the job's checkpoint store (checkpoint.dir): id,
kind, savepoint name, creation time, whether every table committed it, and
the source positions it resumes from.

The store can be open in one process only: while a daemon of this job
runs, stop it first.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			// Opening creates a store; listing must not leave an empty one
			// behind in a mistyped directory.
			if _, err := os.Stat(cfg.Checkpoint.Dir); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(a.stdout, "no checkpoints: %s does not exist (the job has not run from this directory yet)\n", cfg.Checkpoint.Dir)
				return nil
			}
			_, done, err := a.setupLog(cfg, zapcore.DebugLevel)
			if err != nil {
				return err
			}
			defer done()
			st, err := openStore(cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			ms, err := st.List()
			if err != nil {
				return fmt.Errorf("list checkpoints in %s: %w", cfg.Checkpoint.Dir, err)
			}
			if len(ms) == 0 {
				fmt.Fprintf(a.stdout, "no checkpoints stored in %s\n", cfg.Checkpoint.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tNAME\tCREATED\tCOMPLETE\tPOSITIONS")
			for _, m := range ms {
				name := m.Name
				if name == "" {
					name = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\n", m.ID, m.Kind, name,
					m.CreatedAt.Local().Format(time.DateTime), m.Complete, positions(m.Summaries()))
			}
			return tw.Flush()
		}),
	}
	configFlag(cmd, &file)
	return cmd
}

// positions renders source positions in a stable order.
func positions(p map[string]string) string {
	if len(p) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p[k]
	}
	return strings.Join(parts, ", ")
}
