package main

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/dedupe"
	"github.com/sluice-cdc/sluice/pipeline"
	"github.com/sluice-cdc/sluice/pipeline/clean"
	"github.com/sluice-cdc/sluice/pipeline/enrich"
)

// TransformConfig is one entry of transforms: what happens to one source
// table's changes between its changelog (ODS, written as read) and its
// current-state table (DWD). The cleaning steps sit inline; dedupe and
// enrich run after them, in that order.
type TransformConfig struct {
	clean.Rule `yaml:",inline"`
	// Dedupe drops replays, out-of-order and no-op changes by key.
	Dedupe *DedupeRuleConfig `yaml:"dedupe"`
	// Enrich adds columns from dimensions (declared under dimensions).
	Enrich []EnrichRuleConfig `yaml:"enrich"`
}

// DedupeRuleConfig is a table's dedupe settings.
type DedupeRuleConfig struct {
	// Key is the row's identity; default the table's primary key.
	Key []string `yaml:"key"`
	// Version orders a row's changes when the source gives no sequence.
	Version string `yaml:"version"`
	// TTL forgets keys untouched this long; 0 keeps them.
	TTL time.Duration `yaml:"ttl"`
}

// EnrichRuleConfig is one lookup join of a table.
type EnrichRuleConfig struct {
	Dim     string            `yaml:"dim"`
	On      string            `yaml:"on"`
	Add     map[string]string `yaml:"add"`
	Missing enrich.Missing    `yaml:"missing"`
}

// DedupeSettings are the dedupe operator's process-wide settings.
type DedupeSettings struct {
	// CacheSize is the state store's block cache in bytes (default 32 MiB):
	// the bulk of dedupe's memory, whatever the number of keys.
	CacheSize int64 `yaml:"cache_size"`
}

// cleanRules returns the transforms' cleaning rules, index for index.
func cleanRules(ts []TransformConfig) []clean.Rule {
	out := make([]clean.Rule, len(ts))
	for i := range ts {
		out[i] = ts[i].Rule
	}
	return out
}

func (cfg *JobConfig) dedupeConfig() dedupe.Config {
	dc := dedupe.Config{Dir: filepath.Join(cfg.Checkpoint.Dir, "dedupe"), CacheSize: cfg.Dedupe.CacheSize}
	for _, t := range cfg.Transforms {
		if t.Dedupe != nil {
			dc.Tables = append(dc.Tables, dedupe.Rule{Match: t.Match, Key: t.Dedupe.Key, Version: t.Dedupe.Version, TTL: t.Dedupe.TTL})
		}
	}
	return dc
}

func (cfg *JobConfig) enrichConfig() enrich.Config {
	ec := enrich.Config{Dimensions: cfg.Dimensions}
	for _, t := range cfg.Transforms {
		for _, e := range t.Enrich {
			ec.Rules = append(ec.Rules, enrich.Rule{Match: t.Match, Dim: e.Dim, On: e.On, Add: e.Add, Missing: e.Missing})
		}
	}
	return ec
}

// enrichPaths maps the enrich package's rule index back to the job
// file's transforms[i].enrich[j].
func (cfg *JobConfig) enrichPath(k int) string {
	for i, t := range cfg.Transforms {
		if k < len(t.Enrich) {
			return fmt.Sprintf("transforms[%d].enrich[%d]", i, k)
		}
		k -= len(t.Enrich)
	}
	return "transforms"
}

// validateTransforms checks transforms and dimensions without connecting:
// expressions are compiled for syntax here, and against the table's
// schema when the source knows its schemas up front (datagen).
func (l *loader) validateTransforms(cfg *JobConfig) error {
	if len(cfg.Transforms) == 0 {
		if len(cfg.Dimensions) > 0 {
			return l.errPath("dimensions", errors.New("dimensions: declared but no transforms[].enrich uses them"))
		}
		return nil
	}
	rules := cleanRules(cfg.Transforms)
	if err := clean.Validate(rules); err != nil {
		return l.cleanError(err)
	}
	if d := cfg.Source.Datagen; d != nil {
		schemas, err := d.Schemas()
		if err != nil {
			return l.errPath("source.datagen", err)
		}
		for _, s := range schemas {
			if _, err := clean.Compile(rules, s); err != nil {
				return l.cleanError(err)
			}
		}
	}
	for i, t := range cfg.Transforms {
		if t.Dedupe == nil && len(t.Enrich) == 0 && !hasCleanSteps(&t.Rule) {
			return l.errPath(fmt.Sprintf("transforms[%d]", i), fmt.Errorf("transforms[%d]: the rule for %q does nothing (no cleaning step, dedupe or enrich)", i, t.Match))
		}
	}
	if cfg.dedupeUsed() {
		dc := cfg.dedupeConfig()
		dc.Defaults()
		if err := dc.Validate(); err != nil {
			// "tables[k].ttl: ..." is the k-th transform with a dedupe.
			msg := err.Error()
			if m := indexedPrefix.FindStringSubmatch(msg); m != nil && m[1] == "tables" {
				k, _ := strconv.Atoi(m[2])
				for i, t := range cfg.Transforms {
					if t.Dedupe == nil {
						continue
					}
					if k == 0 {
						p := fmt.Sprintf("transforms[%d].dedupe", i)
						return l.errPath(p, fmt.Errorf("%s%s", p, msg[len(m[0]):]))
					}
					k--
				}
			}
			return l.errPath("transforms", err)
		}
	}
	ec := cfg.enrichConfig()
	if len(ec.Rules) > 0 || len(ec.Dimensions) > 0 {
		if len(ec.Rules) == 0 {
			return l.errPath("dimensions", errors.New("dimensions: declared but no transforms[].enrich uses them"))
		}
		ec.Defaults()
		if err := ec.Validate(); err != nil {
			msg := err.Error()
			if m := indexedPrefix.FindStringSubmatch(msg); m != nil && m[1] == "enrich" {
				k, _ := strconv.Atoi(m[2])
				p := cfg.enrichPath(k)
				return l.errPath(p, fmt.Errorf("%s%s", p, msg[len(m[0]):]))
			}
			return l.errPath("dimensions", err)
		}
		if err := l.validateStreams(cfg); err != nil {
			return err
		}
	}
	return nil
}

// validateStreams checks that each stream dimension reads a table this
// job's source captures and, when the source knows its schemas up front
// (datagen), that the table has the key and the columns.
func (l *loader) validateStreams(cfg *JobConfig) error {
	names := slices.Sorted(maps.Keys(cfg.Dimensions))
	var schemas []*pipeline.Schema
	if d := cfg.Source.Datagen; d != nil {
		var err error
		if schemas, err = d.Schemas(); err != nil {
			return l.errPath("source.datagen", err)
		}
	}
	for _, name := range names {
		st := cfg.Dimensions[name].Stream
		if st == nil || st.Kafka != nil {
			// A Kafka-fed dimension's topic is checked when the job opens
			// it; its rows have no schema to check columns against.
			continue
		}
		p := "dimensions." + name
		if m := cfg.Source.MySQL; m != nil {
			captured := false
			for _, re := range m.Tables {
				if ok, _ := regexp.MatchString("^(?:"+re+")$", st.Table); ok {
					captured = true
				}
			}
			if !captured {
				return l.errPath(p+".stream.table", fmt.Errorf("%s.stream.table: %s is not captured by source.mysql.tables %q; a stream dimension is kept from a table this job's source reads", p, st.Table, m.Tables))
			}
		}
		if schemas == nil {
			continue
		}
		i := slices.IndexFunc(schemas, func(s *pipeline.Schema) bool { return s.Table.String() == st.Table })
		if i < 0 {
			return l.errPath(p+".stream.table", fmt.Errorf("%s.stream.table: %s is not a table of source.datagen", p, st.Table))
		}
		s := schemas[i]
		if s.ColumnIndex(st.Key) < 0 {
			return l.errPath(p+".stream.key", fmt.Errorf("%s.stream.key: table %s has no column %q (columns: %s)", p, st.Table, st.Key, strings.Join(schemaColumns(s), ", ")))
		}
		for _, c := range cfg.enrichColumns(name) {
			if s.ColumnIndex(c) < 0 {
				return l.errPath(p+".columns", fmt.Errorf("%s.columns: table %s has no column %q (columns: %s)", p, st.Table, c, strings.Join(schemaColumns(s), ", ")))
			}
		}
	}
	return nil
}

// enrichColumns are the dimension's columns after defaults: declared, or
// those its rules add.
func (cfg *JobConfig) enrichColumns(dim string) []string {
	ec := cfg.enrichConfig()
	ec.Dimensions = maps.Clone(ec.Dimensions)
	ec.Defaults()
	return ec.Dimensions[dim].Columns
}

func schemaColumns(s *pipeline.Schema) []string {
	out := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		out[i] = c.Name
	}
	return out
}

// indexedPrefix matches an error's leading "name[k]".
var indexedPrefix = regexp.MustCompile(`^([a-z_]+)\[(\d+)\]`)

func (cfg *JobConfig) dedupeUsed() bool {
	for _, t := range cfg.Transforms {
		if t.Dedupe != nil {
			return true
		}
	}
	return false
}

func hasCleanSteps(r *clean.Rule) bool {
	return r.Where != "" || r.Reject != "" || len(r.Select) > 0 || len(r.Drop) > 0 || len(r.Rename) > 0 ||
		len(r.Cast) > 0 || len(r.Trim) > 0 || len(r.Lower) > 0 || len(r.Upper) > 0 || len(r.Normalize) > 0 ||
		len(r.NullIf) > 0 || len(r.Defaults) > 0 || len(r.Columns) > 0
}

// cleanError points a clean.Error at its rule's key in the file.
func (l *loader) cleanError(err error) error {
	var ce *clean.Error
	if errors.As(err, &ce) && ce.Rule >= 0 {
		p := fmt.Sprintf("transforms[%d]", ce.Rule)
		// Point at the expression's own key when the file has it (the
		// type-directed lookup of errPath cannot see into columns).
		for q := p + "." + ce.Path; q != p; q, _, _ = cutLast(q, ".") {
			if n := l.lookup(q); n != nil {
				return l.errAt(n, "%s.%s", p, ce.Error())
			}
		}
		return l.errPath(p, fmt.Errorf("%s.%s", p, ce.Error()))
	}
	return l.errPath("transforms", err)
}

// buildOperators turns transforms into the operator chain: clean, then
// dedupe, then enrich, each only when some table uses it.
func buildOperators(cfg *JobConfig, log *zap.Logger) ([]pipeline.Operator, error) {
	if len(cfg.Transforms) == 0 {
		return nil, nil
	}
	var ops []pipeline.Operator
	rules := cleanRules(cfg.Transforms)
	var cleaning []clean.Rule
	for _, r := range rules {
		if hasCleanSteps(&r) {
			cleaning = append(cleaning, r)
		}
	}
	if len(cleaning) > 0 {
		op, err := clean.New(cleaning)
		if err != nil {
			return nil, fmt.Errorf("transforms: %w", err)
		}
		ops = append(ops, op)
	}
	if cfg.dedupeUsed() {
		op, err := dedupe.New(cfg.dedupeConfig(), log.Named("dedupe"))
		if err != nil {
			return nil, fmt.Errorf("transforms: dedupe: %w", err)
		}
		ops = append(ops, op)
	}
	if ec := cfg.enrichConfig(); len(ec.Rules) > 0 {
		ec.Dimensions = maps.Clone(ec.Dimensions)
		for name, d := range ec.Dimensions {
			if d.Stream != nil && d.Stream.Kafka == nil && cfg.Source.MySQL != nil {
				// The source's own server can say the column types before
				// the dimension's first change arrives.
				st := *d.Stream
				st.ProbeDSN = cfg.Source.MySQL.DSN
				d.Stream = &st
				ec.Dimensions[name] = d
			}
		}
		ec.Defaults()
		op, err := enrich.New(ec.Dimensions, ec.Rules, enrich.WithStateDir(filepath.Join(cfg.Checkpoint.Dir, "enrich")))
		if err != nil {
			return nil, fmt.Errorf("transforms: enrich: %w", err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}
