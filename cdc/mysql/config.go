package mysql

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// DefaultServerID is the replica id the source registers with when
// Config.ServerID is 0. It must differ from every server and every other
// replica of the same primary.
const DefaultServerID uint32 = 54321

// Config is the `source.mysql` section of a job.
type Config struct {
	// DSN is a go-sql-driver/mysql DSN, user:pass@tcp(host:port)/. It is
	// used for metadata queries and server checks, and its user, password
	// and address for the binlog connection (TCP only, no TLS yet).
	DSN string `yaml:"dsn"`
	// ServerID is the replica id; default 54321.
	ServerID uint32 `yaml:"server_id"`
	// Flavor is "mysql" or "mariadb"; empty detects it from VERSION().
	Flavor string `yaml:"flavor"`
	// Tables are regular expressions over "db.table", matched against the
	// whole name (they are anchored), e.g. `shop\.(orders|items)`.
	Tables []string `yaml:"tables"`
	// StartGTID is where a first start begins (a MariaDB GTID position
	// "0-1-42" or a MySQL GTID set); default: the server's current GTID
	// position when the source first opens. A restored checkpoint wins.
	StartGTID string `yaml:"start_gtid"`
	// StartPosition is a first start's position as "binlog-file:offset"
	// (e.g. from a backup's metadata), instead of StartGTID: the source
	// turns it into the GTID set of the transactions before it, once, and
	// works by GTID from then on. The offset must fall between
	// transactions.
	StartPosition string `yaml:"start_position"`
	// Snapshot says whether the tables' existing rows are read before
	// streaming: "initial" (read them, chunk by chunk, interleaved with the
	// binlog, then stream), "never" (stream only) or "initial_only" (read
	// them and stop: backfill). Default "initial", or "never" when
	// StartGTID is set (a given position means the rows before it are
	// already in the lake).
	Snapshot string `yaml:"snapshot"`
	// SnapshotMethod is how a chunk is reconciled with the binlog: "position"
	// reads the chunk in a consistent snapshot whose binlog position
	// MariaDB reports (binlog_snapshot_file/position) and needs no
	// reconciliation; "watermark" brackets the chunk's snapshot between a
	// low and a high watermark and drops the chunk's rows that the binlog
	// changed in between (the DBLog algorithm; MySQL has no snapshot
	// position, so it always uses this). Default: "position" on MariaDB,
	// "watermark" on MySQL.
	SnapshotMethod string `yaml:"snapshot_method"`
	// ChunkSize is the number of rows one snapshot chunk reads, by primary
	// key order; default 10000.
	ChunkSize int `yaml:"chunk_size"`
	// SnapshotParallel is how many chunks are read at once; default 2.
	SnapshotParallel int `yaml:"snapshot_parallel"`
	// Keys names the columns that stand in for the primary key of tables
	// that have none, by "db.table". They should be unique and not null:
	// the lake's upsert tables keep one row per key.
	Keys map[string][]string `yaml:"keys"`
	// Heartbeat is the period at which an idle server sends heartbeats, so
	// that an idle stream still reports its position and a dead connection
	// is noticed (after 3 missed heartbeats); default 2s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// ReconnectTimeout is how long a lost binlog stream is retried, with
	// backoff from 250ms to 30s, before the run fails; default 5m.
	ReconnectTimeout time.Duration `yaml:"reconnect_timeout"`
	// TLS, when set, encrypts every connection to the server.
	TLS *TLSConfig `yaml:"tls"`
	// DDL says what a DDL statement on a captured table does: "evolve"
	// (default) changes the lake tables' schemas with it and fails the run
	// on a change they cannot follow (a type change beyond widening, a
	// changed primary key, TRUNCATE, DROP or RENAME of the table); "skip"
	// does the same but leaves out what the lake cannot follow, logging
	// it; "fail" fails the run on any DDL of a captured table. See doc.go.
	DDL string `yaml:"ddl"`
}

// DDL policies.
const (
	DDLEvolve = "evolve"
	DDLSkip   = "skip"
	DDLFail   = "fail"
)

// Snapshot modes.
const (
	SnapshotInitial     = "initial"
	SnapshotNever       = "never"
	SnapshotInitialOnly = "initial_only"
)

// Snapshot methods.
const (
	MethodPosition  = "position"
	MethodWatermark = "watermark"
)

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.ServerID == 0 {
		c.ServerID = DefaultServerID
	}
	c.Flavor = strings.ToLower(strings.TrimSpace(c.Flavor))
	c.Snapshot = strings.ToLower(strings.TrimSpace(c.Snapshot))
	if c.Snapshot == "" {
		c.Snapshot = SnapshotInitial
		if c.StartGTID != "" || c.StartPosition != "" {
			c.Snapshot = SnapshotNever
		}
	}
	c.SnapshotMethod = strings.ToLower(strings.TrimSpace(c.SnapshotMethod))
	if c.ChunkSize == 0 {
		c.ChunkSize = 10000
	}
	if c.SnapshotParallel == 0 {
		c.SnapshotParallel = 2
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = 5 * time.Minute
	}
	c.DDL = strings.ToLower(strings.TrimSpace(c.DDL))
	if c.DDL == "" {
		c.DDL = DDLEvolve
	}
}

const prefix = "source.mysql"

// Validate reports the first invalid field, named as in the job's YAML.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DSN) == "" {
		return fmt.Errorf("%s.dsn: required (user:pass@tcp(host:port)/)", prefix)
	}
	dc, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	if dc.Net != "tcp" {
		return fmt.Errorf("%s.dsn: the binlog connection needs tcp(host:port), got network %q", prefix, dc.Net)
	}
	if _, _, err := splitAddr(dc.Addr); err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	if c.ServerID == 0 {
		return fmt.Errorf("%s.server_id: must not be 0", prefix)
	}
	switch c.Flavor {
	case "", gomysql.MySQLFlavor, gomysql.MariaDBFlavor:
	default:
		return fmt.Errorf("%s.flavor: %q is not one of \"mysql\", \"mariadb\" (or empty to detect)", prefix, c.Flavor)
	}
	if len(c.Tables) == 0 {
		return fmt.Errorf("%s.tables: at least one regular expression over \"db.table\" is required", prefix)
	}
	for i, t := range c.Tables {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s.tables[%d]: empty expression", prefix, i)
		}
		if _, err := regexp.Compile(anchor(t)); err != nil {
			return fmt.Errorf("%s.tables[%d]: %v", prefix, i, err)
		}
	}
	switch c.Snapshot {
	case SnapshotInitial, SnapshotNever, SnapshotInitialOnly:
	default:
		return fmt.Errorf("%s.snapshot: %q is not one of \"initial\", \"never\", \"initial_only\"", prefix, c.Snapshot)
	}
	switch c.SnapshotMethod {
	case "", MethodPosition, MethodWatermark:
	default:
		return fmt.Errorf("%s.snapshot_method: %q is not one of \"position\", \"watermark\" (or empty for the flavor's default)", prefix, c.SnapshotMethod)
	}
	if c.SnapshotMethod == MethodPosition && c.Flavor == gomysql.MySQLFlavor {
		return fmt.Errorf("%s.snapshot_method: \"position\" needs MariaDB's consistent-snapshot binlog position; MySQL uses \"watermark\"", prefix)
	}
	if c.StartPosition != "" {
		if c.StartGTID != "" {
			return fmt.Errorf("%s.start_position: set start_gtid or start_position, not both", prefix)
		}
		if _, _, err := parseStartPosition(c.StartPosition); err != nil {
			return fmt.Errorf("%s.start_position: %v", prefix, err)
		}
		if c.Snapshot != SnapshotNever {
			return fmt.Errorf("%s.start_position: a start position skips the snapshot; set snapshot: never (it is %q)", prefix, c.Snapshot)
		}
	}
	if c.StartGTID != "" && c.Snapshot != SnapshotNever {
		return fmt.Errorf("%s.start_gtid: a start position skips the snapshot; set snapshot: never (it is %q)", prefix, c.Snapshot)
	}
	if c.ChunkSize < 1 {
		return fmt.Errorf("%s.chunk_size: must be positive, got %d", prefix, c.ChunkSize)
	}
	if c.SnapshotParallel < 1 || c.SnapshotParallel > 16 {
		return fmt.Errorf("%s.snapshot_parallel: must be 1 to 16, got %d", prefix, c.SnapshotParallel)
	}
	if c.Heartbeat < 100*time.Millisecond {
		return fmt.Errorf("%s.heartbeat: must be at least 100ms, got %s", prefix, c.Heartbeat)
	}
	if c.TLS != nil {
		if err := c.TLS.validate(); err != nil {
			return err
		}
	}
	if c.ReconnectTimeout < 0 {
		return fmt.Errorf("%s.reconnect_timeout: must not be negative, got %s", prefix, c.ReconnectTimeout)
	}
	switch c.DDL {
	case DDLEvolve, DDLSkip, DDLFail:
	default:
		return fmt.Errorf("%s.ddl: %q is not one of \"evolve\", \"skip\", \"fail\"", prefix, c.DDL)
	}
	for name, cols := range c.Keys {
		if !strings.Contains(name, ".") {
			return fmt.Errorf("%s.keys.%s: name the table as \"db.table\"", prefix, name)
		}
		if len(cols) == 0 {
			return fmt.Errorf("%s.keys.%s: at least one column", prefix, name)
		}
	}
	if c.StartGTID != "" && c.Flavor != "" {
		if _, err := gomysql.ParseGTIDSet(c.Flavor, c.StartGTID); err != nil {
			return fmt.Errorf("%s.start_gtid: %q is not a %s GTID set: %v", prefix, c.StartGTID, c.Flavor, err)
		}
	}
	return nil
}

func anchor(re string) string { return "^(?:" + re + ")$" }

// matcher reports whether "db.table" is captured.
type matcher []*regexp.Regexp

func newMatcher(res []string) (matcher, error) {
	m := make(matcher, 0, len(res))
	for i, r := range res {
		re, err := regexp.Compile(anchor(r))
		if err != nil {
			return nil, fmt.Errorf("%s.tables[%d]: %v", prefix, i, err)
		}
		m = append(m, re)
	}
	return m, nil
}

func (m matcher) match(db, table string) bool {
	name := db + "." + table
	for _, re := range m {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}
