package enrich

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Defaults for unset fields.
const (
	DefaultCacheSize = 100_000
	DefaultTTL       = 10 * time.Minute
	DefaultBatchSize = 500
	// MaxBatchSize is the most keys one lookup query carries: both MySQL
	// and PostgreSQL refuse statements with more than 65,535 placeholders.
	MaxBatchSize = 65_535
)

// Drivers a dimension may read through.
const (
	DriverMySQL    = "mysql"    // MySQL and MariaDB, github.com/go-sql-driver/mysql
	DriverPostgres = "postgres" // PostgreSQL, github.com/lib/pq
)

// Missing says what a rule does with a record whose key has no row in the
// dimension (a NULL key included).
type Missing string

const (
	// MissingNull passes the record on with NULL in the added columns.
	MissingNull Missing = "null"
	// MissingDrop drops the record (counted in Stats.Dropped). Dropping an
	// update leaves the previous version of the row downstream.
	MissingDrop Missing = "drop"
	// MissingDeadLetter sends the record to pipeline.DeadLetterTable
	// instead of passing it on.
	MissingDeadLetter Missing = "dead_letter"
)

// Config is the `dimensions` and `enrich` sections of a job.
type Config struct {
	// Dimensions by name.
	Dimensions map[string]Dimension `yaml:"dimensions"`
	// Rules apply in order; several may match one table.
	Rules []Rule `yaml:"enrich"`
}

// Dimension is a table looked up by one key column: either read through
// database/sql (JDBC) or kept current in the operator's state from a
// change stream: a table of the job's own source or a Kafka topic
// (Stream). Exactly one is set.
type Dimension struct {
	// Name is the dimension's key in Config.Dimensions (set by Defaults
	// and New; not read from YAML).
	Name string `yaml:"-"`
	JDBC JDBC   `yaml:"jdbc"`
	// Stream makes the dimension a table of the job's own source, applied
	// to a Pebble store as its changes pass through the operator, or a
	// Kafka topic the operator reads into that store.
	Stream *Stream `yaml:"stream"`
	// Columns are the dimension columns that lookups read. Empty: the
	// columns the rules add from this dimension.
	Columns []string `yaml:"columns"`
	Cache   Cache    `yaml:"cache"`
	// BatchSize is the most keys asked for by one query; default 500.
	BatchSize int `yaml:"batch_size"`
}

// JDBC says where a dimension lives. The lookup query is generated:
//
//	SELECT key, columns... FROM table WHERE key IN (...)
//
// with identifiers quoted for the driver (`x` for MySQL, "x" for
// PostgreSQL), so names must be spelled as stored (PostgreSQL folds
// unquoted names to lower case when tables are created).
type JDBC struct {
	// Driver is "mysql" (MySQL, MariaDB) or "postgres". Empty: postgres for
	// a postgres:// or postgresql:// DSN, else mysql.
	Driver string `yaml:"driver"`
	// DSN is a go-sql-driver/mysql DSN (user:pass@tcp(host:port)/db) or a
	// lib/pq connection string or URL.
	DSN string `yaml:"dsn"`
	// Table is "table" or "schema.table" ("db.table" in MySQL).
	Table string `yaml:"table"`
	// Key is the column looked up. It should be unique: of several rows
	// with one key, the first the database returns wins.
	Key string `yaml:"key"`
}

// Stream says which table of the job's source, or which Kafka topic,
// keeps a dimension current. A table's batches (as the operator chain
// emits them, after cleaning and dedupe) are applied to the operator's
// checkpointed store, and passed on unchanged; a topic's messages are
// read by the operator itself (see the package documentation).
type Stream struct {
	// Table is the source table, "db.table" as the source names it
	// (pipeline.TableID.String). Exactly one of Table and Kafka is set.
	Table string `yaml:"table"`
	// Kafka is a topic of JSON rows (or Debezium change events) that the
	// operator reads itself, every partition, from the offsets held in its
	// checkpoint.
	Kafka *KafkaTopic `yaml:"kafka"`
	// Key is the column looked up. It should be the table's primary key
	// (or unique): of several rows with one key, the last change wins.
	Key string `yaml:"key"`
	// ProbeDSN, set by the job's wiring for a MySQL source, is where the
	// column types are read when the table has not been seen yet (a fact
	// row can come before the dimension's first change). Not read from
	// YAML.
	ProbeDSN string `yaml:"-"`
}

// KafkaTopic is where a Kafka-fed stream dimension reads its changes.
type KafkaTopic struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Topic is read in full: every partition, from the start on a fresh
	// start, from the checkpoint's offsets after a restart.
	Topic string `yaml:"topic"`
}

// isSet reports whether any jdbc field was written.
func (j JDBC) isSet() bool { return j != JDBC{} }

// Cache bounds what is kept of a dimension in memory. Entries are not
// checkpoint state: lookups are as of processing time, and a restarted job
// simply looks keys up again.
type Cache struct {
	// Size is the most keys kept (found and not found); default 100,000.
	Size int `yaml:"size"`
	// TTL is how long a found row is used before it is read again; default
	// 10m. It bounds how stale an added value can be.
	TTL time.Duration `yaml:"ttl"`
	// NegativeTTL is how long "no such row" is remembered; default TTL.
	// Shorter values see new dimension rows sooner at the price of more
	// queries for keys that stay missing.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
}

// Rule adds columns of one dimension to the records of matching tables.
type Rule struct {
	// Match is a path.Match glob over "db.table", e.g. "shop.orders" or
	// "shop.*".
	Match string `yaml:"match"`
	// Dim names a dimension.
	Dim string `yaml:"dim"`
	// On is the record column whose value is looked up in the dimension's
	// key. It may be a column added by an earlier rule.
	On string `yaml:"on"`
	// Add maps a new column's name to the dimension column it is copied
	// from. New columns are appended in the order of their names (a YAML
	// map has no order), after the columns of earlier rules, and are
	// nullable.
	Add map[string]string `yaml:"add"`
	// Missing is "null" (default), "drop" or "dead_letter".
	Missing Missing `yaml:"missing"`
}

// Defaults fills unset fields of every dimension and rule: names, cache
// and batch defaults, the driver from the DSN, and a dimension's columns
// from the rules that use it.
func (c *Config) Defaults() {
	used := map[string][]string{}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Missing == "" {
			r.Missing = MissingNull
		}
		for _, from := range r.Add {
			used[r.Dim] = append(used[r.Dim], from)
		}
	}
	for name, d := range c.Dimensions {
		d.Name = name
		d.defaults()
		if len(d.Columns) == 0 {
			cols := used[name]
			slices.Sort(cols)
			d.Columns = slices.Compact(cols)
		}
		c.Dimensions[name] = d
	}
}

func (d *Dimension) defaults() {
	if d.Cache.Size == 0 {
		d.Cache.Size = DefaultCacheSize
	}
	if d.Cache.TTL == 0 {
		d.Cache.TTL = DefaultTTL
	}
	if d.Cache.NegativeTTL == 0 {
		d.Cache.NegativeTTL = d.Cache.TTL
	}
	if d.BatchSize == 0 {
		d.BatchSize = DefaultBatchSize
	}
	if d.JDBC.Driver == "" && d.Stream == nil {
		dsn := strings.ToLower(strings.TrimSpace(d.JDBC.DSN))
		if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
			d.JDBC.Driver = DriverPostgres
		} else {
			d.JDBC.Driver = DriverMySQL
		}
	}
}

// Validate reports the first invalid field, named by its YAML path
// ("dimensions.channels.cache.size: ...", "enrich[0].missing: ..."). Call
// Defaults first.
func (c *Config) Validate() error {
	names := make([]string, 0, len(c.Dimensions))
	for name := range c.Dimensions {
		names = append(names, name)
	}
	slices.Sort(names) // report the same first error every time
	for _, name := range names {
		d := c.Dimensions[name]
		if err := d.validate("dimensions." + name); err != nil {
			return err
		}
	}
	if len(c.Rules) == 0 {
		return errors.New("enrich: at least one rule is required")
	}
	for i, r := range c.Rules {
		p := fmt.Sprintf("enrich[%d]", i)
		if err := r.validate(p, c.Dimensions, names); err != nil {
			return err
		}
	}
	return nil
}

// validate checks a dimension. Its columns may be empty: a dimension no
// rule uses is never connected to, and a rule's additions must name
// columns of the dimension (checked with the rule).
func (d *Dimension) validate(p string) error {
	if d.Stream != nil {
		if err := d.validateStream(p); err != nil {
			return err
		}
	} else if j := d.JDBC; j.DSN == "" && j.Table == "" && j.Key == "" {
		return fmt.Errorf("%s: either jdbc (a database table) or stream (a table of this job's source, or a Kafka topic) is required", p)
	} else if err := d.validateJDBC(p); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, col := range d.Columns {
		if strings.TrimSpace(col) == "" {
			return fmt.Errorf("%s.columns[%d]: empty column name", p, i)
		}
		if seen[col] {
			return fmt.Errorf("%s.columns[%d]: %q is listed twice", p, i, col)
		}
		seen[col] = true
	}
	if d.Cache.Size <= 0 {
		return fmt.Errorf("%s.cache.size: must be positive", p)
	}
	if d.Cache.TTL <= 0 {
		return fmt.Errorf("%s.cache.ttl: must be positive", p)
	}
	if d.Cache.NegativeTTL <= 0 {
		return fmt.Errorf("%s.cache.negative_ttl: must be positive", p)
	}
	if d.BatchSize <= 0 || d.BatchSize > MaxBatchSize {
		return fmt.Errorf("%s.batch_size: must be between 1 and %d", p, MaxBatchSize)
	}
	return nil
}

func (d *Dimension) validateStream(p string) error {
	s := d.Stream
	if d.JDBC.isSet() {
		return fmt.Errorf("%s.stream: set either jdbc or stream, not both", p)
	}
	if s.Kafka != nil {
		if s.Table != "" {
			return fmt.Errorf("%s.stream: set either table (a table of this job's source) or kafka (a topic), not both", p)
		}
		if len(s.Kafka.Brokers) == 0 {
			return fmt.Errorf("%s.stream.kafka.brokers: required (host:port of at least one broker)", p)
		}
		for i, b := range s.Kafka.Brokers {
			if strings.TrimSpace(b) == "" {
				return fmt.Errorf("%s.stream.kafka.brokers[%d]: empty broker address", p, i)
			}
		}
		if strings.TrimSpace(s.Kafka.Topic) == "" {
			return fmt.Errorf("%s.stream.kafka.topic: required (the topic of the dimension's rows)", p)
		}
	} else if strings.TrimSpace(s.Table) == "" {
		return fmt.Errorf("%s.stream.table: required (a table of this job's source, \"db.table\"), unless stream.kafka names a topic", p)
	} else {
		for _, part := range strings.Split(s.Table, ".") {
			if part == "" {
				return fmt.Errorf("%s.stream.table: %q has an empty name part", p, s.Table)
			}
		}
	}
	if strings.TrimSpace(s.Key) == "" {
		return fmt.Errorf("%s.stream.key: required (the column looked up)", p)
	}
	return nil
}

func (d *Dimension) validateJDBC(p string) error {
	j := d.JDBC
	switch j.Driver {
	case DriverMySQL:
		if strings.TrimSpace(j.DSN) == "" {
			return fmt.Errorf("%s.jdbc.dsn: required (user:pass@tcp(host:port)/db)", p)
		}
		if _, err := mysql.ParseDSN(j.DSN); err != nil {
			return fmt.Errorf("%s.jdbc.dsn: %v", p, err)
		}
	case DriverPostgres:
		if strings.TrimSpace(j.DSN) == "" {
			return fmt.Errorf("%s.jdbc.dsn: required (postgres://user@host:port/db?sslmode=disable)", p)
		}
	default:
		return fmt.Errorf("%s.jdbc.driver: %q is not one of %q, %q", p, j.Driver, DriverMySQL, DriverPostgres)
	}
	if strings.TrimSpace(j.Table) == "" {
		return fmt.Errorf("%s.jdbc.table: required", p)
	}
	for _, part := range strings.Split(j.Table, ".") {
		if part == "" {
			return fmt.Errorf("%s.jdbc.table: %q has an empty name part", p, j.Table)
		}
	}
	if strings.Count(j.Table, ".") > 1 {
		return fmt.Errorf("%s.jdbc.table: %q: want \"table\" or \"schema.table\"", p, j.Table)
	}
	if strings.TrimSpace(j.Key) == "" {
		return fmt.Errorf("%s.jdbc.key: required (the column looked up)", p)
	}
	return nil
}

func (r *Rule) validate(p string, dims map[string]Dimension, names []string) error {
	if strings.TrimSpace(r.Match) == "" {
		return fmt.Errorf("%s.match: required (a glob over \"db.table\", e.g. \"shop.orders\")", p)
	}
	if _, err := path.Match(r.Match, ""); err != nil {
		return fmt.Errorf("%s.match: %q: %v", p, r.Match, err)
	}
	if r.Dim == "" {
		return fmt.Errorf("%s.dim: required", p)
	}
	d, ok := dims[r.Dim]
	if !ok {
		declared := "none are declared"
		if len(names) > 0 {
			declared = "declared: " + strings.Join(names, ", ")
		}
		return fmt.Errorf("%s.dim: unknown dimension %q (%s)", p, r.Dim, declared)
	}
	if strings.TrimSpace(r.On) == "" {
		return fmt.Errorf("%s.on: required (the record column to look up)", p)
	}
	if len(r.Add) == 0 {
		return fmt.Errorf("%s.add: at least one column is required ({new_column: dimension_column})", p)
	}
	for _, as := range sortedKeys(r.Add) {
		from := r.Add[as]
		if strings.TrimSpace(as) == "" {
			return fmt.Errorf("%s.add: empty column name", p)
		}
		if strings.TrimSpace(from) == "" {
			return fmt.Errorf("%s.add.%s: empty dimension column", p, as)
		}
		if !slices.Contains(d.Columns, from) {
			return fmt.Errorf("%s.add.%s: %q is not among dimensions.%s.columns %v", p, as, from, r.Dim, d.Columns)
		}
	}
	switch r.Missing {
	case MissingNull, MissingDrop, MissingDeadLetter:
	default:
		return fmt.Errorf("%s.missing: %q is not one of %q, %q, %q", p, r.Missing, MissingNull, MissingDrop, MissingDeadLetter)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
