package clean

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// schema builds a test schema from "name:type" specs; a trailing "?"
// makes a column nullable and a trailing "!" makes it part of the key.
func schema(table string, specs ...string) *pipeline.Schema {
	ns, name, _ := strings.Cut(table, ".")
	s := &pipeline.Schema{Table: pipeline.TableID{Namespace: ns, Name: name}, Version: 1}
	for i, spec := range specs {
		n, typ, _ := strings.Cut(spec, ":")
		col := pipeline.Column{Name: n}
		for {
			switch {
			case strings.HasSuffix(typ, "?"):
				col.Nullable = true
				typ = strings.TrimSuffix(typ, "?")
				continue
			case strings.HasSuffix(typ, "!"):
				s.Key = append(s.Key, i)
				typ = strings.TrimSuffix(typ, "!")
				continue
			}
			break
		}
		c, err := parseColumnType(typ)
		if err != nil {
			panic(err)
		}
		col.Type, col.Precision, col.Scale = c.Type, c.Precision, c.Scale
		s.Columns = append(s.Columns, col)
	}
	return s
}

func ins(vals ...any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpInsert, After: vals, Position: "pos", Seq: 7}
}

func del(vals ...any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpDelete, Before: vals, Position: "pos"}
}

func upd(before, after []any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpUpdate, Before: before, After: after, Position: "pos"}
}

func dec(u int64, s int32) pipeline.Decimal { return pipeline.Decimal{Unscaled: u, Scale: s} }

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// process runs one batch through a fresh operator and splits what it
// emitted into the cleaned batch and the dead letters.
func process(t *testing.T, rules []Rule, s *pipeline.Schema, recs ...pipeline.Record) (out *pipeline.Batch, dead []pipeline.Record, op *Operator) {
	t.Helper()
	op, err := New(rules, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out, dead = processWith(t, op, &pipeline.Batch{Schema: s, Records: recs})
	return out, dead, op
}

func processWith(t *testing.T, op *Operator, b *pipeline.Batch) (out *pipeline.Batch, dead []pipeline.Record) {
	t.Helper()
	err := op.Process(context.Background(), b, func(b *pipeline.Batch) error {
		if b.Schema == pipeline.DeadLetterSchema {
			dead = append(dead, b.Records...)
			return nil
		}
		if out != nil {
			t.Fatalf("two output batches for one input batch")
		}
		out = b
		return nil
	})
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return out, dead
}

func reasons(dead []pipeline.Record) []string {
	var out []string
	for _, d := range dead {
		out = append(out, d.After[2].(string))
	}
	return out
}

func names(s *pipeline.Schema) string {
	var out []string
	for _, c := range s.Columns {
		n := c.Name + ":" + typeString(&c)
		if c.Nullable {
			n += "?"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}
