package lake

// The Iceberg sink against real backends other than the embedded default:
// the SQL catalog on PostgreSQL, and an s3:// warehouse on an S3-compatible
// server. The servers come from internal/testinfra (local processes on the
// CI machine; the tests skip without them, and fail under CI=true).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// TestMain stops the servers internal/testinfra started for this package.
func TestMain(m *testing.M) { testinfra.Main(m) }

func TestSinkPostgresCatalog(t *testing.T) {
	for _, flush := range []int{250_000, 2} {
		t.Run(fmt.Sprint("flush", flush), func(t *testing.T) {
			pg := testinfra.PostgreSQL(t)
			cfg := testConfig(t)
			sqlitePath := strings.TrimPrefix(cfg.Catalog.URI, "sqlite://")
			cfg.Catalog.URI = pg.DSN()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			testSinkOnBackend(t, cfg, flush)

			// The catalog lives in PostgreSQL, not in a SQLite file.
			if _, err := os.Stat(sqlitePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a SQLite catalog was created at %s: %v", sqlitePath, err)
			}
			db, err := sql.Open("postgres", pg.DSN())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows, err := db.QueryContext(t.Context(),
				`SELECT table_namespace || '.' || table_name, metadata_location FROM iceberg_tables WHERE catalog_name = $1 ORDER BY 1`, cfg.Catalog.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name, loc string
				if err := rows.Scan(&name, &loc); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(loc, cfg.Warehouse) {
					t.Errorf("%s: metadata at %s, outside the warehouse %s", name, loc, cfg.Warehouse)
				}
				got = append(got, name)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[test.dwd_shop_orders test.ods_shop_orders]" {
				t.Errorf("iceberg_tables in PostgreSQL = %v", got)
			}
		})
	}
}

// Only the default flush size: segments are a catalog matter, covered on
// PostgreSQL, and under -race they take seconds more on S3.
func TestSinkS3Warehouse(t *testing.T) {
	b := testinfra.S3(t)
	cfg := testConfig(t)
	localWarehouse := strings.TrimPrefix(cfg.Warehouse, "file://")
	cfg.Warehouse = "s3://" + b.Bucket + "/warehouse"
	cfg.S3 = S3Config{Endpoint: b.Endpoint, Region: b.Region, AccessKeyID: b.AccessKey, SecretAccessKey: b.SecretKey}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	testSinkOnBackend(t, cfg, 250_000)

	// Data, delete and metadata files are objects in the bucket;
	// nothing went to a local directory.
	if _, err := os.Stat(localWarehouse); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a local warehouse was created at %s: %v", localWarehouse, err)
	}
	kinds := map[string]int{}
	p := s3.NewListObjectsV2Paginator(b.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, "warehouse/") {
				t.Errorf("object %s outside the warehouse prefix", key)
			}
			switch {
			case strings.HasSuffix(key, ".metadata.json"):
				kinds["metadata"]++
			case strings.HasSuffix(key, ".parquet"):
				kinds["parquet"]++
			case strings.HasSuffix(key, ".avro"):
				kinds["avro"]++
			}
		}
	}
	if kinds["metadata"] < 4 || kinds["parquet"] < 4 || kinds["avro"] < 4 {
		t.Errorf("objects in the bucket by kind: %v, want metadata, Parquet and Avro files of both tables", kinds)
	}
}

// testSinkOnBackend is testSinkUpsertAndAppend's scenario, with the rows
// checked column by column and the repeated Commit checked to change
// nothing.
func testSinkOnBackend(t *testing.T, cfg *Config, flushRows int) {
	ctx := context.Background()
	cfg.FlushRows = flushRows
	s, err := NewSink(cfg, "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	write := func(recs ...pipeline.Record) {
		t.Helper()
		if err := s.Write(ctx, &pipeline.Batch{Schema: ordersSchema, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	// state is each table's snapshot count and current snapshot id.
	state := func() string {
		t.Helper()
		var out []string
		for _, name := range []string{"dwd_shop_orders", "ods_shop_orders"} {
			tbl, err := s.cat.LoadTable(ctx, []string{"test", name})
			if err != nil {
				t.Fatal(err)
			}
			cur := int64(-1)
			if sn := tbl.CurrentSnapshot(); sn != nil {
				cur = sn.SnapshotID
			}
			out = append(out, fmt.Sprintf("%s:%d snapshots, current %d, metadata %s",
				name, len(tbl.Metadata().Snapshots()), cur, tbl.MetadataLocation()))
		}
		return strings.Join(out, "; ")
	}
	checkpointN := func(id uint64) {
		t.Helper()
		p, err := s.Prepare(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c := pipeline.Commit{ID: id, Job: "job1", Prepared: p, Positions: map[string]string{"src": fmt.Sprint("seq=", id)}}
		began := time.Now()
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Logf("checkpoint %d committed in %v", id, time.Since(began).Round(time.Millisecond))
		before := state()
		// Idempotence: a second commit of the same checkpoint is a no-op.
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		if after := state(); after != before {
			t.Errorf("a second Commit of checkpoint %d changed the tables:\nbefore %s\nafter  %s", id, before, after)
		}
	}

	// checkpoint 1: insert 1..5, update 2 twice in the same checkpoint, delete 3.
	for i := int64(1); i <= 5; i++ {
		write(pipeline.Record{Op: pipeline.OpInsert, After: row(i, fmt.Sprint("n", i), i*100), Position: fmt.Sprint("p", i)})
	}
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(2, "n2", 200), After: row(2, "n2b", 201)})
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(2, "n2b", 201), After: row(2, "n2c", 202)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(3, "n3", 300)})
	checkpointN(1)
	assertRows(t, cfg, "test.dwd_shop_orders", row(1, "n1", 100), row(2, "n2c", 202), row(4, "n4", 400), row(5, "n5", 500))
	if n := countRows(t, cfg, "test.ods_shop_orders"); n != 8 {
		t.Errorf("ods has %d rows after checkpoint 1, want 8", n)
	}

	// checkpoint 2: update 1, delete 4, re-insert 3, delete then re-insert 5.
	write(pipeline.Record{Op: pipeline.OpUpdate, Before: row(1, "n1", 100), After: row(1, "n1x", 111)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(4, "n4", 400)})
	write(pipeline.Record{Op: pipeline.OpInsert, After: row(3, "n3again", 333)})
	write(pipeline.Record{Op: pipeline.OpDelete, Before: row(5, "n5", 500)})
	write(pipeline.Record{Op: pipeline.OpInsert, After: row(5, "n5new", 555)})
	checkpointN(2)
	assertRows(t, cfg, "test.dwd_shop_orders", row(1, "n1x", 111), row(2, "n2c", 202), row(3, "n3again", 333), row(5, "n5new", 555))
	if n := countRows(t, cfg, "test.ods_shop_orders"); n != 13 {
		t.Errorf("ods has %d rows, want every one of the 13 changes", n)
	}

	tables, err := ListTables(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tables)
	if fmt.Sprint(tables) != "[test.dwd_shop_orders test.ods_shop_orders]" {
		t.Errorf("tables = %v", tables)
	}
	tbl, err := s.cat.LoadTable(ctx, []string{"test", "dwd_shop_orders"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tbl.Location(), strings.TrimSuffix(cfg.Warehouse, "/")+"/") {
		t.Errorf("table location %s is outside the warehouse %s", tbl.Location(), cfg.Warehouse)
	}
	perCheckpoint := map[string]int{}
	for _, sn := range tbl.Metadata().Snapshots() {
		perCheckpoint[sn.Summary.Properties[PropCheckpointID]]++
	}
	if flushRows > 10 && fmt.Sprint(perCheckpoint) != "map[1:1 2:1]" {
		t.Errorf("snapshots per checkpoint = %v, want one each", perCheckpoint)
	}
	if flushRows <= 3 && (perCheckpoint["1"] < 2 || perCheckpoint["2"] < 2) {
		t.Errorf("snapshots per checkpoint = %v, want several segments each", perCheckpoint)
	}
	cur := tbl.CurrentSnapshot().Summary.Properties
	if cur[PropJobID] != "job1" || cur[PropCheckpointID] != "2" || cur[PropPositionPrefix+"src"] != "seq=2" {
		t.Errorf("snapshot summary = %v", cur)
	}
}

// assertRows checks that a table holds exactly want, every column equal.
func assertRows(t *testing.T, cfg *Config, name string, want ...[]any) {
	t.Helper()
	got := scanAll(t, cfg, name)
	var g, w []string
	for _, r := range got {
		g = append(g, renderRow(r))
	}
	for _, r := range want {
		w = append(w, renderRow(r))
	}
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s rows:\n%s\nwant:\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// renderRow prints values with their types; times in UTC, so that equal
// instants compare equal whatever their location.
func renderRow(r []any) string {
	parts := make([]string, len(r))
	for i, v := range r {
		switch x := v.(type) {
		case time.Time:
			parts[i] = "time:" + x.UTC().Format(time.RFC3339Nano)
		case pipeline.Decimal:
			parts[i] = fmt.Sprintf("decimal:%d/scale%d", x.Unscaled, x.Scale)
		default:
			parts[i] = fmt.Sprintf("%T:%v", v, v)
		}
	}
	return strings.Join(parts, " | ")
}
