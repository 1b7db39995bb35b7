package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// MariaDB binlog -> sluice -> Iceberg, with kills mid-stream: the upsert
// table must equal SELECT * FROM the source table, value for value, and
// the changelog must hold every row change of the binlog exactly once.
func TestMySQLStreamingExactlyOnce(t *testing.T) {
	db := testinfra.MariaDB(t)
	dsn, err := mysqldrv.ParseDSN(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	dsn.ParseTime, dsn.Loc = true, time.UTC
	conn, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE orders (
		id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(10,2),
		qty INT, price DOUBLE, ts DATETIME(6), note TEXT, big BIGINT UNSIGNED) CHARACTER SET utf8mb4`)
	var start string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&start); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	changes := 0 // row changes the binlog will carry
	live := map[int64]bool{}
	// workload runs txns random transactions; it may run on another
	// goroutine, so it returns its error rather than failing the test.
	workload := func(txns int, pause time.Duration) error {
		for i := 0; i < txns; i++ {
			time.Sleep(pause)
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			n, rows := 1+rng.IntN(4), 0
			for k := 0; k < n; k++ {
				id := int64(rng.IntN(400))
				var res sql.Result
				switch {
				case !live[id]:
					res, err = tx.ExecContext(ctx, "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?)", id, fmt.Sprint("n", id, "-", i),
						fmt.Sprintf("%d.%02d", rng.IntN(100000), rng.IntN(100)), rng.IntN(1000), rng.Float64()*100,
						time.Date(2026, 1, 1, 0, 0, 0, rng.IntN(1e9)/1000*1000, time.UTC), nullable(rng, "note ✓ "+fmt.Sprint(i)), uint64(18446744073709551615)-uint64(i))
					live[id] = true
				case rng.IntN(4) == 0:
					res, err = tx.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", id)
					live[id] = false
				default:
					res, err = tx.ExecContext(ctx, "UPDATE orders SET qty = qty + 1, name = ?, note = ? WHERE id = ?", fmt.Sprint("u", i), nullable(rng, "upd"), id)
				}
				if err != nil {
					return err
				}
				c, _ := res.RowsAffected()
				rows += int(c)
			}
			if rng.IntN(10) == 0 {
				// A rolled-back transaction reaches no table.
				if err := tx.Rollback(); err != nil {
					return err
				}
				// Undo the bookkeeping: re-read what exists.
				live = map[int64]bool{}
				r, err := conn.QueryContext(ctx, "SELECT id FROM orders")
				if err != nil {
					return err
				}
				for r.Next() {
					var id int64
					_ = r.Scan(&id)
					live[id] = true
				}
				r.Close()
				continue
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			changes += rows
		}
		return nil
	}
	// Some history before the first start, read from the binlog.
	if err := workload(200, 0); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	yaml := fmt.Sprintf(`job: cdc
source:
  mysql:
    dsn: "%s"
    tables: ["%s\\.orders"]
    start_gtid: "%s"
sink:
  catalog: {type: sql, uri: "sqlite://%[4]s/lake/catalog.db"}
  warehouse: "file://%[4]s/lake/warehouse"
  namespace: lake
  tables:
    - {match: "%[2]s.*", ods: "ods_{table}", dwd: "dwd_{table}", partition: ["bucket(4, id)"]}
checkpoint: {dir: "%[4]s/state", interval: 300ms, max_records: 100}
log: {format: json}
`, db.CDCDSN(), db.Database, start, dir)
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// Kill daemons at random checkpoints while the workload runs.
	runner := &job{dir: dir, path: jobPath}
	// The kill schedule has its own generator: rng belongs to the workload.
	kills := rand.New(rand.NewPCG(rng.Uint64(), 2))
	wl := make(chan error, 1)
	go func() { wl <- workload(900, 4*time.Millisecond) }()
	killed, replay := 0, time.Now()
	for round := 0; round < 5; round++ {
		plan := &killPlan{afterCheckpoints: 1 + kills.IntN(3), delay: time.Duration(kills.IntN(300)) * time.Millisecond, maxWait: 8 * time.Second}
		r := runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath)
		if !r.killed {
			t.Fatalf("round %d ended by itself: %v\n%s", round, r.err, tail(r.stderr, 20))
		}
		killed++
	}
	t.Logf("%d killed rounds took %s", killed, time.Since(replay).Round(time.Millisecond))
	if err := <-wl; err != nil {
		t.Fatal(err)
	}

	// The last daemon catches up, streams a live workload, and stops.
	daemon := startLiveDaemon(t, jobPath)
	if err := workload(200, 0); err != nil {
		t.Fatal(err)
	}
	var final string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	daemon.stopAtGTID(t, final, 2*time.Minute)

	// SELECT * versus the upsert table, every column.
	want := map[int64][]any{}
	r, err := conn.QueryContext(ctx, "SELECT id, name, CAST(amount AS CHAR), qty, price, ts, note, CAST(big AS CHAR) FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id int64
		var name string
		var amount, note, big sql.NullString
		var qty sql.NullInt32
		var price sql.NullFloat64
		var ts sql.NullTime
		if err := r.Scan(&id, &name, &amount, &qty, &price, &ts, &note, &big); err != nil {
			t.Fatal(err)
		}
		want[id] = []any{fmt.Sprint(id), name, amount.String, fmt.Sprint(qty.Int32), fmt.Sprint(price.Float64), ts.Time.UTC().Format(time.RFC3339Nano), note.String, big.String}
	}
	r.Close()
	sink := lakeAt(dir)
	got := map[int64][]any{}
	err = lake.ScanTable(ctx, sink, "lake.dwd_orders", 0, func(cols []string, row []any) error {
		v := map[string]any{}
		for i, c := range cols {
			v[c] = row[i]
		}
		str := func(x any) string {
			if x == nil {
				return ""
			}
			if tt, ok := x.(time.Time); ok {
				return tt.UTC().Format(time.RFC3339Nano)
			}
			if d, ok := x.(pipeline.Decimal); ok {
				return lake.FormatValue(d)
			}
			return fmt.Sprint(x)
		}
		id := v["id"].(int64)
		if _, dup := got[id]; dup {
			return fmt.Errorf("id %d twice", id)
		}
		got[id] = []any{str(v["id"]), str(v["name"]), str(v["amount"]), str(v["qty"]), str(v["price"]), str(v["ts"]), str(v["note"]), str(v["big"])}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Errorf("dwd_orders has %d rows, the source %d", len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if g := got[id]; fmt.Sprint(g) != fmt.Sprint(w) {
			bad++
			if bad <= 5 {
				t.Errorf("id %d: lake %v, source %v", id, g, w)
			}
		}
	}
	// Every binlog row change once in the changelog.
	seen := map[string]int{}
	err = lake.ScanTable(ctx, sink, "lake.ods_orders", 0, func(cols []string, row []any) error {
		for i, c := range cols {
			if c == "_pos" {
				seen[row[i].(string)]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if len(seen) != changes || dups > 0 {
		t.Errorf("ods_orders holds %d distinct changes (%d duplicated), the binlog %d", len(seen), dups, changes)
	}
	t.Logf("1,300 transactions (%d row changes) through %d kills; %d rows in the table", changes, killed, len(want))
}

func nullable(rng *rand.Rand, s string) any {
	if rng.IntN(5) == 0 {
		return nil
	}
	return s
}
