package lake

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Another writer commits to the same table after sluice loaded it and before
// sluice commits. sluice's commit must land (after reloading and checking
// that its checkpoint is not there yet) and the other writer's rows must
// survive: nothing lost on either side, nothing applied twice.
func TestCommitConflictWithAnotherWriter(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Tables[0].ODS = "" // the upsert table only
	core, logs := observer.New(zap.WarnLevel)
	s, _ := NewSink(cfg, "job1", zap.New(core))
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The other writer appends rows with ids far from ours, through its own
	// catalog connection, as a separate program would.
	other, err := OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseCatalog(other)
	otherWrites := 0
	otherAppend := func(ident table.Identifier) {
		tbl, err := other.LoadTable(ctx, ident)
		if err != nil {
			t.Error(err)
			return
		}
		sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
		if err != nil {
			t.Error(err)
			return
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		id := int64(1_000_000 + otherWrites)
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append("other")
		b.Field(2).AppendNull()
		b.Field(3).AppendNull()
		rec := b.NewRecordBatch()
		defer rec.Release()
		tbl2 := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
		defer tbl2.Release()
		tx := tbl.NewTransaction()
		if err := tx.AppendTable(ctx, tbl2, 1024, nil); err != nil {
			t.Error(err)
			return
		}
		if _, err := tx.Commit(ctx); err != nil {
			t.Error(err)
			return
		}
		otherWrites++
	}

	for id := uint64(1); id <= 3; id++ {
		for i := int64(0); i < 10; i++ {
			r := pipeline.Record{Op: pipeline.OpInsert, After: row(i, fmt.Sprint("v", id), int64(id))}
			if id > 1 {
				r.Op = pipeline.OpUpdate
			}
			if err := s.Write(ctx, &pipeline.Batch{Schema: ordersSchema, Records: []pipeline.Record{r}}); err != nil {
				t.Fatal(err)
			}
		}
		p, err := s.Prepare(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		raced := 0
		testHookBeforeCommit = func(ident table.Identifier) {
			if raced < 2 { // lose the race twice in a row
				raced++
				otherAppend(ident)
			}
		}
		err = s.Commit(ctx, pipeline.Commit{ID: id, Job: "job1", Prepared: p})
		testHookBeforeCommit = nil
		if err != nil {
			t.Fatalf("checkpoint %d: %v", id, err)
		}
	}
	got := scanAll(t, cfg, "test.dwd_shop_orders")
	if len(got) != 10+otherWrites || otherWrites != 6 {
		t.Fatalf("table has %d rows; want sluice's 10 plus the other writer's %d (of 6)", len(got), otherWrites)
	}
	for i := int64(0); i < 10; i++ {
		if r := got[fmt.Sprint(i)]; r == nil || r[1] != "v3" {
			t.Errorf("key %d = %v, want the last checkpoint's value v3", i, r)
		}
	}
	// Losing the race surfaced as a failed commit that sluice retried after
	// reloading, rather than being absorbed or double-applied.
	if n := logs.FilterMessage("commit failed; reloading table and retrying").Len(); n != 6 {
		t.Errorf("sluice retried %d times, want 6 (two lost races per checkpoint)", n)
	}
	tbl, err := other.LoadTable(ctx, table.Identifier{"test", "dwd_shop_orders"})
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]int{}
	for _, sn := range tbl.Metadata().Snapshots() {
		if sn.Summary != nil && sn.Summary.Properties[PropJobID] == "job1" {
			ours[sn.Summary.Properties[PropCheckpointID]]++
		}
	}
	if fmt.Sprint(ours) != "map[1:1 2:1 3:1]" {
		t.Errorf("sluice snapshots per checkpoint = %v, want exactly one each", ours)
	}
}
