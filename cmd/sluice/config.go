package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/sluice-cdc/sluice/cdc/mysql"
	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/datagen"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline/enrich"
)

// JobConfig is one job file: one source configuration, one lake.
type JobConfig struct {
	// Job is the job id; it goes into every Iceberg snapshot summary and
	// owns the checkpoint directory, so it must be stable and path-safe.
	Job        string            `yaml:"job"`
	Source     SourceConfig      `yaml:"source"`
	Sink       lake.Config       `yaml:"sink"`
	Checkpoint checkpoint.Config `yaml:"checkpoint"`
	Log        LogConfig         `yaml:"log"`
	// Transforms clean, deduplicate and enrich tables on their way to
	// their current-state (DWD) tables; the changelog (ODS) gets the
	// changes as read.
	Transforms []TransformConfig `yaml:"transforms"`
	// Dimensions are the lookup tables transforms[].enrich reads.
	Dimensions map[string]enrich.Dimension `yaml:"dimensions"`
	// Dedupe holds the dedupe operator's process-wide settings.
	Dedupe DedupeSettings `yaml:"dedupe"`
	// Process tunes the process: its Go memory limit.
	Process ProcessConfig `yaml:"process"`
}

// SourceConfig has one pointer field per source kind; exactly one is set.
// It is the only place that lists the kinds besides the switch in wire.go:
// an explicit list keeps what a binary can read visible in one file,
// where init()-time registries would hide it behind blank imports.
type SourceConfig struct {
	Datagen *datagen.Config `yaml:"datagen"`
	MySQL   *mysql.Config   `yaml:"mysql"`
}

// kinds returns the yaml names of the source kinds that are set.
func (s *SourceConfig) kinds() []string {
	var out []string
	if s.Datagen != nil {
		out = append(out, "datagen")
	}
	if s.MySQL != nil {
		out = append(out, "mysql")
	}
	return out
}

// LogConfig configures the process's logger.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is auto (default: console on a terminal, JSON otherwise),
	// console or json.
	Format string `yaml:"format"`
}

// Defaults fills unset fields.
func (c *LogConfig) Defaults() {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format == "" {
		c.Format = "auto"
	}
}

// Validate reports the first invalid field, named as in the YAML.
func (c *LogConfig) Validate() error {
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: expected debug, info, warn or error, got %q", c.Level)
	}
	switch c.Format {
	case "auto", "console", "json":
	default:
		return fmt.Errorf("log.format: expected auto, console or json, got %q", c.Format)
	}
	return nil
}

var jobIDPattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// ConfigError is a configuration error located in the job file. Error()
// is one line, "file:line:col: message", so that editors and CI logs can
// jump to it; Snippet is the surrounding source for humans.
type ConfigError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
	// Snippet shows the lines before the error from the file as written
	// (before environment interpolation, so that secrets from the
	// environment are not echoed).
	Snippet string
	Err     error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads, interpolates, parses and validates a job file.
// Nothing is connected to.
func LoadConfig(file string) (*JobConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("cannot read job file: %v", err), Err: err}
	}
	return parseConfig(file, data, os.LookupEnv)
}

// parseConfig is LoadConfig on bytes, with the environment injected so
// that tests need not mutate the process environment.
func parseConfig(file string, data []byte, lookupEnv func(string) (string, bool)) (*JobConfig, error) {
	l := &loader{file: file, raw: strings.Split(string(data), "\n")}
	text, err := l.interpolate(lookupEnv)
	if err != nil {
		return nil, err
	}
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		return nil, l.yamlError(err)
	}
	var body ast.Node
	docs := 0
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		docs++
		if body == nil {
			body = d.Body
		}
	}
	if docs > 1 {
		return nil, l.errAt(nil, "a job file holds one YAML document, found %d (remove the extra ---)", docs)
	}
	l.body = body
	cfg := new(JobConfig)
	if body != nil {
		// Our own pass first: it knows the Go types, so it can say which
		// keys are allowed and what shape a value must have; goccy's
		// decoder then does the assignment.
		if err := l.check(body, typeOfJobConfig, "", 0); err != nil {
			return nil, err
		}
		if err := yaml.UnmarshalWithOptions([]byte(text), cfg, yaml.DisallowUnknownField()); err != nil {
			return nil, l.yamlError(err)
		}
		l.selectEmptySources(&cfg.Source)
	}
	if err := l.validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validate applies defaults and runs every section's Validate, mapping the
// YAML path that starts each message back to a line of the file.
func (l *loader) validate(cfg *JobConfig) error {
	if cfg.Job == "" {
		return l.errAt(l.body, "missing required field \"job\" at top level (expected job: NAME, a stable id of lowercase letters, digits, '-' and '_')")
	}
	if !jobIDPattern.MatchString(cfg.Job) {
		return l.errPath("job", fmt.Errorf("job: expected lowercase letters, digits, '-' and '_' only, got %q", cfg.Job))
	}
	switch kinds := cfg.Source.kinds(); len(kinds) {
	case 0:
		n := l.lookup("source")
		if n == nil {
			n = l.body
		}
		return l.errAt(n, "source: exactly one source kind is required (expected one of: %s)", strings.Join(yamlKeys(typeOfSourceConfig), ", "))
	case 1:
	default:
		return l.errPath("source", fmt.Errorf("source: exactly one source kind may be set, got %s", strings.Join(kinds, " and ")))
	}
	if d := cfg.Source.Datagen; d != nil {
		d.Defaults()
		if err := d.Validate(); err != nil {
			return l.errPath("source.datagen", err)
		}
	}
	if m := cfg.Source.MySQL; m != nil {
		m.Defaults()
		if err := m.Validate(); err != nil {
			return l.errPath("source.mysql", err)
		}
	}
	cfg.Sink.Defaults()
	if err := cfg.Sink.Validate(); err != nil {
		return l.errPath("sink", err)
	}
	cfg.Checkpoint.Defaults()
	if err := cfg.Checkpoint.Validate(); err != nil {
		return l.errPath("checkpoint", err)
	}
	cfg.Log.Defaults()
	if err := cfg.Log.Validate(); err != nil {
		return l.errPath("log", err)
	}
	if err := cfg.Process.Validate(); err != nil {
		return l.errPath("process", err)
	}
	return l.validateTransforms(cfg)
}

// selectEmptySources sets a source kind written without settings
// ("datagen:" or "datagen: ~") to its zero Config: the key alone says
// which kind the user wants, and its defaults are a working source.
func (l *loader) selectEmptySources(s *SourceConfig) {
	v := reflect.ValueOf(s).Elem()
	for _, f := range yamlFields(v.Type()) {
		fv := v.FieldByIndex(f.index)
		if fv.Kind() == reflect.Pointer && fv.IsNil() && l.lookup("source."+f.name) != nil {
			fv.Set(reflect.New(fv.Type().Elem()))
		}
	}
}

// loader carries one file through loading, for error positions.
type loader struct {
	file string
	raw  []string // lines as written, before interpolation
	body ast.Node
}

// interpolate replaces ${VAR} and ${VAR:-default} line by line, so that
// line numbers in later errors are those of the file as written. A value
// with a newline would shift them and is refused. Comments are left alone:
// a commented-out line must not fail for a variable it names. $${ writes
// a literal ${.
func (l *loader) interpolate(lookupEnv func(string) (string, bool)) (string, error) {
	out := make([]string, len(l.raw))
	for i, line := range l.raw {
		s, err := l.interpolateLine(i+1, line, lookupEnv)
		if err != nil {
			return "", err
		}
		out[i] = s
	}
	return strings.Join(out, "\n"), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (l *loader) interpolateLine(lineNo int, line string, lookupEnv func(string) (string, bool)) (string, error) {
	if !strings.Contains(line, "${") {
		return line, nil
	}
	var b strings.Builder
	var quote byte // the quote we are inside of, if any
	for i := 0; i < len(line); i++ {
		c := line[i]
		prev := byte(' ')
		if i > 0 {
			prev = line[i-1]
		}
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && strings.IndexByte(" \t:[{,-", prev) >= 0:
			quote = c
		case c == '#' && (prev == ' ' || prev == '\t' || i == 0):
			b.WriteString(line[i:])
			return b.String(), nil
		}
		if c == '$' && strings.HasPrefix(line[i:], "$${") {
			b.WriteString("${")
			i += 2
			continue
		}
		if c != '$' || !strings.HasPrefix(line[i:], "${") {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(line[i:], '}')
		if end < 0 {
			return "", &ConfigError{File: l.file, Line: lineNo, Col: i + 1, Snippet: l.snippet(lineNo, i+1),
				Msg: "unterminated ${ (expected ${VAR} or ${VAR:-default}; write $${ for a literal ${)"}
		}
		expr := line[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !envName.MatchString(name) {
			return "", &ConfigError{File: l.file, Line: lineNo, Col: i + 1, Snippet: l.snippet(lineNo, i+1),
				Msg: fmt.Sprintf("invalid environment reference ${%s} (expected ${VAR} or ${VAR:-default} with VAR of letters, digits and _)", expr)}
		}
		val, ok := lookupEnv(name)
		switch {
		case hasDef && val == "":
			// As in the shell: ":-" also replaces a variable set to "".
			val = def
		case !ok:
			return "", &ConfigError{File: l.file, Line: lineNo, Col: i + 1, Snippet: l.snippet(lineNo, i+1),
				Msg: fmt.Sprintf("environment variable %s is not set (set it, or write ${%s:-default})", name, name)}
		}
		if strings.ContainsAny(val, "\r\n") {
			return "", &ConfigError{File: l.file, Line: lineNo, Col: i + 1, Snippet: l.snippet(lineNo, i+1),
				Msg: fmt.Sprintf("environment variable %s contains a line break, which a job file cannot take inline", name)}
		}
		b.WriteString(val)
		i += end
	}
	return b.String(), nil
}

// yamlError turns a goccy error into a ConfigError with its position.
func (l *loader) yamlError(err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		tk := ye.GetToken()
		msg := ye.GetMessage()
		var se *yaml.SyntaxError
		if errors.As(err, &se) {
			msg = "YAML syntax error: " + msg
		}
		ce := &ConfigError{File: l.file, Msg: msg, Err: err}
		if tk != nil && tk.Position != nil {
			ce.Line, ce.Col = tk.Position.Line, tk.Position.Column
			ce.Snippet = l.snippet(ce.Line, ce.Col)
		}
		return ce
	}
	return &ConfigError{File: l.file, Msg: err.Error(), Err: err}
}

// errAt reports msg at node n (nil: the start of the file).
func (l *loader) errAt(n ast.Node, format string, args ...any) error {
	ce := &ConfigError{File: l.file, Msg: fmt.Sprintf(format, args...)}
	ce.Line, ce.Col = nodePos(n)
	if ce.Line == 0 {
		ce.Line, ce.Col = 1, 1
	}
	ce.Snippet = l.snippet(ce.Line, ce.Col)
	return ce
}

// leadingPath matches the YAML path that Validate methods start their
// messages with: "sink.catalog.type: ...", "sink.tables[0].match is ...".
var leadingPath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*)*`)

// errPath locates a Validate error of the section at path section (such
// as "sink" or "source.datagen"). Packages name the field at the start of
// their messages, either from the document root ("sink.catalog.type") or
// relative to themselves ("datagen.rate", "rate"); the first reading that
// names a real field of the job's Go types wins, and the message is
// rewritten to the full path so that the user can find the key. The error
// points at that key, or at the nearest enclosing key present in the file
// when the failing value came from a default.
func (l *loader) errPath(section string, err error) error {
	msg := err.Error()
	target := section
	if p := leadingPath.FindString(msg); p != "" {
		parent, _, _ := cutLast(section, ".")
		for _, cand := range []string{p, section + "." + p, parent + "." + p} {
			if typeHasPath(typeOfJobConfig, cand) {
				target = cand
				msg = cand + msg[len(p):]
				break
			}
		}
	}
	if target == section && !strings.HasPrefix(msg, section) {
		msg = section + ": " + msg
	}
	ce := &ConfigError{File: l.file, Msg: msg, Err: err}
	ce.Line, ce.Col = nodePos(l.lookupNearest(target))
	if ce.Line == 0 {
		ce.Line, ce.Col = 1, 1
	}
	ce.Snippet = l.snippet(ce.Line, ce.Col)
	return ce
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

// snippet renders up to three lines of the original file ending at line,
// with a caret under col when interpolation did not change the line (a
// substituted value would move the column).
func (l *loader) snippet(line, col int) string {
	if line < 1 || line > len(l.raw) {
		return ""
	}
	var b strings.Builder
	for n := max(1, line-2); n <= line; n++ {
		fmt.Fprintf(&b, "%4d | %s\n", n, strings.TrimRight(l.raw[n-1], "\r"))
	}
	if col > 0 && !strings.Contains(l.raw[line-1], "${") {
		fmt.Fprintf(&b, "       %s^\n", strings.Repeat(" ", col-1))
	}
	return b.String()
}
