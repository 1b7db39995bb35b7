package checkpoint

import (
	"errors"
	"fmt"
	"time"
)

// Kind says why a checkpoint was taken.
type Kind string

const (
	KindPeriodic  Kind = "periodic"  // interval or record/byte threshold
	KindSavepoint Kind = "savepoint" // requested by name, kept until deleted
	KindFinal     Kind = "final"     // end of input, or stop requested
)

// Position is one source's resume state at a checkpoint. State is opaque to
// everyone but the source; Summary is a short human-readable form that goes
// into Iceberg snapshot summaries and logs.
type Position struct {
	State   []byte `json:"state,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// Manifest is everything needed to finish or resume from checkpoint ID.
type Manifest struct {
	ID        uint64              `json:"id"`
	Job       string              `json:"job"`
	Kind      Kind                `json:"kind"`
	Name      string              `json:"name,omitempty"` // savepoints only
	CreatedAt time.Time           `json:"created_at"`
	Sources   map[string]Position `json:"sources"`
	Operators map[string][]byte   `json:"operators,omitempty"`
	// Sink is the sink's prepared state: for the lake sink, the data and
	// delete files written for this checkpoint, per table.
	Sink []byte `json:"sink,omitempty"`
	// Complete is set by Store.Complete once every table committed.
	Complete bool `json:"complete"`
}

// Summaries returns source name -> position summary, for commit metadata.
func (m *Manifest) Summaries() map[string]string {
	out := make(map[string]string, len(m.Sources))
	for k, v := range m.Sources {
		out[k] = v.Summary
	}
	return out
}

var (
	// ErrNotFound is returned for a checkpoint or savepoint the store lacks.
	ErrNotFound = errors.New("checkpoint: not found")
	// ErrJobMismatch is returned when a state directory belongs to another job.
	ErrJobMismatch = errors.New("checkpoint: state directory belongs to another job")
)

// Config is the checkpoint section of a job.
type Config struct {
	// Dir holds the Pebble store of manifests (and, by default, operator state).
	Dir string `yaml:"dir"`
	// Interval between periodic checkpoints; 0 disables the timer.
	Interval time.Duration `yaml:"interval"`
	// MaxRecords and MaxBytes trigger a checkpoint early once this many
	// records or bytes reached the sink since the last one; they also bound
	// the sink's memory. 0 disables.
	MaxRecords int64 `yaml:"max_records"`
	MaxBytes   int64 `yaml:"max_bytes"`
	// Retain is how many completed periodic checkpoints to keep; savepoints
	// are kept until deleted.
	Retain int `yaml:"retain"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Dir == "" {
		c.Dir = "./state"
	}
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 1_000_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	if c.Retain == 0 {
		c.Retain = 3
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("checkpoint.interval must not be negative, got %s", c.Interval)
	case c.Interval > 0 && c.Interval < 100*time.Millisecond:
		return fmt.Errorf("checkpoint.interval must be at least 100ms, got %s", c.Interval)
	case c.MaxRecords < 0:
		return fmt.Errorf("checkpoint.max_records must not be negative, got %d", c.MaxRecords)
	case c.MaxBytes < 0:
		return fmt.Errorf("checkpoint.max_bytes must not be negative, got %d", c.MaxBytes)
	case c.Retain < 1:
		return fmt.Errorf("checkpoint.retain must be at least 1, got %d", c.Retain)
	}
	return nil
}

// Policy decides when a periodic checkpoint is due.
type Policy struct {
	cfg  Config
	last time.Time
}

// NewPolicy starts the interval clock at now.
func NewPolicy(cfg Config, now time.Time) *Policy { return &Policy{cfg: cfg, last: now} }

// Due reports whether a checkpoint should start, given what reached the sink
// since the last one. Nothing is due when nothing arrived: an idle job does
// not write empty snapshots.
func (p *Policy) Due(now time.Time, records, bytes int64) bool {
	if records == 0 {
		return false
	}
	if p.cfg.MaxRecords > 0 && records >= p.cfg.MaxRecords {
		return true
	}
	if p.cfg.MaxBytes > 0 && bytes >= p.cfg.MaxBytes {
		return true
	}
	return p.cfg.Interval > 0 && now.Sub(p.last) >= p.cfg.Interval
}

// Started resets the interval clock.
func (p *Policy) Started(now time.Time) { p.last = now }
