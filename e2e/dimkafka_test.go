package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
)

// Orders from MariaDB are enriched from a customers dimension kept from a
// Kafka topic that the enrich operator reads itself. Kafka-fed dimensions
// are as of processing time, so the test checks what is deterministic:
// every order gets one of its customer's names, and after a kill -9, the
// changes produced while no daemon ran, and those produced before the
// kill, are all in the restored dimension before the first batch of the
// restarted daemon (none skipped: the checkpoint holds the offsets its
// rows come from).
func TestKafkaDimensionEndToEnd(t *testing.T) {
	db := testinfra.MariaDB(t)
	conn, err := sql.Open("mysql", db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	exec1 := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec1(`CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount INT NOT NULL)`)

	k := testinfra.Kafka(t)
	cl := k.Client(t)
	produce := func(key, value string) {
		t.Helper()
		r := &kgo.Record{Topic: k.Topic, Key: []byte(key)}
		if value != "" {
			r.Value = []byte(value)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	const customers = 30
	rename := func(id, version int) {
		produce(fmt.Sprintf(`{"id":%d}`, id), fmt.Sprintf(`{"id":%d,"name":"c%d-v%d","tier":%d}`, id, id, version, id%3))
	}
	for id := 1; id <= customers; id++ {
		rename(id, 0)
	}

	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	yaml := fmt.Sprintf(`job: kdims
source:
  mysql:
    dsn: "%[1]s"
    tables: ["%[2]s\\.orders"]
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
    stream:
      kafka: {brokers: ["%[4]s"], topic: "%[5]s"}
      key: id
    cache: {size: 8}
`, db.CDCDSN(), db.Database, dir, strings.Join(k.Brokers, `", "`), k.Topic)
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sluiceBin, "validate", "-c", jobPath).CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}

	// Round 1: orders and a rename of every customer while the daemon runs;
	// it is killed after a checkpoint or a few.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 23))
	runner := &job{dir: dir, path: jobPath}
	done := make(chan result)
	go func() {
		plan := &killPlan{afterCheckpoints: 1 + rng.IntN(3), delay: time.Duration(rng.IntN(300)) * time.Millisecond, maxWait: 20 * time.Second}
		done <- runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath)
	}()
	next := int64(1)
	for step := 0; step < 240; step++ {
		exec1(`INSERT INTO orders VALUES (?, ?, ?)`, next, 1+step%customers, step)
		next++
		if step%8 == 0 && step/8 < customers {
			rename(1+step/8, 1)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if r := <-done; !r.killed {
		t.Fatalf("round 1 ended by itself: %v\n%s", r.err, tail(r.stderr, 20))
	}
	// While no daemon runs: odd customers renamed again, the last deleted
	// by a tombstone keyed with plain text.
	for id := 1; id <= customers; id += 2 {
		rename(id, 2)
	}
	produce(fmt.Sprint(customers), "")

	// Round 2: the restarted daemon catches up with the topic before its
	// first batch, so every later order sees the final names.
	d := startLiveDaemon(t, jobPath)
	finalFrom := next
	for id := 1; id <= customers; id++ {
		exec1(`INSERT INTO orders VALUES (?, ?, ?)`, next, id, 0)
		next++
	}
	var final string
	if err := conn.QueryRow("SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	d.stopAtGTID(t, final, 3*time.Minute)

	got := map[int64][2]string{}
	err = lake.ScanTable(context.Background(), lakeAt(dir), "lake.dwd_orders", 0, func(cols []string, row []any) error {
		v := map[string]any{}
		for i, col := range cols {
			v[col] = row[i]
		}
		id := v["id"].(int64)
		if _, dup := got[id]; dup {
			return fmt.Errorf("order %d twice", id)
		}
		name := "NULL"
		if s, ok := v["customer_name"].(string); ok {
			name = s
		}
		got[id] = [2]string{fmt.Sprint(v["customer_id"]), name}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != int(next-1) {
		t.Errorf("dwd_orders has %d rows, the source %d", len(got), next-1)
	}
	bad := 0
	seen := map[string]int{} // round-1 orders by name version
	for id := int64(1); id < next; id++ {
		g, ok := got[id]
		if !ok {
			continue
		}
		var want []string
		cust := g[0]
		var c int
		fmt.Sscan(cust, &c)
		if id < finalFrom {
			// Processed in round 1, or replayed in round 2 (after the
			// changes made while no daemon ran).
			want = []string{"c" + cust + "-v0", "c" + cust + "-v1"}
			if c%2 == 1 {
				want = append(want, "c"+cust+"-v2")
			}
			if c == customers {
				want = append(want, "NULL")
			}
			seen[g[1][strings.LastIndex(g[1], "-")+1:]]++
		} else {
			switch {
			case c == customers:
				want = []string{"NULL"}
			case c%2 == 1:
				want = []string{"c" + cust + "-v2"}
			default:
				want = []string{"c" + cust + "-v1"}
			}
		}
		if !contains(want, g[1]) {
			bad++
			if bad <= 10 {
				t.Errorf("order %d of customer %s: customer_name %s, want one of %v", id, cust, g[1], want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d orders enriched wrongly", bad, len(got))
	}
	if seen["v0"] == 0 || seen["v1"] == 0 {
		t.Errorf("round 1 did not cover its cases: orders by name version %v", seen)
	}
	t.Logf("round-1 orders by name version: %v", seen)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
