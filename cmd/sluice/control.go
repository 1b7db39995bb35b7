package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/pipeline"
)

// The control socket lets an operator ask a running job for a savepoint:
// `sluice savepoint -c job.yaml NAME`. It lives in the checkpoint
// directory, which only one process can hold (Pebble's lock), so a socket
// file found there at start is a leftover of a crash and is replaced.
//
// The protocol is one request line and one reply line:
//
//	savepoint NAME    ->  ok | error MESSAGE
const controlSocketName = "control.sock"

var savepointName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

func controlSocket(cfg *JobConfig) string {
	return filepath.Join(cfg.Checkpoint.Dir, controlSocketName)
}

// serveControl answers control requests until ctx ends. It is started
// after the checkpoint store is open, so the socket is ours.
func serveControl(ctx context.Context, path string, r *pipeline.Runner, log *zap.Logger) (stop func(), err error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			handleControl(ctx, conn, r, log)
		}
	}()
	return func() {
		cancel()
		_ = ln.Close()
		<-done
		_ = os.Remove(path)
	}, nil
}

// handleControl serves one connection. Requests are served one at a time:
// savepoints are serialized by the runner anyway.
func handleControl(ctx context.Context, conn net.Conn, r *pipeline.Runner, log *zap.Logger) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	reply := func(format string, args ...any) { fmt.Fprintf(conn, format+"\n", args...) }
	verb, name, _ := strings.Cut(strings.TrimSpace(line), " ")
	if verb != "savepoint" {
		reply("error unknown request %q (expected: savepoint NAME)", verb)
		return
	}
	if !savepointName.MatchString(name) {
		reply("error savepoint name %q: use letters, digits, '.', '_' and '-' (at most 100)", name)
		return
	}
	log.Info("savepoint requested", zap.String("savepoint", name))
	// A periodic checkpoint may be in flight: ask again until it is done.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err = r.Savepoint(ctx, name)
		if !errors.Is(err, pipeline.ErrBusy) || time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		reply("error %s", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	reply("ok")
}

func (a *app) savepointCmd() *cobra.Command {
	var (
		file string
		del  bool
	)
	cmd := &cobra.Command{
		Use:   "savepoint -c FILE NAME",
		Short: "Ask the running job for a named savepoint and wait until it is committed",
		Long: `Ask the running daemon of the job (sluice run) for a savepoint: a
checkpoint that is kept until deleted, whatever the retention. Start a
later run from it with: sluice run -c FILE --from-savepoint NAME

Restoring a savepoint rewinds the sources to it: changes after it are read
again, so upsert tables converge to the same state while changelog (ods)
tables receive those changes a second time.

With --delete, remove the named savepoint from a stopped job's store.`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			cfg, err := LoadConfig(file)
			if err != nil {
				return err
			}
			if !savepointName.MatchString(args[0]) {
				return usageError{fmt.Errorf("savepoint name %q: use letters, digits, '.', '_' and '-' (at most 100)", args[0])}
			}
			if del {
				st, err := openStore(cfg)
				if err != nil {
					return err
				}
				defer st.Close()
				if err := st.DeleteSavepoint(args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "savepoint %s deleted\n", args[0])
				return nil
			}
			path := controlSocket(cfg)
			conn, err := net.DialTimeout("unix", path, 5*time.Second)
			if err != nil {
				return fmt.Errorf("no running job %q answers on %s: start it with `sluice run -c %s` (%w)", cfg.Job, path, file, err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Minute))
			if _, err := fmt.Fprintf(conn, "savepoint %s\n", args[0]); err != nil {
				return fmt.Errorf("send request: %w", err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return fmt.Errorf("no answer from the job: %w", err)
			}
			line = strings.TrimSpace(line)
			if msg, ok := strings.CutPrefix(line, "error "); ok {
				return errors.New(msg)
			}
			fmt.Fprintf(a.stdout, "savepoint %s committed; restore with: sluice run -c %s --from-savepoint %s\n", args[0], file, args[0])
			return nil
		}),
	}
	configFlag(cmd, &file)
	cmd.Flags().BoolVar(&del, "delete", false, "delete the savepoint (the job must be stopped)")
	return cmd
}
