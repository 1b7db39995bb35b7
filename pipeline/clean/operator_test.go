package clean

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

var accounts = schema("bank.accounts", "acct:string!", "owner:string?", "balance:string?", "kind:string?")

var accountRule = Rule{
	Match:   "bank.*",
	Trim:    []string{"acct", "owner"},
	Cast:    map[string]string{"acct": "long", "balance": "decimal(12,2)"},
	Columns: Columns{{Name: "owner", Expr: "upper(owner)"}, {Name: "rich", Expr: "balance > 1000"}},
	Where:   `kind != "test"`,
	Reject:  "balance < 0",
	Drop:    []string{"kind"},
	Rename:  map[string]string{"acct": "account_id"},
}

func TestOperatorInterface(t *testing.T) {
	var _ pipeline.Operator = (*Operator)(nil)
	op, err := New([]Rule{accountRule})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if op.Name() != "clean" {
		t.Errorf("Name = %q", op.Name())
	}
	if err := op.Open(ctx, nil); err != nil {
		t.Errorf("Open(nil): %v", err)
	}
	if st, err := op.Snapshot(ctx, 1); st != nil || err != nil {
		t.Errorf("Snapshot = %v, %v", st, err)
	}
	if err := op.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestDeletes(t *testing.T) {
	out, dead, op := process(t, []Rule{accountRule}, accounts,
		// Filtered and rejected values do not stop a delete.
		del(" 7 ", "ann", "-5", "test"),
		// A non-key column that does not cast is left NULL.
		del("8", " bo ", "lots", "x"),
		// A key that does not cast cannot delete anything.
		del("x9", "cy", "1", "x"),
		// A delete without a before image is malformed.
		pipeline.Record{Op: pipeline.OpDelete},
	)
	want := []pipeline.Record{
		{Op: pipeline.OpDelete, Before: []any{int64(7), "ANN", dec(-500, 2), false}, Position: "pos"},
		{Op: pipeline.OpDelete, Before: []any{int64(8), "BO", nil, nil}, Position: "pos"},
	}
	if !reflect.DeepEqual(out.Records, want) {
		t.Errorf("deletes\n got %#v\nwant %#v", out.Records, want)
	}
	if got := names(out.Schema); got != "account_id:long owner:string? balance:decimal(12,2)? rich:bool?" {
		t.Errorf("schema %s", got)
	}
	if !reflect.DeepEqual(out.Schema.Key, []int{0}) {
		t.Errorf("key %v", out.Schema.Key)
	}
	rs := reasons(dead)
	if len(rs) != 2 || !strings.HasPrefix(rs[0], `cast.acct: value "x9": cannot cast to long: not a number`) || rs[1] != "a delete without a before image" {
		t.Errorf("dead letters %q", rs)
	}
	st := op.Stats()
	if st.Records != 4 || st.Out != 2 || st.DeadLettered != 2 || st.Filtered != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestUpdates(t *testing.T) {
	out, dead, op := process(t, []Rule{accountRule}, accounts,
		// Both images are cleaned.
		upd([]any{"1", "a", "5", "x"}, []any{"1", "a", "6", "x"}),
		// An update into the filtered state retracts the row, by the
		// cleaned before image when there is one...
		upd([]any{"2", "b", "5", "x"}, []any{"2", "b", "5", "test"}),
		// ...or by the new image.
		pipeline.Record{Op: pipeline.OpUpdate, After: []any{"3", "c", "5", "test"}},
		// An insert that fails the filter was never there: dropped.
		ins("4", "d", "5", "test"),
		// A rejected update is a dead letter.
		upd([]any{"5", "e", "5", "x"}, []any{"5", "e", "-1", "x"}),
	)
	want := []pipeline.Record{
		{Op: pipeline.OpUpdate, Before: []any{int64(1), "A", dec(500, 2), false}, After: []any{int64(1), "A", dec(600, 2), false}, Position: "pos"},
		{Op: pipeline.OpDelete, Before: []any{int64(2), "B", dec(500, 2), false}, Position: "pos"},
		{Op: pipeline.OpDelete, Before: []any{int64(3), "C", dec(500, 2), false}},
	}
	if !reflect.DeepEqual(out.Records, want) {
		t.Errorf("updates\n got %#v\nwant %#v", out.Records, want)
	}
	if rs := reasons(dead); len(rs) != 1 || rs[0] != "rejected by balance < 0" {
		t.Errorf("dead letters %q", rs)
	}
	st := op.Stats()
	want2 := Stats{Records: 5, Out: 3, Filtered: 1, Retracted: 2, Rejected: 1}
	if st != want2 {
		t.Errorf("stats %+v, want %+v", st, want2)
	}
}

func TestKeylessTableDropsFilteredUpdates(t *testing.T) {
	s := schema("log.events", "msg:string?")
	out, _, op := process(t, []Rule{{Match: "log.*", Where: "msg != 'x'"}}, s,
		pipeline.Record{Op: pipeline.OpUpdate, After: []any{"x"}}, ins("y"))
	if len(out.Records) != 1 || out.Records[0].After[0] != "y" || op.Stats().Filtered != 1 {
		t.Errorf("got %+v, stats %+v", out.Records, op.Stats())
	}
}

func TestDeadLetterRecord(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := ins("1", "ann", "abc", "x")
	rec.EventTime = at
	_, dead, _ := process(t, []Rule{accountRule}, accounts, rec)
	if len(dead) != 1 {
		t.Fatalf("dead letters %v", dead)
	}
	d := dead[0]
	if d.Op != pipeline.OpInsert || len(d.After) != len(pipeline.DeadLetterSchema.Columns) {
		t.Fatalf("dead letter %+v", d)
	}
	if d.After[0] != "bank.accounts" || d.After[1] != "clean" || d.After[3] != "insert" || d.After[4] != "pos" || d.After[5] != at {
		t.Errorf("dead letter fields %#v", d.After)
	}
	if want := `cast.balance: value "abc": cannot cast to decimal(12,2): not a number`; d.After[2] != want {
		t.Errorf("reason %q, want %q", d.After[2], want)
	}
	// raw is the input record, as the source sent it.
	var raw map[string]map[string]any
	if err := json.Unmarshal([]byte(d.After[6].(string)), &raw); err != nil || raw["after"]["balance"] != "abc" || raw["after"]["acct"] != "1" {
		t.Errorf("raw %v (%v)", d.After[6], err)
	}
}

func TestPassThrough(t *testing.T) {
	op, err := New([]Rule{accountRule})
	if err != nil {
		t.Fatal(err)
	}
	other := &pipeline.Batch{Schema: schema("shop.orders", "id:long!"), Records: []pipeline.Record{ins(int64(1))}}
	dl := &pipeline.Batch{Schema: pipeline.DeadLetterSchema, Records: []pipeline.Record{pipeline.DeadLetter(accounts, nil, "decode", "bad", "{}")}}
	// A rule matching everything must still leave dead letters alone.
	all, err := New([]Rule{{Match: "*", Select: []string{"reason"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op *Operator
		b  *pipeline.Batch
	}{{op, other}, {op, dl}, {all, dl}, {op, other}} {
		var got []*pipeline.Batch
		if err := tc.op.Process(context.Background(), tc.b, func(b *pipeline.Batch) error { got = append(got, b); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tc.b {
			t.Errorf("batch of %s was not passed through as is: %v", tc.b.Schema.Table, got)
		}
	}
	if st := op.Stats(); st.Passed != 2 || st.Records != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSchemaChange(t *testing.T) {
	op, err := New([]Rule{{Match: "bank.*", Columns: Columns{{Name: "label", Expr: "owner + ':' + kind"}}}})
	if err != nil {
		t.Fatal(err)
	}
	v1 := schema("bank.accounts", "acct:string!", "owner:string", "kind:string")
	b1, _ := processWith(t, op, &pipeline.Batch{Schema: v1, Records: []pipeline.Record{ins("1", "a", "k")}})
	b1again, _ := processWith(t, op, &pipeline.Batch{Schema: v1, Records: []pipeline.Record{ins("2", "b", "k")}})
	if b1.Schema != b1again.Schema {
		t.Errorf("output schema pointer not stable for one input schema")
	}

	// A new shape (new pointer) gets a new output schema.
	v2 := schema("bank.accounts", "acct:string!", "owner:string", "kind:string", "extra:long?")
	v2.Version = 2
	b2, _ := processWith(t, op, &pipeline.Batch{Schema: v2, Records: []pipeline.Record{ins("3", "c", "k", int64(1))}})
	if b2.Schema == b1.Schema || names(b2.Schema) != "acct:string owner:string kind:string extra:long? label:string?" || b2.Schema.Version != 2 {
		t.Errorf("new shape: %s (v%d)", names(b2.Schema), b2.Schema.Version)
	}
	if _, ok := op.plans[v1]; ok {
		t.Errorf("the old shape's plan is still cached")
	}
	if got := b2.Records[0].After[4]; got != "c:k" {
		t.Errorf("label = %v", got)
	}

	// A shape the rule no longer fits is fatal and says where.
	v3 := schema("bank.accounts", "acct:string!", "owner:string", "kind:long")
	err = op.Process(context.Background(), &pipeline.Batch{Schema: v3, Records: []pipeline.Record{ins("4", "d", int64(1))}},
		func(*pipeline.Batch) error { t.Error("emitted a batch"); return nil })
	want := `clean: rule does not compile against the table's schema: table bank.accounts (schema version 1), rule 0 (match "bank.*"): ` +
		`columns.label: invalid operation: + (mismatched types string and int64) (line 1, column 13 of the expression), in "owner + ':' + kind"`
	if !errors.Is(err, ErrIncompatibleSchema) || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != "columns.label" || e.Rule != 0 {
		t.Errorf("not an *Error for columns.label of rule 0: %#v", e)
	}
}

func TestOutputIsFreshMemory(t *testing.T) {
	s := schema("a.b", "id:long!", "name:string?")
	in := &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(int64(1), "x"), ins(int64(2), "y")}}
	op, err := New([]Rule{{Match: "a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := processWith(t, op, in)
	in.Records[0].After[1] = "changed"
	in.Records[1] = pipeline.Record{}
	if out.Records[0].After[1] != "x" || out.Records[1].After[0] != int64(2) {
		t.Errorf("output shares memory with the input: %+v", out.Records)
	}
	// Images of one batch must not overlap either.
	out.Records[0].After = append(out.Records[0].After, "grown")
	if out.Records[1].After[0] != int64(2) {
		t.Errorf("images overlap")
	}
}

func TestNowIsPerBatch(t *testing.T) {
	tick := testNow
	op, err := New([]Rule{{Match: "*", Columns: Columns{{Name: "at", Expr: "now()"}}}},
		WithClock(func() time.Time { tick = tick.Add(time.Second); return tick }))
	if err != nil {
		t.Fatal(err)
	}
	s := schema("a.b", "id:long!")
	out, _ := processWith(t, op, &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(int64(1)), ins(int64(2))}})
	out2, _ := processWith(t, op, &pipeline.Batch{Schema: s, Records: []pipeline.Record{ins(int64(3))}})
	a, b, c := out.Records[0].After[1], out.Records[1].After[1], out2.Records[0].After[1]
	if a != testNow.Add(time.Second) || b != a || c != testNow.Add(2*time.Second) {
		t.Errorf("now() = %v, %v, %v", a, b, c)
	}
}

func TestEmitErrorStops(t *testing.T) {
	op, err := New([]Rule{accountRule})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = op.Process(context.Background(), &pipeline.Batch{Schema: accounts, Records: []pipeline.Record{ins("1", "a", "1", "x")}},
		func(*pipeline.Batch) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
}

func TestStatsConcurrentWithProcess(t *testing.T) {
	op, err := New([]Rule{accountRule})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = op.Stats()
		}
	}()
	for range 50 {
		processWith(t, op, &pipeline.Batch{Schema: accounts, Records: []pipeline.Record{ins("1", "a", "1", "x"), ins("2", "b", "2", "test")}})
	}
	<-done
	if st := op.Stats(); st.Records != 100 || st.Out != 50 || st.Filtered != 50 {
		t.Errorf("stats %+v", st)
	}
}

func TestOddColumnNames(t *testing.T) {
	s := schema("x.y", "id:long!", "order-no:string?", "in:long?")
	out, dead, _ := process(t, []Rule{{Match: "*", Columns: Columns{{Name: "label", Expr: `$env["order-no"] + "/" + to_string($env["in"])`}}}}, s,
		ins(int64(1), "A-1", int64(3)))
	if len(dead) != 0 || out.Records[0].After[3] != "A-1/3" {
		t.Errorf("got %v, dead %q", out.Records[0].After, reasons(dead))
	}
}
