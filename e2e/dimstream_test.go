package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
)

// crm is a MariaDB schema with customers, a dimension kept from the same
// binlog, and orders that record, in the statement that writes them, the
// customer's name at that moment: the name enrichment must add.
type crm struct {
	t        *testing.T
	db       *testinfra.MySQL
	conn     *sql.DB
	rng      *rand.Rand
	next     int64
	orders   []int64
	version  int
	deletes  int
	reinsert int
}

const crmCustomers = 30

func newCRM(t *testing.T) *crm {
	db := testinfra.MariaDB(t)
	conn, err := sql.Open("mysql", db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &crm{t: t, db: db, conn: conn, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21)), next: 1}
	c.exec(`CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, tier INT NOT NULL)`)
	c.exec(`CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount INT NOT NULL,
		expected_name VARCHAR(40) NULL)`)
	for id := 1; id <= crmCustomers; id++ {
		c.exec("INSERT INTO customers VALUES (?, ?, ?)", id, fmt.Sprintf("c%d-v0", id), id%3)
	}
	return c
}

func (c *crm) exec(q string, args ...any) sql.Result {
	c.t.Helper()
	res, err := c.conn.Exec(q, args...)
	if err != nil {
		c.t.Fatalf("%s: %v", q, err)
	}
	return res
}

// step makes one random change. Every order's expected_name is written by
// the same statement that writes the order, from the customers row as it
// is then (NULL when the customer is deleted).
func (c *crm) step() {
	cust := 1 + c.rng.IntN(crmCustomers)
	switch k := c.rng.IntN(20); {
	case k < 9:
		id := c.next
		c.next++
		c.exec(`INSERT INTO orders VALUES (?, ?, ?, (SELECT name FROM customers WHERE id = ?))`, id, cust, c.rng.IntN(1000), cust)
		c.orders = append(c.orders, id)
	case k < 11 && len(c.orders) > 0:
		// An update of an order is enriched again, as of its own moment.
		id := c.orders[c.rng.IntN(len(c.orders))]
		c.exec(`UPDATE orders SET amount = ?, expected_name = (SELECT name FROM customers WHERE id = orders.customer_id) WHERE id = ?`,
			c.rng.IntN(1000), id)
	case k < 12:
		if n, _ := c.exec("DELETE FROM customers WHERE id = ?", cust).RowsAffected(); n > 0 {
			c.deletes++
		}
	default:
		c.version++
		name := fmt.Sprintf("c%d-v%d", cust, c.version)
		if n, _ := c.exec("UPDATE customers SET name = ? WHERE id = ?", name, cust).RowsAffected(); n == 0 {
			c.exec("INSERT INTO customers VALUES (?, ?, ?)", cust, name, cust%3)
			c.reinsert++
		}
	}
}

func (c *crm) jobYAML(dir string) string {
	return fmt.Sprintf(`job: dims
source:
  mysql:
    dsn: "%[1]s"
    tables: ["%[2]s\\.(customers|orders)"]
    chunk_size: 10
sink:
  catalog: {type: sql, uri: "sqlite://%[3]s/lake/catalog.db"}
  warehouse: "file://%[3]s/lake/warehouse"
  namespace: lake
  tables:
    - {match: "%[2]s.*", ods: "ods_{table}", dwd: "dwd_{table}"}
checkpoint: {dir: "%[3]s/state", interval: 300ms, max_records: 100}
log: {format: json}
transforms:
  - match: "%[2]s.orders"
    enrich:
      - {dim: customers, on: customer_id, add: {customer_name: name, customer_tier: tier}, missing: "null"}
dimensions:
  customers:
    stream: {table: %[2]s.customers, key: id}
    cache: {size: 8}
`, c.db.CDCDSN(), c.db.Database, dir)
}

// Orders are enriched from a customers dimension kept from the same
// binlog in the operator's Pebble store: every order's added name is the
// name its customer had when the order was written, across renames,
// deletes (NULL by the missing policy), re-inserts and kill -9 restarts,
// which restore the store from the checkpoint rather than keep its later
// live content.
func TestStreamDimensionEndToEnd(t *testing.T) {
	c := newCRM(t)
	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(jobPath, []byte(c.jobYAML(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sluiceBin, "validate", "-c", jobPath).CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	// The customers' snapshot first, in a bounded run: orders come later,
	// so that none can precede its customer's snapshot chunk.
	if out, err := exec.Command(sluiceBin, "run", "--once", "-c", jobPath).CombinedOutput(); err != nil {
		t.Fatalf("run --once: %v\n%s", err, tail(string(out), 20))
	}
	runner := &job{dir: dir, path: jobPath}
	kills := rand.New(rand.NewPCG(c.rng.Uint64(), 22))
	killed := 0
	for round := 0; round < 3; round++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			plan := &killPlan{afterCheckpoints: 1 + kills.IntN(3), delay: time.Duration(kills.IntN(300)) * time.Millisecond, maxWait: 20 * time.Second}
			r := runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath)
			if !r.killed {
				t.Errorf("round %d ended by itself: %v\n%s", round, r.err, tail(r.stderr, 20))
				return
			}
			killed++
		}()
		for i := 0; i < 200; i++ {
			c.step()
			time.Sleep(3 * time.Millisecond)
		}
		<-done
	}
	// A change made while no daemon runs: the restarted one must apply
	// it to the restored store before the order that follows it.
	c.exec("UPDATE customers SET name = 'offline' WHERE id = 1")
	c.exec("INSERT INTO customers VALUES (1, 'offline', 1) ON DUPLICATE KEY UPDATE name = 'offline'")
	c.exec(`INSERT INTO orders VALUES (?, 1, 1, (SELECT name FROM customers WHERE id = 1))`, c.next)
	c.next++
	var final string
	if err := c.conn.QueryRow("SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	startLiveDaemon(t, jobPath).stopAtGTID(t, final, 3*time.Minute)

	want := map[int64]string{}
	rows, err := c.conn.Query("SELECT id, customer_id, expected_name FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, cust int64
		var name sql.NullString
		if err := rows.Scan(&id, &cust, &name); err != nil {
			t.Fatal(err)
		}
		want[id] = fmt.Sprintf("%d|%s|%s", cust, nullText(name), nullText(name))
	}
	rows.Close()
	got := map[int64]string{}
	nulls := 0
	sink := lakeAt(dir)
	err = lake.ScanTable(context.Background(), sink, "lake.dwd_orders", 0, func(cols []string, row []any) error {
		v := map[string]any{}
		for i, col := range cols {
			v[col] = row[i]
		}
		id := v["id"].(int64)
		if _, dup := got[id]; dup {
			return fmt.Errorf("order %d twice", id)
		}
		enriched := "NULL"
		if s, ok := v["customer_name"].(string); ok {
			enriched = s
		} else {
			nulls++
		}
		exp := "NULL"
		if s, ok := v["expected_name"].(string); ok {
			exp = s
		}
		got[id] = fmt.Sprintf("%v|%s|%s", v["customer_id"], exp, enriched)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for id, w := range want {
		if g := got[id]; g != w {
			bad++
			if bad <= 10 {
				t.Errorf("order %d: lake customer_id|expected_name|customer_name = %q, want %q", id, g, w)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("dwd_orders has %d rows, the source %d", len(got), len(want))
	}
	if bad > 0 {
		t.Errorf("%d of %d orders enriched wrongly", bad, len(want))
	}
	// The dimension table itself still lands in the lake.
	var customers int
	if err := c.conn.QueryRow("SELECT COUNT(*) FROM customers").Scan(&customers); err != nil {
		t.Fatal(err)
	}
	lakeCustomers := 0
	if err := lake.ScanTable(context.Background(), sink, "lake.dwd_customers", 0, func([]string, []any) error {
		lakeCustomers++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if lakeCustomers != customers {
		t.Errorf("dwd_customers has %d rows, the source %d", lakeCustomers, customers)
	}
	if killed == 0 || c.deletes == 0 || nulls == 0 || c.version < 50 {
		t.Errorf("the run did not cover its cases: %d kills, %d customer deletes, %d NULL names, %d renames", killed, c.deletes, nulls, c.version)
	}
	t.Logf("%d orders (%d with a deleted customer), %d renames, %d deletes, %d re-inserts, %d kills",
		len(want), nulls, c.version, c.deletes, c.reinsert, killed)
}

func nullText(s sql.NullString) string {
	if !s.Valid {
		return "NULL"
	}
	return s.String
}
