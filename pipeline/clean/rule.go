package clean

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Rule is the cleaning of the tables that Match names, as written in the
// job file. Every key but match is optional; doc.go gives the order in
// which the steps apply. Column names are those before renaming, except
// in rename's values.
type Rule struct {
	// Match is a glob over "namespace.table" (path.Match syntax: shop.*,
	// *.orders). The first rule that matches a table is its only rule.
	Match string `yaml:"match"`
	// Where keeps the rows for which it is true; the others are dropped
	// and counted, not dead-lettered: dropping them is what the user asked.
	Where string `yaml:"where,omitempty"`
	// Reject sends the rows for which it is true to the dead letters, with
	// reason "rejected by <reject>".
	Reject string `yaml:"reject,omitempty"`
	// Select keeps only these columns, in this order. Drop removes columns.
	// At most one of them may be set.
	Select []string `yaml:"select,omitempty"`
	Drop   []string `yaml:"drop,omitempty"`
	// Rename maps a column's name to its name in the output.
	Rename map[string]string `yaml:"rename,omitempty"`
	// Cast maps a column to a type: bool, int, long, float, double,
	// decimal(P,S), string, binary, date, time, timestamp, timestamptz.
	Cast map[string]string `yaml:"cast,omitempty"`
	// Trim, Lower, Upper and Normalize (Unicode NFC) name string columns;
	// ["*"] means every string column of the table.
	Trim      []string `yaml:"trim,omitempty"`
	Lower     []string `yaml:"lower,omitempty"`
	Upper     []string `yaml:"upper,omitempty"`
	Normalize []string `yaml:"normalize,omitempty"`
	// NullIf maps a column to the values that mean NULL, such as "" or
	// "N/A"; for a column that is not a string the values are read as the
	// column's input type (null_if comes before cast). Quote values
	// meant for string columns: YAML reads 1.50 as the number 1.5.
	NullIf map[string][]string `yaml:"null_if,omitempty"`
	// Defaults maps a column to the value that replaces NULL. The value is
	// read as the column's type after casting.
	Defaults map[string]any `yaml:"defaults,omitempty"`
	// Columns derives or replaces columns from expressions, in order: a
	// later expression sees the columns an earlier one made.
	Columns Columns `yaml:"columns,omitempty"`
}

// Column is one entry of Rule.Columns.
type Column struct {
	Name string
	// Expr is an expr-lang expression over the row (see doc.go).
	Expr string
	// Type is optional: without it a new column takes the type the
	// expression checker infers, and a replaced column keeps its type
	// when the expression's result fits it.
	Type string
}

// Columns is an ordered mapping in YAML, so that the order in which
// derived columns are computed (and appear in the output) is the order in
// which they are written. Each value is an expression, or a mapping with
// the keys expr and type:
//
//	columns:
//	  email: lower(trim(email))
//	  total: {expr: "price * qty", type: "decimal(12,2)"}
type Columns []Column

// UnmarshalYAML reads the ordered mapping. A plain Go map would lose the
// order, which decides what later expressions can see.
func (c *Columns) UnmarshalYAML(unmarshal func(any) error) error {
	var ms yaml.MapSlice
	if err := unmarshal(&ms); err != nil {
		return errors.New("columns: expected a mapping of column names to expressions")
	}
	out := make(Columns, 0, len(ms))
	for _, it := range ms {
		name := fmt.Sprint(it.Key)
		col := Column{Name: name}
		switch v := it.Value.(type) {
		case string:
			col.Expr = v
		case nil:
			return fmt.Errorf("columns.%s: expected an expression", name)
		case yaml.MapSlice:
			for _, f := range v {
				s, ok := f.Value.(string)
				if !ok {
					s = fmt.Sprint(f.Value)
				}
				switch fmt.Sprint(f.Key) {
				case "expr":
					col.Expr = s
				case "type":
					col.Type = s
				default:
					return fmt.Errorf("columns.%s: unknown field %q (expected one of: expr, type)", name, f.Key)
				}
			}
		case map[string]any:
			// Some decoders hand nested mappings over as plain maps.
			for k, f := range v {
				s := fmt.Sprint(f)
				switch k {
				case "expr":
					col.Expr = s
				case "type":
					col.Type = s
				default:
					return fmt.Errorf("columns.%s: unknown field %q (expected one of: expr, type)", name, k)
				}
			}
		case bool, int, int64, uint64, float64:
			// YAML reads `flag: true` or `n: 1` as scalars; as expressions
			// they are constants.
			col.Expr = fmt.Sprint(v)
		default:
			return fmt.Errorf("columns.%s: expected an expression or a mapping with keys expr, type", name)
		}
		out = append(out, col)
	}
	*c = out
	return nil
}

// MarshalYAML writes the short form where no type is declared.
func (c Columns) MarshalYAML() (any, error) {
	ms := make(yaml.MapSlice, 0, len(c))
	for _, col := range c {
		if col.Type == "" {
			ms = append(ms, yaml.MapItem{Key: col.Name, Value: col.Expr})
			continue
		}
		ms = append(ms, yaml.MapItem{Key: col.Name, Value: yaml.MapSlice{
			{Key: "expr", Value: col.Expr},
			{Key: "type", Value: col.Type},
		}})
	}
	return ms, nil
}

// Matches reports whether the rule applies to table t.
func (r *Rule) Matches(t pipeline.TableID) bool {
	ok, _ := path.Match(r.Match, t.String())
	return ok
}

// Validate checks what needs no schema: required keys, glob and type
// syntax, conflicting lists, and the syntax of every expression. Errors
// are *Error with paths relative to the rule.
func (r *Rule) Validate() error {
	if r.Match == "" {
		return errf("match", "is required (a glob over namespace.table, such as shop.* or *.orders)")
	}
	if _, err := path.Match(r.Match, "x.y"); err != nil {
		return wrapf("match", err, "%q: %v", r.Match, err)
	}
	if len(r.Select) > 0 && len(r.Drop) > 0 {
		return errf("drop", "cannot be used together with select (select already lists the columns to keep)")
	}
	for _, l := range []struct {
		key   string
		names []string
		star  bool
	}{
		{"select", r.Select, false}, {"drop", r.Drop, false},
		{"trim", r.Trim, true}, {"lower", r.Lower, true}, {"upper", r.Upper, true}, {"normalize", r.Normalize, true},
	} {
		if err := checkNames(l.key, l.names, l.star); err != nil {
			return err
		}
	}
	if err := checkCaseConflict(r.Lower, r.Upper); err != nil {
		return err
	}
	targets := map[string]string{}
	for _, old := range sortedKeys(r.Rename) {
		to := r.Rename[old]
		if to == "" {
			return errf("rename."+old, "needs a new name")
		}
		if prev, dup := targets[to]; dup {
			return errf("rename."+old, "renames to %q, as rename.%s does", to, prev)
		}
		targets[to] = old
	}
	for _, col := range sortedKeys(r.Cast) {
		if _, err := parseColumnType(r.Cast[col]); err != nil {
			return wrapf("cast."+col, err, "%v", err)
		}
	}
	for _, col := range sortedKeys(r.NullIf) {
		if len(r.NullIf[col]) == 0 {
			return errf("null_if."+col, "expected a list of values that mean NULL, such as [\"\", \"N/A\"]")
		}
	}
	for _, col := range sortedKeys(r.Defaults) {
		if r.Defaults[col] == nil {
			return errf("defaults."+col, "a NULL default changes nothing; remove it or give a value")
		}
	}
	seen := map[string]bool{}
	for _, c := range r.Columns {
		p := "columns." + c.Name
		if c.Name == "" {
			return errf("columns", "a column needs a name")
		}
		if seen[c.Name] {
			return errf(p, "is defined twice")
		}
		seen[c.Name] = true
		if strings.TrimSpace(c.Expr) == "" {
			return errf(p, "needs an expression")
		}
		if c.Type != "" {
			if _, err := parseColumnType(c.Type); err != nil {
				return wrapf(p+".type", err, "%v", err)
			}
		}
	}
	// Expressions: syntax, function names and arity, without a schema.
	fns := newFuncs()
	for _, e := range r.exprs() {
		if _, err := compileExpr(e.path, e.src, nil, fns, e.bool); err != nil {
			return err
		}
	}
	return nil
}

type ruleExpr struct {
	path, src string
	bool      bool
}

func (r *Rule) exprs() []ruleExpr {
	var out []ruleExpr
	for _, c := range r.Columns {
		out = append(out, ruleExpr{path: "columns." + c.Name, src: c.Expr})
	}
	if r.Where != "" {
		out = append(out, ruleExpr{path: "where", src: r.Where, bool: true})
	}
	if r.Reject != "" {
		out = append(out, ruleExpr{path: "reject", src: r.Reject, bool: true})
	}
	return out
}

// Validate checks every rule on its own; the error's Rule field says
// which one failed.
func Validate(rules []Rule) error {
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return atRule(err, i)
		}
	}
	return nil
}

func checkNames(key string, names []string, star bool) error {
	seen := map[string]bool{}
	for i, n := range names {
		p := key + "[" + strconv.Itoa(i) + "]"
		switch {
		case n == "":
			return errf(p, "empty column name")
		case n == "*" && !star:
			return errf(p, "* is not allowed here; name the columns")
		case n == "*" && len(names) > 1:
			return errf(p, "* already means every string column; remove the other names")
		case seen[n]:
			return errf(p, "%s is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

func checkCaseConflict(lower, upper []string) error {
	if len(lower) > 0 && len(upper) > 0 && (lower[0] == "*" || upper[0] == "*") {
		return errf("upper", "cannot be combined with lower: [\"*\"] (or the other way round): a column cannot be both")
	}
	for i, n := range upper {
		if slices.Contains(lower, n) {
			return errf("upper["+strconv.Itoa(i)+"]", "%s is also in lower; a column cannot be both", n)
		}
	}
	return nil
}

// parseColumnType reads a type name as ParseType does, plus decimal(P,S)
// and decimal(P). Precision is at most 18 because Decimal holds an int64.
func parseColumnType(s string) (pipeline.Column, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(t, "decimal"); ok {
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return pipeline.Column{}, fmt.Errorf("decimal needs a precision and scale, such as decimal(12,2)")
		}
		inner, ok := strings.CutPrefix(rest, "(")
		inner, ok2 := strings.CutSuffix(inner, ")")
		if !ok || !ok2 {
			return pipeline.Column{}, fmt.Errorf("invalid type %q (expected decimal(P,S), such as decimal(12,2))", s)
		}
		ps, ss, hasScale := strings.Cut(inner, ",")
		p, err := strconv.Atoi(strings.TrimSpace(ps))
		if err != nil {
			return pipeline.Column{}, fmt.Errorf("invalid type %q (expected decimal(P,S), such as decimal(12,2))", s)
		}
		sc := 0
		if hasScale {
			if sc, err = strconv.Atoi(strings.TrimSpace(ss)); err != nil {
				return pipeline.Column{}, fmt.Errorf("invalid type %q (expected decimal(P,S), such as decimal(12,2))", s)
			}
		}
		if p < 1 || p > maxPrecision {
			return pipeline.Column{}, fmt.Errorf("decimal precision must be 1 to %d, got %d", maxPrecision, p)
		}
		if sc < 0 || sc > p {
			return pipeline.Column{}, fmt.Errorf("decimal scale must be 0 to the precision %d, got %d", p, sc)
		}
		return pipeline.Column{Type: pipeline.TypeDecimal, Precision: p, Scale: sc}, nil
	}
	typ, err := pipeline.ParseType(t)
	if err != nil {
		return pipeline.Column{}, &typeError{name: s, err: err}
	}
	return pipeline.Column{Type: typ}, nil
}

// typeError lists the names a rule accepts, which differ from
// pipeline.ParseType's by the decimal's precision and scale.
type typeError struct {
	name string
	err  error
}

func (e *typeError) Error() string {
	return fmt.Sprintf("unknown type %q (expected one of: bool, int, long, float, double, decimal(P,S), string, binary, date, time, timestamp, timestamptz)", e.name)
}

func (e *typeError) Unwrap() error { return e.err }

// typeString renders a column's type as parseColumnType reads it.
func typeString(c *pipeline.Column) string {
	if c.Type == pipeline.TypeDecimal {
		return fmt.Sprintf("decimal(%d,%d)", c.Precision, c.Scale)
	}
	return c.Type.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
