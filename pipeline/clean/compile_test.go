package clean

import (
	"errors"
	"reflect"
	"testing"
)

var orders = schema("shop.orders",
	"id:long!", "email:string?", "amount:decimal(10,2)?", "qty:int", "status:string?", "created:string?", "note:string?")

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		want string
		line int // expected position inside the expression, 0: none
		col  int
	}{
		{"unknown name", Rule{Columns: Columns{{Name: "amount", Expr: "round(amont, 2)"}}},
			"columns.amount: unknown name amont (line 1, column 7 of the expression)", 1, 7},
		{"second line", Rule{Where: "qty > 0 &&\n  statsu == 'x'"},
			"where: unknown name statsu (line 2, column 3 of the expression)", 2, 3},
		{"type mismatch", Rule{Columns: Columns{{Name: "x", Expr: "email + 1"}}},
			"columns.x: invalid operation: + (mismatched types string and int) (line 1, column 7 of the expression)", 1, 7},
		{"where not bool", Rule{Where: "status"}, "where: expected bool, but got string", 0, 0},
		{"reject not bool", Rule{Reject: "qty * 2"}, "reject: expected bool, but got int", 0, 0},
		{"later column not visible", Rule{Columns: Columns{{Name: "a", Expr: "b + 1"}, {Name: "b", Expr: "qty"}}},
			"columns.a: unknown name b (line 1, column 1 of the expression)", 1, 1},
		{"cannot infer", Rule{Columns: Columns{{Name: "x", Expr: "coalesce(email, qty)"}}},
			"columns.x: cannot infer a column type from the expression (it yields any); declare one: {expr: ..., type: string}", 0, 0},
		{"decimal needs type", Rule{Columns: Columns{{Name: "x", Expr: "to_decimal(email, 2)"}}},
			"columns.x: cannot infer a column type from the expression (it yields decimal); declare one: {expr: ..., type: decimal(18,2)}", 0, 0},
		{"declared type impossible", Rule{Columns: Columns{{Name: "x", Expr: "qty", Type: "date"}}},
			"columns.x: the expression yields int32, which cannot become date", 0, 0},
		{"unknown column cast", Rule{Cast: map[string]string{"price": "long"}},
			"cast.price: no column price in shop.orders (columns: id, email, amount, qty, status, created, note)", 0, 0},
		{"impossible cast", Rule{Cast: map[string]string{"qty": "timestamp"}}, "cast.qty: cannot cast int to timestamp", 0, 0},
		{"trim non-string", Rule{Trim: []string{"email", "qty"}}, "trim[1]: column qty is int, not a string", 0, 0},
		{"lower unknown", Rule{Lower: []string{"mail"}},
			"lower[0]: no column mail in shop.orders (columns: id, email, amount, qty, status, created, note)", 0, 0},
		{"null_if bad value", Rule{NullIf: map[string][]string{"qty": {"-1", "none"}}},
			`null_if.qty[1]: "none" is not a valid int: not a number`, 0, 0},
		{"default bad value", Rule{Defaults: map[string]any{"qty": "many"}}, `defaults.qty: "many" is not a valid int: not a number`, 0, 0},
		{"default after cast", Rule{Cast: map[string]string{"created": "date"}, Defaults: map[string]any{"created": "soon"}},
			`defaults.created: "soon" is not a valid date: not a date or time (expected 2006-01-02, 2006-01-02 15:04:05[.fff] or RFC 3339)`, 0, 0},
		{"drop key", Rule{Drop: []string{"note", "id"}},
			"drop[1]: cannot drop key column id of shop.orders: without it rows cannot be updated or deleted by key", 0, 0},
		{"select without key", Rule{Select: []string{"email"}},
			"select: must keep key column id of shop.orders: without it rows cannot be updated or deleted by key", 0, 0},
		{"select unknown", Rule{Select: []string{"id", "nope"}},
			"select[1]: no column nope in shop.orders (columns: id, email, amount, qty, status, created, note)", 0, 0},
		{"rename dropped", Rule{Drop: []string{"note"}, Rename: map[string]string{"note": "n"}},
			"rename.note: column note is not in the output (select or drop removes it)", 0, 0},
		{"rename onto existing", Rule{Rename: map[string]string{"note": "email"}},
			"rename.note: renames to email, which is already a column of the output", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := []Rule{{Match: "other.*"}, tc.rule}
			rules[1].Match = "shop.*"
			_, err := Compile(rules, orders)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\n want %s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %#v", err)
			}
			if e.Rule != 1 || e.Line != tc.line || e.Column != tc.col {
				t.Errorf("Rule, Line, Column = %d, %d, %d; want 1, %d, %d", e.Rule, e.Line, e.Column, tc.line, tc.col)
			}
		})
	}
}

func TestCompileNoMatch(t *testing.T) {
	p, err := Compile([]Rule{{Match: "other.*"}}, orders)
	if p != nil || err != nil {
		t.Fatalf("got %v, %v", p, err)
	}
}

func TestOutputSchema(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		cols string
		key  []int
	}{
		{"unchanged", Rule{},
			"id:long email:string? amount:decimal(10,2)? qty:int status:string? created:string? note:string?", []int{0}},
		{"rename key and reorder", Rule{Select: []string{"note", "id", "email"}, Rename: map[string]string{"id": "order_id", "note": "remark"}},
			"remark:string? order_id:long email:string?", []int{1}},
		{"swap names", Rule{Select: []string{"id", "email", "note"}, Rename: map[string]string{"email": "note", "note": "email"}},
			"id:long note:string? email:string?", []int{0}},
		{"drop", Rule{Drop: []string{"note", "created"}},
			"id:long email:string? amount:decimal(10,2)? qty:int status:string?", []int{0}},
		{"cast and null_if", Rule{Select: []string{"id", "qty", "created", "amount"},
			Cast:     map[string]string{"created": "timestamptz", "amount": "double", "id": "string"},
			NullIf:   map[string][]string{"qty": {"0"}, "amount": {"0"}},
			Defaults: map[string]any{"amount": 0}},
			"id:string qty:int? created:timestamptz? amount:double?", []int{0}},
		{"derived columns", Rule{Select: []string{"id", "amount", "qty", "email", "total", "day", "big", "label", "ok"},
			Columns: Columns{
				{Name: "amount", Expr: "round(amount, 1)"},       // fits: keeps decimal(10,2)
				{Name: "qty", Expr: "qty * 1.5"},                 // float into int: becomes double
				{Name: "email", Expr: "len(email)"},              // int into string: becomes long
				{Name: "total", Expr: "amount * qty"},            // new: inferred double
				{Name: "day", Expr: "now()"},                     // new: timestamptz
				{Name: "big", Expr: "id", Type: "decimal(18,0)"}, // declared
				{Name: "label", Expr: "status ?? 'none'"},
				{Name: "ok", Expr: "qty > 2"},
			}},
			"id:long amount:decimal(10,2)? qty:double email:long? total:double? day:timestamptz? big:decimal(18,0)? label:string? ok:bool?", []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.Match = "shop.orders"
			p, err := r.Compile(orders)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(p.Output()); got != tc.cols {
				t.Errorf("columns\n got %s\nwant %s", got, tc.cols)
			}
			if !reflect.DeepEqual(p.Output().Key, tc.key) {
				t.Errorf("key = %v, want %v", p.Output().Key, tc.key)
			}
			if p.Output().Table != orders.Table || p.Output().Version != orders.Version {
				t.Errorf("table/version not kept: %+v", p.Output())
			}
		})
	}
}
