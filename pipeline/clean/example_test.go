package clean_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/sluice-cdc/sluice/pipeline"
	"github.com/sluice-cdc/sluice/pipeline/clean"
)

// The rule from the package documentation, on one order.
func Example() {
	var rules []clean.Rule
	err := yaml.Unmarshal([]byte(`
- match: shop.orders
  trim: ["*"]
  lower: [email]
  null_if: {email: ["", "n/a"]}
  cast: {amount: "decimal(12,2)", created: timestamptz}
  defaults: {status: new}
  columns:
    amount: round(amount, 2)
    email_domain: split(email, "@")?.[1]
    total: {expr: "amount * qty", type: "decimal(14,2)"}
  where: status != "test"
  reject: amount < 0
  drop: [internal_note]
  rename: {created: created_at}
`), &rules)
	if err != nil {
		panic(err)
	}
	op, err := clean.New(rules)
	if err != nil {
		panic(err)
	}
	s := &pipeline.Schema{
		Table: pipeline.TableID{Namespace: "shop", Name: "orders"},
		Columns: []pipeline.Column{
			{Name: "id", Type: pipeline.TypeInt64},
			{Name: "email", Type: pipeline.TypeString, Nullable: true},
			{Name: "amount", Type: pipeline.TypeString, Nullable: true},
			{Name: "qty", Type: pipeline.TypeInt32},
			{Name: "status", Type: pipeline.TypeString, Nullable: true},
			{Name: "created", Type: pipeline.TypeString, Nullable: true},
			{Name: "internal_note", Type: pipeline.TypeString, Nullable: true},
		},
		Key: []int{0},
	}
	b := &pipeline.Batch{Schema: s, Records: []pipeline.Record{
		{Op: pipeline.OpInsert, After: []any{int64(1), " Ann@Example.com ", "12.345", int32(3), nil, "2025-01-02 03:04:05", "vip"}},
		{Op: pipeline.OpInsert, After: []any{int64(2), "n/a", "-1", int32(1), "paid", nil, nil}},
		{Op: pipeline.OpInsert, After: []any{int64(3), "x@y.z", "1", int32(1), "test", nil, nil}},
	}}
	err = op.Process(context.Background(), b, func(out *pipeline.Batch) error {
		var names []string
		for _, c := range out.Schema.Columns {
			names = append(names, c.Name)
		}
		fmt.Println(strings.Join(names, " "))
		for _, r := range out.Records {
			fmt.Println(r.After)
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", op.Stats())
	// Output:
	// id email amount qty status created_at email_domain total
	// [1 ann@example.com 12.35 3 new 2025-01-02 03:04:05 +0000 UTC example.com 37.05]
	// source_table stage reason op position event_time raw
	// [shop.orders clean rejected by amount < 0 insert <nil> <nil> {"after":{"amount":"-1","created":null,"email":"n/a","id":2,"internal_note":null,"qty":1,"status":"paid"}}]
	// {Records:3 Out:1 Passed:0 Filtered:1 Retracted:0 Rejected:1 DeadLettered:0}
}
