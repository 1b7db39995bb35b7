package clean

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// TestSteps runs each step, and combinations that pin down their order,
// on insert records and compares the after images.
func TestSteps(t *testing.T) {
	people := schema("crm.people", "id:long!", "name:string?", "email:string?", "age:string?", "score:decimal(6,2)?", "joined:string?")
	ts := time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.UTC)
	for _, tc := range []struct {
		name string
		rule Rule
		in   [][]any
		want [][]any
		dead []string // reasons, by substring
	}{
		{
			name: "trim lower upper",
			rule: Rule{Trim: []string{"name", "email"}, Lower: []string{"email"}, Upper: []string{"name"}},
			in:   [][]any{{int64(1), "  Ann ", " Ann@Example.COM\t", " x ", nil, nil}, {int64(2), nil, nil, nil, nil, nil}},
			want: [][]any{{int64(1), "ANN", "ann@example.com", " x ", nil, nil}, {int64(2), nil, nil, nil, nil, nil}},
		},
		{
			name: "trim star",
			rule: Rule{Trim: []string{"*"}},
			in:   [][]any{{int64(1), " a ", " b ", " 3 ", dec(1, 0), " 2024 "}},
			want: [][]any{{int64(1), "a", "b", "3", dec(1, 0), "2024"}},
		},
		{
			name: "normalize to NFC",
			rule: Rule{Normalize: []string{"name"}},
			in:   [][]any{{int64(1), "Jose\u0301", nil, nil, nil, nil}},
			want: [][]any{{int64(1), "Jos\u00e9", nil, nil, nil, nil}},
		},
		{
			name: "null_if after trim, before cast",
			rule: Rule{Trim: []string{"age"}, NullIf: map[string][]string{"age": {"", "N/A"}, "score": {"-1"}}, Cast: map[string]string{"age": "int"}},
			in: [][]any{
				{int64(1), nil, nil, "  ", dec(-100, 2), nil},
				{int64(2), nil, nil, "N/A", dec(-1, 0), nil},
				{int64(3), nil, nil, " 42 ", dec(5, 2), nil},
			},
			want: [][]any{
				{int64(1), nil, nil, nil, nil, nil},
				{int64(2), nil, nil, nil, dec(-1, 0), nil}, // not rescaled: null_if values are read at the column's scale
				{int64(3), nil, nil, int32(42), dec(5, 2), nil},
			},
		},
		{
			name: "casts",
			rule: Rule{Cast: map[string]string{"age": "long", "score": "string", "joined": "timestamptz", "email": "decimal(8,3)"}},
			in: [][]any{
				{int64(1), nil, "1.23456", "1e3", dec(-1230, 2), "2024-05-06 07:08:09.5"},
				{int64(2), nil, "7", " 12.9 ", dec(5, 0), "2024-05-06T09:08:09.5+02:00"},
			},
			want: [][]any{
				{int64(1), nil, dec(1235, 3), int64(1000), "-12.30", ts},
				{int64(2), nil, dec(7000, 3), int64(12), "5", ts}, // a cast truncates into an integer
			},
		},
		{
			name: "bad casts are dead letters",
			rule: Rule{Cast: map[string]string{"age": "int", "score": "decimal(3,1)"}},
			in: [][]any{
				{int64(1), nil, nil, "abc", nil, nil},
				{int64(2), nil, nil, "9999999999", nil, nil},
				{int64(3), nil, nil, "1", dec(123456, 2), nil},
				{int64(4), nil, nil, "2", dec(123, 2), nil},
			},
			want: [][]any{{int64(4), nil, nil, int32(2), dec(12, 1), nil}},
			dead: []string{
				`cast.age: value "abc": cannot cast to int: not a number`,
				`cast.age: value "9999999999": cannot cast to int: out of range for int`,
				`cast.score: value 1234.56: cannot cast to decimal(3,1): out of range for decimal(3,1)`,
			},
		},
		{
			name: "defaults after cast",
			rule: Rule{Cast: map[string]string{"age": "int"}, Defaults: map[string]any{"age": uint64(18), "name": "anon", "score": 0.5, "joined": "2000-01-01"}},
			in:   [][]any{{int64(1), nil, nil, nil, nil, nil}, {int64(2), "Bo", nil, "30", dec(1, 2), "x"}},
			want: [][]any{{int64(1), "anon", nil, int32(18), dec(50, 2), "2000-01-01"}, {int64(2), "Bo", nil, int32(30), dec(1, 2), "x"}},
		},
		{
			name: "columns in order see each other and earlier steps",
			rule: Rule{
				Trim:     []string{"email"},
				Defaults: map[string]any{"name": "?"},
				Columns: Columns{
					{Name: "domain", Expr: `regex_replace(email, "^.*@", "")`},
					{Name: "tag", Expr: `name + "@" + domain`},
					{Name: "score", Expr: "score * 2"},
					{Name: "email", Expr: "upper(email)"},
				},
				Select: []string{"id", "email", "domain", "tag", "score"},
			},
			in:   [][]any{{int64(1), nil, " a@x.org ", nil, dec(125, 2), nil}, {int64(2), "Al", nil, nil, nil, nil}},
			want: [][]any{{int64(1), "A@X.ORG", "x.org", "?@x.org", dec(250, 2)}},
			dead: []string{`columns.tag: name + "@" + domain: invalid operation: string + <nil>`},
		},
		{
			name: "declared and inferred types",
			rule: Rule{Columns: Columns{
				{Name: "n", Expr: "to_int(age)"},
				{Name: "half", Expr: "score / 2", Type: "decimal(6,3)"},
				{Name: "when", Expr: `parse_time("2006-01-02", joined)`},
				{Name: "s", Expr: "to_string(score)"},
				{Name: "d", Expr: `to_decimal(age, 1)`, Type: "decimal(5,1)"},
			}, Select: []string{"id", "n", "half", "when", "s", "d"}},
			in:   [][]any{{int64(1), nil, nil, "12", dec(125, 2), "2024-05-06"}},
			want: [][]any{{int64(1), int64(12), dec(625, 3), time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC), "1.25", dec(120, 1)}},
		},
		{
			name: "fraction into an integer column is an error",
			// The checker cannot type coalesce(float, int), so age stays
			// long and the value is checked when it comes.
			rule: Rule{Cast: map[string]string{"age": "long"}, Columns: Columns{{Name: "age", Expr: "coalesce(age / 2, 0)"}}, Select: []string{"id", "age"}},
			in:   [][]any{{int64(1), nil, nil, "4", nil, nil}, {int64(2), nil, nil, "3", nil, nil}},
			want: [][]any{{int64(1), int64(2)}},
			dead: []string{"columns.age: coalesce(age / 2, 0) yielded 1.5, which is not a valid long: not a whole number (round it first, e.g. round(x) or to_int(x)) [age=3]"},
		},
		{
			name: "null into a required column",
			rule: Rule{Columns: Columns{{Name: "id", Expr: "age == nil ? nil : id"}}, Select: []string{"id"}},
			in:   [][]any{{int64(1), nil, nil, "1", nil, nil}, {int64(2), nil, nil, nil, nil, nil}},
			want: [][]any{{int64(1)}},
			dead: []string{"columns.id: age == nil ? nil : id yielded NULL, but column id is not nullable (give a fallback: x ?? default) [age=NULL, id=2]"},
		},
		{
			name: "where and reject",
			rule: Rule{Where: `name != "test"`, Reject: "score < 0", Select: []string{"id"}},
			in: [][]any{
				{int64(1), "test", nil, nil, nil, nil},
				{int64(2), nil, nil, nil, dec(1, 0), nil},
				{int64(3), "x", nil, nil, dec(-1, 0), nil},
				{int64(4), "x", nil, nil, nil, nil},
			},
			want: [][]any{{int64(2)}},
			dead: []string{
				"rejected by score < 0",
				"reject: score < 0: invalid operation: <nil> < int (line 1, column 7 of the expression) [score=NULL]",
			},
		},
		{
			name: "where sees derived columns; NULL is false",
			rule: Rule{Columns: Columns{{Name: "adult", Expr: "age == nil ? nil : to_int(age) >= 18"}}, Where: "adult", Select: []string{"id", "adult"}},
			in:   [][]any{{int64(1), nil, nil, "20", nil, nil}, {int64(2), nil, nil, "3", nil, nil}, {int64(3), nil, nil, nil, nil, nil}},
			want: [][]any{{int64(1), true}},
		},
		{
			name: "non-bool where at run time",
			rule: Rule{Where: "coalesce(name, false)", Select: []string{"id"}},
			in:   [][]any{{int64(1), "x", nil, nil, nil, nil}, {int64(2), nil, nil, nil, nil, nil}},
			dead: []string{`where: coalesce(name, false): invalid operation: bool(string) (line 1, column 1 of the expression) [name="x"]`},
		},
		{
			name: "rename last: every other key uses source names",
			rule: Rule{Rename: map[string]string{"name": "full_name", "id": "person_id"}, Trim: []string{"name"},
				Where: `name != ""`, Select: []string{"name", "id"}},
			in:   [][]any{{int64(1), " Ann ", nil, nil, nil, nil}, {int64(2), "  ", nil, nil, nil, nil}},
			want: [][]any{{"Ann", int64(1)}},
		},
		{
			name: "null-safe builtins and helpers",
			rule: Rule{Columns: Columns{
				{Name: "a", Expr: "upper(trim(name))"},
				{Name: "b", Expr: "len(email)"},
				{Name: "c", Expr: "coalesce(email, name, 'none')"},
				{Name: "d", Expr: "round(score, 1)"},
				{Name: "e", Expr: "email ?? 'n/a'"},
				{Name: "f", Expr: "to_float(age)"},
			}, Select: []string{"id", "a", "b", "c", "d", "e", "f"}},
			in: [][]any{
				{int64(1), nil, nil, nil, nil, nil},
				{int64(2), " x ", "ab", "1.5", dec(1005, 3), nil},
			},
			want: [][]any{
				{int64(1), nil, nil, "none", nil, "n/a", nil},
				{int64(2), "X", int64(2), "ab", float64(1), "ab", 1.5},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.Match = "crm.*"
			var recs []pipeline.Record
			for _, v := range tc.in {
				recs = append(recs, ins(v...))
			}
			out, dead, _ := process(t, []Rule{r}, people, recs...)
			var got [][]any
			if out != nil {
				for _, rec := range out.Records {
					got = append(got, rec.After)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after images\n got %#v\nwant %#v", got, tc.want)
			}
			rs := reasons(dead)
			if len(rs) != len(tc.dead) {
				t.Fatalf("dead letters %q, want %d", rs, len(tc.dead))
			}
			for i, want := range tc.dead {
				if !strings.Contains(rs[i], want) {
					t.Errorf("dead letter %d\n got %s\nwant it to contain %s", i, rs[i], want)
				}
			}
		})
	}
}
