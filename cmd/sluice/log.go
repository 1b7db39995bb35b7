package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// isTerminal reports whether w is a terminal; only *os.File can be one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// newLogger builds the root logger for job, writing to w. Every logger in
// the process derives from it, so every line carries the job id: several
// jobs' logs usually end up in one place. Components add "component" and
// "table" themselves.
// tty says whether w ends on a terminal (w may be a wrapper of one).
func newLogger(cfg LogConfig, job string, w io.Writer, tty bool) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := cfg.Format
	if format == "" || format == "auto" {
		// A person reads a terminal; anything else is usually collected
		// by a machine that wants one JSON object per line.
		format = "json"
		if tty {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		if tty {
			ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		ec.TimeKey = "ts"
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("log.format: expected auto, console or json, got %q", cfg.Format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	// No zap.AddStacktrace: a stack trace in an operator's log tells them
	// nothing; errors carry their context in the message instead.
	return zap.New(core).With(zap.String("job", job)), nil
}

// sharedTerm is stderr shared by log lines and a progress bar. A log line
// written while the bar is drawn would start in the middle of the bar's
// line; so every write first erases the bar, which redraws itself on its
// next update. The mutex also serializes writes, as zapcore.Lock would,
// and guards the bar, whose Clear is not safe against its own updates.
type sharedTerm struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar // nil when no bar is shown
}

func (s *sharedTerm) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar != nil {
		_ = s.bar.Clear()
	}
	return s.w.Write(p)
}

func (s *sharedTerm) Sync() error {
	if f, ok := s.w.(interface{ Sync() error }); ok {
		// Syncing a terminal or pipe fails with EINVAL; that is no loss.
		_ = f.Sync()
	}
	return nil
}

// withBar runs fn with the bar under the lock (nil bar: fn(nil)).
func (s *sharedTerm) withBar(fn func(bar *progressbar.ProgressBar)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.bar)
}

func (s *sharedTerm) setBar(bar *progressbar.ProgressBar) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bar = bar
}
