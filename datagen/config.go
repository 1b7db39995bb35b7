package datagen

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Config is the `source.datagen` section of a job.
type Config struct {
	// Seed selects the data. Two runs with the same Config produce the same
	// changes; changing the seed (or anything else below except Rate and
	// BatchSize) between a checkpoint and its restore changes the data.
	Seed int64 `yaml:"seed"`
	// Tables defaults to one table "demo.orders" with preset "orders".
	Tables []TableConfig `yaml:"tables"`
	// Rate caps changes per second over all tables; 0 is unlimited.
	Rate float64 `yaml:"rate"`
	// Total is the number of changes to produce; 0 is unbounded.
	Total int64 `yaml:"total"`
	// BatchSize bounds the records per batch; default 1024.
	BatchSize int `yaml:"batch_size"`
}

// TableConfig describes one synthetic table.
type TableConfig struct {
	// Name is "namespace.table".
	Name string `yaml:"name"`
	// Preset is "orders" or "bench10"; leave it empty to give Columns.
	Preset  string         `yaml:"preset"`
	Columns []ColumnConfig `yaml:"columns"`
	// Key names the primary key columns; presets default to ["id"]. The
	// last key column carries the key number itself, so keys are unique;
	// earlier ones carry it modulo 100 (a low-cardinality prefix such as a
	// tenant).
	Key []string `yaml:"key"`
	// Keys is the size of the key space; default 10000. A change picks a
	// key uniformly: absent keys are inserted, present ones updated or
	// deleted according to Mix.
	Keys int64     `yaml:"keys"`
	Mix  MixConfig `yaml:"mix"`
	// RowSize pads one string column (the last non-key one) to about this
	// many bytes; 0 keeps natural sizes.
	RowSize int `yaml:"row_size"`
	// Weight is this table's share of the changes; default 1.
	Weight float64 `yaml:"weight"`
}

// ColumnConfig is one column of an explicit schema.
type ColumnConfig struct {
	Name string `yaml:"name"`
	// Type is a pipeline type name ("long", "string", "timestamptz", ...);
	// "decimal(p,s)" is accepted as a shorthand for Precision and Scale.
	Type     string `yaml:"type"`
	Nullable bool   `yaml:"nullable"`
	// Precision and Scale apply to decimals only; default decimal(18,2).
	Precision int `yaml:"precision"`
	Scale     int `yaml:"scale"`
}

// MixConfig weighs what happens to a key that already exists. Only the
// ratio of Delete to the rest matters: an absent key is always inserted,
// so Insert counts as update for a present key.
type MixConfig struct {
	Insert float64 `yaml:"insert"`
	Update float64 `yaml:"update"`
	Delete float64 `yaml:"delete"`
}

const (
	defaultSeed      = 1
	defaultBatchSize = 1024
	defaultKeys      = 10000
	maxBatchSize     = 1 << 20
	// maxKeys bounds the existence bitmap at 512 MiB.
	maxKeys = 1 << 32
	// maxTrackedKeys bounds lastChange at 400 MB; past it before images
	// carry the key columns only.
	maxTrackedKeys = 50_000_000
	maxRowSize     = 16 << 20
)

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Seed == 0 {
		c.Seed = defaultSeed
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if len(c.Tables) == 0 {
		c.Tables = []TableConfig{{Name: "demo.orders", Preset: "orders"}}
	}
	for i := range c.Tables {
		t := &c.Tables[i]
		if t.Keys == 0 {
			t.Keys = defaultKeys
		}
		if t.Weight == 0 {
			t.Weight = 1
		}
		if t.Mix == (MixConfig{}) {
			t.Mix = MixConfig{Update: 0.7, Delete: 0.1}
		}
		if len(t.Key) == 0 && t.Preset != "" {
			t.Key = []string{"id"}
		}
	}
}

// Validate reports the first invalid field, named as in YAML.
func (c *Config) Validate() error {
	const p = "source.datagen"
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0:
		return fmt.Errorf("%s.rate must be a non-negative number, got %v", p, c.Rate)
	case c.Total < 0:
		return fmt.Errorf("%s.total must not be negative, got %d", p, c.Total)
	case c.BatchSize <= 0:
		return fmt.Errorf("%s.batch_size must be positive, got %d", p, c.BatchSize)
	case c.BatchSize > maxBatchSize:
		return fmt.Errorf("%s.batch_size must be at most %d, got %d", p, maxBatchSize, c.BatchSize)
	case len(c.Tables) == 0:
		return fmt.Errorf("%s.tables must name at least one table", p)
	}
	seen := make(map[string]int, len(c.Tables))
	for i := range c.Tables {
		tp := fmt.Sprintf("%s.tables[%d]", p, i)
		if j, dup := seen[c.Tables[i].Name]; dup {
			return fmt.Errorf("%s.name %q is already used by %s.tables[%d]", tp, c.Tables[i].Name, p, j)
		}
		seen[c.Tables[i].Name] = i
		if _, err := buildTable(&c.Tables[i], tp); err != nil {
			return err
		}
	}
	return nil
}

// clone copies the config deeply enough that Defaults on the copy leaves
// the caller's slices alone.
func (c Config) clone() Config {
	c.Tables = append([]TableConfig(nil), c.Tables...)
	for i := range c.Tables {
		t := &c.Tables[i]
		t.Columns = append([]ColumnConfig(nil), t.Columns...)
		t.Key = append([]string(nil), t.Key...)
	}
	return c
}

// prepared returns a defaulted, validated copy.
func (c Config) prepared() (Config, error) {
	c = c.clone()
	c.Defaults()
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// Schemas returns the schemas of the configured tables, equal in value to
// those a Source emits.
func (c Config) Schemas() ([]*pipeline.Schema, error) {
	c, err := c.prepared()
	if err != nil {
		return nil, err
	}
	out := make([]*pipeline.Schema, len(c.Tables))
	for i := range c.Tables {
		t, err := buildTable(&c.Tables[i], fmt.Sprintf("source.datagen.tables[%d]", i))
		if err != nil {
			return nil, err
		}
		out[i] = t.schema
	}
	return out, nil
}

// parseTableName splits "namespace.table" at its last dot so that
// multi-level namespaces ("a.b.t") keep working.
func parseTableName(s string) (pipeline.TableID, bool) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 || strings.TrimSpace(s) != s {
		return pipeline.TableID{}, false
	}
	return pipeline.TableID{Namespace: s[:i], Name: s[i+1:]}, true
}

// parseColumnType accepts pipeline type names and "decimal(p,s)".
func parseColumnType(cc ColumnConfig) (pipeline.Column, error) {
	col := pipeline.Column{Name: cc.Name, Nullable: cc.Nullable, Precision: cc.Precision, Scale: cc.Scale}
	ts := strings.TrimSpace(cc.Type)
	if open := strings.IndexByte(ts, '('); open > 0 && strings.HasSuffix(ts, ")") &&
		strings.EqualFold(strings.TrimSpace(ts[:open]), "decimal") {
		ps := strings.Split(ts[open+1:len(ts)-1], ",")
		if len(ps) != 2 {
			return col, fmt.Errorf("type %q: expected decimal(precision,scale)", cc.Type)
		}
		pr, err1 := strconv.Atoi(strings.TrimSpace(ps[0]))
		sc, err2 := strconv.Atoi(strings.TrimSpace(ps[1]))
		if err1 != nil || err2 != nil {
			return col, fmt.Errorf("type %q: expected decimal(precision,scale)", cc.Type)
		}
		if (cc.Precision != 0 && cc.Precision != pr) || (cc.Scale != 0 && cc.Scale != sc) {
			return col, fmt.Errorf("type %q contradicts precision %d and scale %d", cc.Type, cc.Precision, cc.Scale)
		}
		col.Type, col.Precision, col.Scale = pipeline.TypeDecimal, pr, sc
	} else {
		t, err := pipeline.ParseType(ts)
		if err != nil {
			return col, err
		}
		col.Type = t
	}
	if col.Type != pipeline.TypeDecimal {
		if cc.Precision != 0 || cc.Scale != 0 {
			return col, fmt.Errorf("precision and scale apply to decimal columns only, not %s", col.Type)
		}
		return col, nil
	}
	if col.Precision == 0 && col.Scale == 0 {
		col.Precision, col.Scale = 18, 2
	}
	switch {
	case col.Precision < 1 || col.Precision > 18:
		return col, fmt.Errorf("decimal precision must be between 1 and 18, got %d", col.Precision)
	case col.Scale < 0 || col.Scale > col.Precision:
		return col, fmt.Errorf("decimal scale must be between 0 and the precision %d, got %d", col.Precision, col.Scale)
	}
	return col, nil
}
