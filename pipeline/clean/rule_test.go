package clean

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestRuleYAML(t *testing.T) {
	src := `
transforms:
  - match: shop.orders
    where: status != "test"
    trim: ["*"]
    cast: {amount: "decimal(12,2)"}
    null_if: {email: ["", "N/A"], code: [0]}
    defaults: {status: new, qty: 1}
    columns:
      zeta: a + 1
      alpha: {expr: "x * 2", type: "decimal(10,2)"}
      flag: true
    rename: {created: created_at}
`
	var doc struct {
		Transforms []Rule `yaml:"transforms"`
	}
	if err := yaml.UnmarshalWithOptions([]byte(src), &doc, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	r := doc.Transforms[0]
	want := Columns{{Name: "zeta", Expr: "a + 1"}, {Name: "alpha", Expr: "x * 2", Type: "decimal(10,2)"}, {Name: "flag", Expr: "true"}}
	if !reflect.DeepEqual(r.Columns, want) {
		t.Errorf("columns = %#v, want %#v (YAML order kept)", r.Columns, want)
	}
	if got := r.NullIf["code"]; !reflect.DeepEqual(got, []string{"0"}) {
		t.Errorf("null_if.code = %#v", got)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Round trip keeps the order and the short form.
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(string(b), "zeta"), strings.Index(string(b), "alpha"); i < 0 || j < i {
		t.Errorf("marshalled columns out of order:\n%s", b)
	}
	var again struct {
		Transforms []Rule `yaml:"transforms"`
	}
	if err := yaml.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Transforms[0].Columns, want) {
		t.Errorf("round trip: %#v", again.Transforms[0].Columns)
	}

	for _, tc := range []struct{ src, want string }{
		{"columns: {b: {exp: x}}", `columns.b: unknown field "exp" (expected one of: expr, type)`},
		{"columns: [a, b]", "columns: expected a mapping of column names to expressions"},
		{"columns: {b: }", "columns.b: expected an expression"},
	} {
		var r Rule
		err := yaml.Unmarshal([]byte("match: x\n"+tc.src), &r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		want string // the whole message; "" for valid
	}{
		{"ok", Rule{Match: "shop.*", Where: "a > 1", Columns: Columns{{Name: "b", Expr: "round(a, 2)"}}}, ""},
		{"match required", Rule{}, "match: is required (a glob over namespace.table, such as shop.* or *.orders)"},
		{"bad glob", Rule{Match: "shop.[a"}, `match: "shop.[a": syntax error in pattern`},
		{"select and drop", Rule{Match: "*", Select: []string{"a"}, Drop: []string{"b"}}, "drop: cannot be used together with select (select already lists the columns to keep)"},
		{"empty name", Rule{Match: "*", Drop: []string{"a", ""}}, "drop[1]: empty column name"},
		{"dup name", Rule{Match: "*", Select: []string{"a", "a"}}, "select[1]: a is listed twice"},
		{"star in select", Rule{Match: "*", Select: []string{"*"}}, "select[0]: * is not allowed here; name the columns"},
		{"star with others", Rule{Match: "*", Trim: []string{"*", "a"}}, "trim[0]: * already means every string column; remove the other names"},
		{"lower and upper", Rule{Match: "*", Lower: []string{"a", "b"}, Upper: []string{"b"}}, "upper[0]: b is also in lower; a column cannot be both"},
		{"rename clash", Rule{Match: "*", Rename: map[string]string{"a": "x", "b": "x"}}, `rename.b: renames to "x", as rename.a does`},
		{"rename empty", Rule{Match: "*", Rename: map[string]string{"a": ""}}, "rename.a: needs a new name"},
		{"cast unknown", Rule{Match: "*", Cast: map[string]string{"a": "integer"}}, `cast.a: unknown type "integer" (expected one of: bool, int, long, float, double, decimal(P,S), string, binary, date, time, timestamp, timestamptz)`},
		{"cast decimal bare", Rule{Match: "*", Cast: map[string]string{"a": "decimal"}}, "cast.a: decimal needs a precision and scale, such as decimal(12,2)"},
		{"cast decimal wide", Rule{Match: "*", Cast: map[string]string{"a": "decimal(38,2)"}}, "cast.a: decimal precision must be 1 to 18, got 38"},
		{"cast decimal scale", Rule{Match: "*", Cast: map[string]string{"a": "decimal(4,5)"}}, "cast.a: decimal scale must be 0 to the precision 4, got 5"},
		{"null_if empty", Rule{Match: "*", NullIf: map[string][]string{"a": nil}}, `null_if.a: expected a list of values that mean NULL, such as ["", "N/A"]`},
		{"default nil", Rule{Match: "*", Defaults: map[string]any{"a": nil}}, "defaults.a: a NULL default changes nothing; remove it or give a value"},
		{"column twice", Rule{Match: "*", Columns: Columns{{Name: "a", Expr: "1"}, {Name: "a", Expr: "2"}}}, "columns.a: is defined twice"},
		{"column no expr", Rule{Match: "*", Columns: Columns{{Name: "a", Expr: " "}}}, "columns.a: needs an expression"},
		{"column bad type", Rule{Match: "*", Columns: Columns{{Name: "a", Expr: "1", Type: "int8"}}}, `columns.a.type: unknown type "int8" (expected one of: bool, int, long, float, double, decimal(P,S), string, binary, date, time, timestamp, timestamptz)`},
		{"syntax", Rule{Match: "*", Columns: Columns{{Name: "a", Expr: "b +* 2"}}}, "columns.a: unexpected token Operator(\"*\") (line 1, column 4 of the expression)"},
		{"unknown function arity", Rule{Match: "*", Where: "round(a, 1, 2)"}, "where: too many arguments to call round (line 1, column 1 of the expression)"},
		{"bad regex", Rule{Match: "*", Reject: `regex_replace(a, "(", "") == ""`}, "reject: regex_replace: error parsing regexp: missing closing ): `(` (line 1, column 18 of the expression)"},
		{"where not bool", Rule{Match: "*", Where: "1 + 2"}, "where: expected bool, but got int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\n want %s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Rule != -1 {
				t.Fatalf("error is not an *Error with Rule -1: %#v", err)
			}
		})
	}
}

func TestValidateRulesIndex(t *testing.T) {
	rules := []Rule{{Match: "a.*"}, {Match: "b.*", Where: "x >"}}
	err := Validate(rules)
	var e *Error
	if !errors.As(err, &e) || e.Rule != 1 || e.Path != "where" || e.Expr != "x >" {
		t.Fatalf("got %#v", err)
	}
	if _, err := New(rules); !errors.As(err, &e) || e.Rule != 1 {
		t.Fatalf("New: %v", err)
	}
}

func TestParseColumnType(t *testing.T) {
	for in, want := range map[string]string{
		"long": "long", "INT": "int", "decimal(12,2)": "decimal(12,2)", "decimal( 5 )": "decimal(5,0)",
		"Decimal(18, 18)": "decimal(18,18)", "timestamptz": "timestamptz",
	} {
		c, err := parseColumnType(in)
		if err != nil || typeString(&c) != want {
			t.Errorf("%q: %v %v, want %s", in, typeString(&c), err, want)
		}
	}
	for _, in := range []string{"decimal(", "decimal(a,b)", "decimal(0,0)", "decimal12", "varchar"} {
		if _, err := parseColumnType(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
