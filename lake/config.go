package lake

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Config is the sink section of a job.
type Config struct {
	Catalog   CatalogConfig `yaml:"catalog"`
	Warehouse string        `yaml:"warehouse"`
	// Namespace is used for table names whose template has no namespace.
	Namespace string `yaml:"namespace"`
	// S3 configures object storage for s3:// warehouses. Unset fields fall
	// back to the standard AWS chain (environment, shared config, IMDS).
	S3     S3Config      `yaml:"s3"`
	Tables []TableConfig `yaml:"tables"`
	// DeadLetters names the append table that records rejected by the
	// operator chain go to, with their reason, raw form and position;
	// {job} is replaced by the job id ('-' as '_'). A dot names a
	// namespace. Default "dead_letters_{job}".
	DeadLetters string `yaml:"dead_letters"`
	// FormatVersion of created tables: 2 (default) or 3.
	FormatVersion int `yaml:"format_version"`
	// TargetFileSize in bytes for data files (default 128 MiB).
	TargetFileSize int64 `yaml:"target_file_size"`
	// RowGroupRows caps Parquet row groups (default 100,000 rows) so that
	// the rolling writer can roll files at TargetFileSize: file size is
	// only checked between row groups.
	RowGroupRows int `yaml:"row_group_rows"`
	// FlushRows bounds the rows a table buffers in memory (default
	// 150,000). Past it the buffer is written out as a segment of the
	// checkpoint; a checkpoint's segments commit as successive snapshots of
	// one transaction, so memory does not grow with the checkpoint.
	FlushRows int `yaml:"flush_rows"`
	// CommitRetries bounds retries of a commit that lost a race or whose
	// outcome is unknown (default 10).
	CommitRetries int `yaml:"commit_retries"`
}

// CatalogConfig selects and configures an Iceberg catalog.
type CatalogConfig struct {
	// Type is sql, rest, glue or hive.
	Type string `yaml:"type"`
	// Name of the catalog (default "sluice").
	Name string `yaml:"name"`
	// URI: for sql, sqlite://PATH or postgres://...; for rest, the base
	// URL; for hive, thrift://host:port. Glue takes none.
	URI string `yaml:"uri"`
	// Properties are passed to the catalog as they are (credentials,
	// OAuth settings, glue.region, ...).
	Properties map[string]string `yaml:"properties"`
}

// S3Config configures the S3 file IO of the warehouse.
type S3Config struct {
	Endpoint        string `yaml:"endpoint"`
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
}

// Mode is how a source table's changes land in an Iceberg table.
type Mode string

const (
	// ModeAppend writes every change as a row with _op, _pos and
	// _event_time columns: the changelog (ODS layer).
	ModeAppend Mode = "append"
	// ModeUpsert keeps the current state by primary key (DWD layer).
	ModeUpsert Mode = "upsert"
)

// TableConfig routes source tables matching Match to Iceberg tables.
type TableConfig struct {
	// Match is a glob over "namespace.table" of the source (path.Match
	// syntax: shop.*, *.orders). The first matching entry wins.
	Match string `yaml:"match"`
	// ODS and DWD are name templates for the append and upsert tables;
	// {db} and {table} are replaced by the source names. Either may be
	// empty to skip that layer; a template with a dot names a namespace.
	ODS string `yaml:"ods"`
	DWD string `yaml:"dwd"`
	// Partition is a list of transforms: "id", "bucket(16, id)",
	// "truncate(4, name)", "day(ts)", "hour(ts)", "month(ts)", "year(ts)".
	Partition []string `yaml:"partition"`
	// Properties are Iceberg table properties set at creation.
	Properties map[string]string `yaml:"properties"`
}

// Defaults fills unset fields with the embedded default lake.
func (c *Config) Defaults() {
	if c.Catalog.Type == "" {
		c.Catalog.Type = "sql"
	}
	if c.Catalog.Name == "" {
		c.Catalog.Name = "sluice"
	}
	if c.Catalog.Type == "sql" && c.Catalog.URI == "" {
		c.Catalog.URI = "sqlite://./lake/catalog.db"
	}
	if c.Warehouse == "" {
		c.Warehouse = "file://./lake/warehouse"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if len(c.Tables) == 0 {
		c.Tables = []TableConfig{{Match: "*", DWD: "{db}_{table}"}}
	}
	if c.DeadLetters == "" {
		c.DeadLetters = "dead_letters_{job}"
	}
	if c.FormatVersion == 0 {
		c.FormatVersion = 2
	}
	if c.TargetFileSize == 0 {
		c.TargetFileSize = 128 << 20
	}
	if c.RowGroupRows == 0 {
		c.RowGroupRows = 100_000
	}
	if c.FlushRows == 0 {
		c.FlushRows = 150_000
	}
	if c.CommitRetries == 0 {
		c.CommitRetries = 10
	}
}

// Validate reports the first invalid field, named as in the YAML.
func (c *Config) Validate() error {
	switch c.Catalog.Type {
	case "sql":
		if !strings.HasPrefix(c.Catalog.URI, "sqlite://") && !strings.HasPrefix(c.Catalog.URI, "postgres://") && !strings.HasPrefix(c.Catalog.URI, "postgresql://") {
			return fmt.Errorf("sink.catalog.uri: a sql catalog needs sqlite://PATH or postgres://..., got %q", c.Catalog.URI)
		}
	case "rest", "hive":
		if c.Catalog.URI == "" {
			return fmt.Errorf("sink.catalog.uri is required for a %s catalog", c.Catalog.Type)
		}
	case "glue":
	default:
		return fmt.Errorf("sink.catalog.type: expected sql, rest, glue or hive, got %q", c.Catalog.Type)
	}
	if !strings.HasPrefix(c.Warehouse, "file://") && !strings.HasPrefix(c.Warehouse, "s3://") && !strings.HasPrefix(c.Warehouse, "s3a://") {
		if c.Catalog.Type == "sql" {
			return fmt.Errorf("sink.warehouse: expected file://PATH or s3://BUCKET/PREFIX, got %q", c.Warehouse)
		}
	}
	if c.FormatVersion != 2 && c.FormatVersion != 3 {
		return fmt.Errorf("sink.format_version: expected 2 or 3, got %d", c.FormatVersion)
	}
	if c.TargetFileSize < 1<<20 {
		return fmt.Errorf("sink.target_file_size: must be at least 1 MiB, got %d", c.TargetFileSize)
	}
	if c.RowGroupRows < 1000 {
		return fmt.Errorf("sink.row_group_rows: must be at least 1000, got %d", c.RowGroupRows)
	}
	if c.FlushRows < 1 {
		return fmt.Errorf("sink.flush_rows: must be positive, got %d", c.FlushRows)
	}
	for i, t := range c.Tables {
		if t.Match == "" {
			return fmt.Errorf("sink.tables[%d].match is required", i)
		}
		if _, err := path.Match(t.Match, "x.y"); err != nil {
			return fmt.Errorf("sink.tables[%d].match %q: %w", i, t.Match, err)
		}
		if t.ODS == "" && t.DWD == "" {
			return fmt.Errorf("sink.tables[%d]: set ods, dwd or both", i)
		}
		for j, p := range t.Partition {
			if _, err := parsePartitionField(p); err != nil {
				return fmt.Errorf("sink.tables[%d].partition[%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// Target is one Iceberg table a source table is written to.
type Target struct {
	Namespace string
	Name      string
	Mode      Mode
	Table     *TableConfig
}

func (t Target) String() string { return t.Namespace + "." + t.Name }

var errNoRoute = errors.New("no sink.tables entry matches")

// DeadLetterTarget is the append table a job's dead letters go to.
func (c *Config) DeadLetterTarget(job string) Target {
	name := strings.ReplaceAll(c.DeadLetters, "{job}", strings.ReplaceAll(job, "-", "_"))
	ns := c.Namespace
	if before, after, ok := strings.Cut(name, "."); ok {
		ns, name = before, after
	}
	return Target{Namespace: ns, Name: name, Mode: ModeAppend, Table: &TableConfig{Match: pipeline.DeadLetterTable.String()}}
}

// Route returns the Iceberg tables that a source table is written to.
func (c *Config) Route(src pipeline.TableID) ([]Target, error) {
	full := src.String()
	for i := range c.Tables {
		tc := &c.Tables[i]
		if ok, _ := path.Match(tc.Match, full); !ok {
			continue
		}
		var out []Target
		for _, l := range []struct {
			tmpl string
			mode Mode
		}{{tc.ODS, ModeAppend}, {tc.DWD, ModeUpsert}} {
			if l.tmpl == "" {
				continue
			}
			name := strings.NewReplacer("{db}", src.Namespace, "{table}", src.Name).Replace(l.tmpl)
			ns := c.Namespace
			if before, after, ok := strings.Cut(name, "."); ok {
				ns, name = before, after
			}
			out = append(out, Target{Namespace: ns, Name: name, Mode: l.mode, Table: tc})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w source table %s", errNoRoute, full)
}
