package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// interruptible cancels ctx on SIGINT/SIGTERM: short commands have no
// final checkpoint to take, so the first signal just stops them.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func (a *app) maintainCmd() *cobra.Command {
	var (
		file                     string
		compact, expire, orphans bool
		olderThan                time.Duration
		retain                   int
		dryRun                   bool
		tables                   []string
	)
	cmd := &cobra.Command{
		Use:   "maintain -c FILE",
		Short: "Compact files, expire snapshots and remove orphan files of the job's tables",
		Long: `Maintain the Iceberg tables of the job: compaction (rewrites small files
and applies delete files), snapshot expiry and orphan file removal, in
that order per table. Without --compact, --expire or --orphans all three
run. Without --table, every table the job wrote is maintained.

It is safe to run next to a running job: a compaction that collides with
the job's commit is skipped and reported, and orphan removal only takes
files older than --older-than (default 1h), which a running job's
uncommitted files are not.

--older-than sets both the snapshot age for expiry (default 24h) and the
file age for orphan removal (default 1h).`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			if olderThan < 0 || retain < 0 {
				return usageError{fmt.Errorf("--older-than and --retain must not be negative")}
			}
			log, done, err := a.setupLog(cfg, zapcore.DebugLevel)
			if err != nil {
				return err
			}
			defer done()
			if !compact && !expire && !orphans {
				compact, expire, orphans = true, true, true
			}
			opts := lake.MaintainOptions{
				Compact:         compact,
				ExpireSnapshots: expire,
				ExpireOlderThan: olderThan,
				RetainLast:      retain,
				RemoveOrphans:   orphans,
				OrphanOlderThan: olderThan,
				DryRun:          dryRun,
			}
			if opts.RemoveOrphans && !opts.DryRun {
				if err := guardOrphans(cfg, &opts, log); err != nil {
					return err
				}
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			reports, err := lake.Maintain(ctx, &cfg.Sink, cfg.Job, splitList(tables), opts, log)
			// Print what was done even when some table failed: the others
			// changed, and the user needs to know.
			a.printReports(reports, dryRun)
			if err != nil {
				return err
			}
			return nil
		}),
	}
	configFlag(cmd, &file)
	f := cmd.Flags()
	f.BoolVar(&compact, "compact", false, "rewrite small data files and apply delete files")
	f.BoolVar(&expire, "expire", false, "expire old snapshots")
	f.BoolVar(&orphans, "orphans", false, "remove files no snapshot references")
	f.DurationVar(&olderThan, "older-than", 0, "minimum age of expired snapshots and removed orphan files (0: 24h and 1h)")
	f.IntVar(&retain, "retain", 0, "snapshots always kept by expiry (0: 5)")
	f.BoolVar(&dryRun, "dry-run", false, "change nothing; report what would be done")
	f.StringArrayVar(&tables, "table", nil, "maintain only this table, NS.TABLE (repeatable, or comma-separated)")
	return cmd
}

// guardOrphans protects files that look like orphans but are not: those of
// a checkpoint that is durable but not yet committed, which recovery will
// commit. A stopped job with such a checkpoint gets no orphan removal until
// it ran again; a running job's in-flight files are younger than two
// checkpoint intervals, so the age threshold is raised to at least that.
func guardOrphans(cfg *JobConfig, opts *lake.MaintainOptions, log *zap.Logger) error {
	minAge := max(opts.OrphanOlderThan, time.Hour, 2*cfg.Checkpoint.Interval)
	if opts.OrphanOlderThan != 0 && opts.OrphanOlderThan < minAge {
		log.Warn("raising the orphan age threshold to two checkpoint intervals, so that a running job's uncommitted files are kept",
			zap.Duration("older_than", minAge))
	}
	if opts.OrphanOlderThan < minAge {
		opts.OrphanOlderThan = minAge
	}
	if _, err := os.Stat(cfg.Checkpoint.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil // the job never ran here
	}
	st, err := openStore(cfg)
	var locked *storeLockedError
	if errors.As(err, &locked) {
		return nil // running: covered by the age threshold
	}
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := st.Latest()
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !m.Complete {
		log.Warn("skipping orphan removal: checkpoint is durable but not committed, and its files would look like orphans; run the job once (sluice run --once) to commit it, then maintain again",
			zap.Uint64("checkpoint", m.ID))
		opts.RemoveOrphans = false
	}
	return nil
}

// splitList accepts both --table a --table b and --table a,b.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (a *app) printReports(reports []lake.TableReport, dryRun bool) {
	if len(reports) == 0 {
		fmt.Fprintln(a.stdout, "no tables to maintain")
		return
	}
	if dryRun {
		fmt.Fprintln(a.stdout, "dry run: nothing was changed; the counts are what maintenance would do")
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tDATA FILES\tDELETE FILES\tSNAPSHOTS EXPIRED\tORPHANS REMOVED\tROWS\tNOTE")
	for _, r := range reports {
		note := r.Conflict
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%d -> %d\t%d -> %d\t%d\t%d\t%d\t%s\n", r.Table,
			r.FilesBefore, r.FilesAfter, r.DeleteFilesBefore, r.DeleteFilesAfter,
			r.SnapshotsExpired, r.OrphansRemoved, r.Rows, note)
	}
	_ = tw.Flush()
}

func (a *app) tablesCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "tables -c FILE",
		Short: "List the Iceberg tables in the job's catalog",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			_, done, err := a.setupLog(cfg, zapcore.DebugLevel)
			if err != nil {
				return err
			}
			defer done()
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			names, err := lake.ListTables(ctx, &cfg.Sink)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				fmt.Fprintf(a.stdout, "no tables in catalog %s\n", redactURI(cfg.Sink.Catalog.URI))
				return nil
			}
			for _, n := range names {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		}),
	}
	configFlag(cmd, &file)
	return cmd
}

func (a *app) scanCmd() *cobra.Command {
	var (
		file  string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "scan -c FILE NS.TABLE",
		Short: "Print rows of an Iceberg table of the job",
		Long: `Print the rows of a table's current snapshot, with deletes applied, as
aligned columns. A name without a namespace is looked up in
sink.namespace. List the tables with 'sluice tables'.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("scan takes one table name (NS.TABLE), got %d arguments", len(args))}
			}
			return nil
		},
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			if limit < 0 {
				return usageError{fmt.Errorf("--limit must not be negative")}
			}
			_, done, err := a.setupLog(cfg, zapcore.DebugLevel)
			if err != nil {
				return err
			}
			defer done()
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			return scanTo(ctx, a.stdout, &cfg.Sink, args[0], limit)
		}),
	}
	configFlag(cmd, &file)
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "rows to print (0: all)")
	return cmd
}

// scanTo prints a table's rows aligned. Rows are buffered by tabwriter to
// align them, which --limit keeps small.
func scanTo(ctx context.Context, w io.Writer, cfg *lake.Config, name string, limit int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := 0
	err := lake.ScanTable(ctx, cfg, name, limit, func(cols []string, row []any) error {
		if rows == 0 {
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = formatValue(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		rows++
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "(%d row(s))\n", rows)
	return nil
}

// formatValue renders one cell on one line: tabs and newlines in a value
// would break the alignment.
func formatValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		s = x
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	case pipeline.Decimal:
		return x.String()
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		s = fmt.Sprint(x)
	}
	return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}
