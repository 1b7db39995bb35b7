package dedupe

import (
	"errors"
	"fmt"
	"path"
	"time"
)

// DefaultCacheSize is Pebble's block cache when cache_size is unset. The
// measurements in DESIGN.md ("Ceilings measured") show that the default 8 MB
// cache misses on almost every lookup at 10M keys. 32 MiB keeps the index
// and filter blocks (about 15 MB at 10M keys) resident with room for hot
// data blocks; 64 MiB, the earlier default, measured the same rate in the
// operator-chain benchmark at 6M keys for 28 MB more peak RSS, which put
// the job over its 400 MB budget. Lookups of uniformly random old keys
// miss the data blocks either way (the state is ~200 MB at 10M keys).
const DefaultCacheSize int64 = 32 << 20

// DefaultFilterSize is the in-memory key filter when filter_size is unset:
// 16 MiB keeps false positives near 0.5% up to 10M keys.
const DefaultFilterSize int64 = 16 << 20

// DefaultDir is where the state lives when dir is unset: next to the
// checkpoint store's default "./state".
const DefaultDir = "./state/dedupe"

// Config is the dedupe section of a job.
type Config struct {
	// Dir holds the operator's state: its live Pebble database and the
	// checkpoints of the last two Snapshots. The operator owns the
	// directory and deletes what it finds there on a fresh start.
	Dir string `yaml:"dir"`
	// CacheSize is Pebble's block cache in bytes; default 32 MiB. With
	// the key filter and the pending writes it is the operator's memory,
	// whatever the key count.
	CacheSize int64 `yaml:"cache_size"`
	// FilterSize is the in-memory filter of every key ever stored, in
	// bytes; default 16 MiB. It lets lookups of new keys that are not
	// above a table's largest key (random ids, UUIDs) skip Pebble. Size
	// it at about 1.6 bytes per expected key; a smaller one only saves
	// fewer lookups.
	FilterSize int64 `yaml:"filter_size"`
	// Tables say which tables are deduplicated and how. The first rule
	// whose match fits a table applies; tables no rule matches pass
	// through untouched.
	Tables []Rule `yaml:"tables"`
}

// Rule configures deduplication for the tables it matches.
type Rule struct {
	// Match is a path.Match glob over "db.table", e.g. "shop.orders" or
	// "shop.*".
	Match string `yaml:"match"`
	// Key names the columns that identify a row, in order. Empty: the
	// schema's primary key (pipeline.Schema.Key).
	Key []string `yaml:"key"`
	// Version names a column that orders a row's changes when the source
	// gives no sequence (Record.Seq == 0): int, long, decimal, date,
	// timestamp, timestamptz or string, compared naturally. Empty: only
	// Record.Seq orders changes.
	Version string `yaml:"version"`
	// TTL forgets a key (its last row and any tombstone) once no change to
	// it passed for this long. Zero keeps keys forever. Keys stored while
	// a rule had no TTL carry no time and count as expired once one is set.
	TTL time.Duration `yaml:"ttl"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.FilterSize == 0 {
		c.FilterSize = DefaultFilterSize
	}
}

// Validate reports the first invalid field, named by its YAML path relative
// to the dedupe section ("tables[0].ttl: must be positive"). Call Defaults
// first.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: must not be empty")
	}
	if c.CacheSize < 1<<20 {
		return fmt.Errorf("cache_size: must be at least 1 MiB, got %d", c.CacheSize)
	}
	if c.FilterSize < 64<<10 {
		return fmt.Errorf("filter_size: must be at least 64 KiB, got %d", c.FilterSize)
	}
	if len(c.Tables) == 0 {
		return errors.New("tables: at least one rule is required")
	}
	for i, r := range c.Tables {
		p := fmt.Sprintf("tables[%d]", i)
		if r.Match == "" {
			return fmt.Errorf("%s.match: must not be empty", p)
		}
		if _, err := path.Match(r.Match, "db.table"); err != nil {
			return fmt.Errorf("%s.match: %q: %w", p, r.Match, err)
		}
		seen := map[string]bool{}
		for j, k := range r.Key {
			if k == "" {
				return fmt.Errorf("%s.key[%d]: must not be empty", p, j)
			}
			if seen[k] {
				return fmt.Errorf("%s.key[%d]: column %q is listed twice", p, j, k)
			}
			seen[k] = true
		}
		if r.TTL < 0 {
			return fmt.Errorf("%s.ttl: must be positive", p)
		}
		if r.TTL > 0 && r.TTL < time.Millisecond {
			return fmt.Errorf("%s.ttl: must be at least 1ms, got %s", p, r.TTL)
		}
	}
	return nil
}

// match returns the index of the first rule matching table ("db.table"),
// or -1.
func (c *Config) match(table string) int {
	for i, r := range c.Tables {
		if ok, _ := path.Match(r.Match, table); ok {
			return i
		}
	}
	return -1
}
