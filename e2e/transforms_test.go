package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// shop is a MariaDB schema with raw orders (junk included) and a channels
// dimension, and a workload whose expected lake content can be computed
// from the source's final state.
type shop struct {
	t    *testing.T
	db   *testinfra.MySQL
	conn *sql.DB
	rng  *rand.Rand
	// changes counts the binlog row changes the workload made.
	changes int
	// bad are the ids inserted with a bad amount or a missing channel:
	// they must be dead letters, never in the current-state table.
	bad     map[int64]string
	live    map[int64]bool
	nextID  int64
	badOnly map[int64]bool
}

func newShop(t *testing.T) *shop {
	db := testinfra.MariaDB(t)
	conn, err := sql.Open("mysql", db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &shop{t: t, db: db, conn: conn, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11)),
		bad: map[int64]string{}, live: map[int64]bool{}, badOnly: map[int64]bool{}}
	s.exec(`CREATE TABLE channels (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL)`)
	s.exec(`INSERT INTO channels VALUES (1, 'web'), (2, 'store'), (3, 'phone')`)
	s.exec(`CREATE TABLE orders (id BIGINT PRIMARY KEY, email VARCHAR(64), amount VARCHAR(20), channel_id INT,
		status VARCHAR(16) NOT NULL, note VARCHAR(64)) DEFAULT CHARSET=utf8mb4`)
	return s
}

func (s *shop) exec(q string, args ...any) {
	s.t.Helper()
	res, err := s.conn.Exec(q, args...)
	if err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	if strings.HasPrefix(q, "INSERT INTO orders") || strings.HasPrefix(q, "UPDATE orders") || strings.HasPrefix(q, "DELETE FROM orders") {
		n, _ := res.RowsAffected()
		s.changes += int(n)
	}
}

// messy dresses an email up the way raw sources do.
func (s *shop) messy(email string) any {
	switch s.rng.IntN(5) {
	case 0:
		return "  " + strings.ToUpper(email) + " "
	case 1:
		return " " + email
	case 2:
		return "" // means NULL after cleaning
	}
	return email
}

// step makes one random change.
func (s *shop) step() {
	id := s.nextID
	switch k := s.rng.IntN(20); {
	case k < 6 || len(s.live) < 20:
		s.nextID++
		email := fmt.Sprintf("user%d@example.com", id)
		switch s.rng.IntN(12) {
		case 0: // an amount cleaning cannot cast
			s.exec("INSERT INTO orders VALUES (?, ?, 'abc', 1, 'paid', NULL)", id, email)
			s.bad[id], s.badOnly[id] = "amount", true
		case 1: // a channel the dimension lacks
			s.exec("INSERT INTO orders VALUES (?, ?, '1.00', 9, 'paid', NULL)", id, email)
			s.bad[id], s.badOnly[id] = "channel", true
		case 2: // a test order, filtered out of the current state
			s.exec("INSERT INTO orders VALUES (?, ?, '5.00', 2, ' test ', 'qa')", id, email)
			s.live[id] = true
		default:
			s.exec("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", id, s.messy(email),
				fmt.Sprintf(" %d.%02d", s.rng.IntN(1000), s.rng.IntN(100)), 1+s.rng.IntN(3), "paid", "n")
			s.live[id] = true
		}
	default:
		// Change a good row: only in ways that keep it good.
		var pick int64 = -1
		for try := 0; try < 50 && pick < 0; try++ {
			c := s.rng.Int64N(s.nextID)
			if s.live[c] && !s.badOnly[c] {
				pick = c
			}
		}
		if pick < 0 {
			return
		}
		email := fmt.Sprintf("user%d@example.com", pick)
		switch s.rng.IntN(6) {
		case 0:
			s.exec("DELETE FROM orders WHERE id = ?", pick)
			delete(s.live, pick)
		case 1: // only the raw spelling changes: cleaning makes it a no-op
			s.exec("UPDATE orders SET email = ? WHERE id = ? AND email IS NOT NULL AND email <> ''", "   "+strings.ToUpper(email), pick)
		case 2:
			s.exec("UPDATE orders SET status = ? WHERE id = ?", []string{"paid", "shipped", "test"}[s.rng.IntN(3)], pick)
		default:
			s.exec("UPDATE orders SET amount = ?, channel_id = ?, note = ? WHERE id = ?",
				fmt.Sprintf("%d.%d", s.rng.IntN(1000), s.rng.IntN(10)), 1+s.rng.IntN(3), fmt.Sprint("u", s.rng.IntN(100)), pick)
		}
	}
}

// transformsYAML is the operator chain under test.
func transformsYAML(db *testinfra.MySQL) string {
	return fmt.Sprintf(`transforms:
  - match: "%[1]s.orders"
    trim: [email, status, amount]
    lower: [email]
    null_if: {email: [""]}
    cast: {amount: "decimal(12,2)"}
    where: status != "test"
    drop: [note]
    dedupe: {}
    enrich:
      - {dim: channels, on: channel_id, add: {channel_name: name}, missing: dead_letter}
dimensions:
  channels:
    jdbc: {driver: mysql, dsn: "%[2]s", table: channels, key: id}
    cache: {size: 100, ttl: 1m}
`, db.Database, db.DSN())
}

func (s *shop) jobYAML(dir, job, ods string) string {
	return fmt.Sprintf(`job: %s
source:
  mysql:
    dsn: "%s"
    tables: ["%s\\.orders"]
    chunk_size: 50
sink:
  catalog: {type: sql, uri: "sqlite://%[4]s/lake/catalog.db"}
  warehouse: "file://%[4]s/lake/warehouse"
  namespace: lake
  tables:
    - {match: "%[3]s.*", ods: "%[5]s", dwd: "dwd_{table}", partition: ["bucket(4, id)"]}
checkpoint: {dir: "%[4]s/state-%[1]s", interval: 300ms, max_records: 200}
log: {format: json}
%[6]s`, job, s.db.CDCDSN(), s.db.Database, dir, ods, transformsYAML(s.db))
}

// expected is the current-state table the source's rows should give:
// cleaned, filtered, enriched, bad rows absent.
func (s *shop) expected() map[int64]string {
	s.t.Helper()
	names := map[int64]string{1: "web", 2: "store", 3: "phone"}
	rows, err := s.conn.Query("SELECT id, email, amount, channel_id, status FROM orders")
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var email, amount sql.NullString
		var ch sql.NullInt64
		var status string
		if err := rows.Scan(&id, &email, &amount, &ch, &status); err != nil {
			s.t.Fatal(err)
		}
		if s.bad[id] != "" || strings.TrimSpace(status) == "test" {
			continue
		}
		e := strings.ToLower(strings.TrimSpace(email.String))
		if e == "" {
			e = "NULL"
		}
		d, err := decimal.NewFromString(strings.TrimSpace(amount.String))
		if err != nil {
			s.t.Fatalf("row %d: amount %q", id, amount.String)
		}
		out[id] = fmt.Sprintf("%s|%s|%d|%s|%s", e, d.StringFixed(2), ch.Int64, strings.TrimSpace(status), names[ch.Int64])
	}
	return out
}

func scanDWD(t *testing.T, sink *lake.Config, table string) map[int64]string {
	t.Helper()
	got := map[int64]string{}
	err := lake.ScanTable(context.Background(), sink, table, 0, func(cols []string, row []any) error {
		v := map[string]any{}
		for i, c := range cols {
			v[c] = row[i]
		}
		if _, ok := v["note"]; ok {
			return fmt.Errorf("column note was dropped by the transform but is in %s", table)
		}
		id := v["id"].(int64)
		if _, dup := got[id]; dup {
			return fmt.Errorf("id %d twice", id)
		}
		email := "NULL"
		if e, ok := v["email"].(string); ok {
			email = e
		}
		got[id] = fmt.Sprintf("%s|%s|%d|%s|%s", email, v["amount"].(pipeline.Decimal).String(), v["channel_id"], v["status"], v["channel_name"])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func compareState(t *testing.T, got, want map[int64]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("current-state table has %d rows, want %d", len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if g := got[id]; g != w {
			bad++
			if bad <= 8 {
				t.Errorf("id %d: lake %q, want %q", id, g, w)
			}
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			bad++
			if bad <= 8 {
				t.Errorf("id %d: in the lake (%q), not expected", id, g)
			}
		}
	}
}

// stopWhenCaughtUp runs a daemon of job until its checkpoints cover the
// source's current GTID position, then stops it with SIGINT and returns
// its log.
func stopWhenCaughtUp(t *testing.T, s *shop, jobPath string) string {
	t.Helper()
	var final string
	if err := s.conn.QueryRow("SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	return startLiveDaemon(t, jobPath).stopAtGTID(t, final, 3*time.Minute)
}

// Raw orders with junk, no-op changes, test rows, bad values and
// dimension references go through clean → dedupe → enrich: the changelog
// holds every change once as read, the current-state table is clean and
// enriched, and the bad rows are dead letters with their reasons; with
// kills along the way.
func TestOperatorChainEndToEnd(t *testing.T) {
	s := newShop(t)
	for range 150 {
		s.step() // rows the snapshot reads
	}
	before := s.changes
	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(jobPath, []byte(s.jobYAML(dir, "chain", "ods_{table}")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sluiceBin, "validate", "-c", jobPath).CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	// A bounded first run reads the snapshot and ends: from here on,
	// every change reaches the lake through the binlog.
	if out, err := exec.Command(sluiceBin, "run", "--once", "-c", jobPath).CombinedOutput(); err != nil {
		t.Fatalf("run --once: %v\n%s", err, tail(string(out), 20))
	}
	before = s.changes
	runner := &job{dir: dir, path: jobPath}
	kills := rand.New(rand.NewPCG(s.rng.Uint64(), 12))
	for round := 0; round < 3; round++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			plan := &killPlan{afterCheckpoints: 1 + kills.IntN(3), delay: time.Duration(kills.IntN(300)) * time.Millisecond, maxWait: 20 * time.Second}
			if r := runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath); !r.killed {
				t.Errorf("round %d ended by itself: %v\n%s", round, r.err, tail(r.stderr, 20))
			}
		}()
		for i := 0; i < 150; i++ {
			s.step()
			time.Sleep(3 * time.Millisecond)
		}
		<-done
	}
	// Changes of the raw spelling only, made while no daemon runs: the
	// last one reads them with the dedupe state of its checkpoint, in
	// which these rows are stored, and drops them as unchanged.
	noop := 0
	for id := range s.live {
		if noop == 10 {
			break
		}
		if !s.badOnly[id] {
			s.exec("UPDATE orders SET email = ? WHERE id = ? AND email IS NOT NULL AND email <> ''", fmt.Sprintf("  USER%d@EXAMPLE.COM ", id), id)
			noop++
		}
	}
	log := stopWhenCaughtUp(t, s, jobPath)

	sink := lakeAt(dir)
	compareState(t, scanDWD(t, sink, "lake.dwd_orders"), s.expected())

	// The changelog: every binlog change once, as read (raw spelling).
	seen := map[string]int{}
	binlog, raw := 0, 0
	err := lake.ScanTable(context.Background(), sink, "lake.ods_orders", 0, func(cols []string, row []any) error {
		for i, c := range cols {
			switch c {
			case "_pos":
				seen[row[i].(string)]++
				if !strings.HasPrefix(row[i].(string), "snapshot@") {
					binlog++
				}
			case "email":
				if e, ok := row[i].(string); ok && e != strings.ToLower(strings.TrimSpace(e)) {
					raw++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range seen {
		if n > 1 {
			t.Errorf("changelog position %s %d times", p, n)
		}
	}
	if want := s.changes - before; binlog != want {
		t.Errorf("changelog holds %d binlog changes, the workload made %d after the snapshot", binlog, want)
	}
	if raw == 0 {
		t.Error("the changelog holds no raw (uncleaned) email: it should be written as read")
	}

	// Dead letters: each bad row's insert once, with its reason.
	dead := map[int64]string{}
	err = lake.ScanTable(context.Background(), sink, "lake.dead_letters_chain", 0, func(cols []string, row []any) error {
		v := map[string]any{}
		for i, c := range cols {
			v[c] = row[i]
		}
		// The raw form is JSON by column name.
		m := regexp.MustCompile(`"id":(\d+)`).FindStringSubmatch(fmt.Sprint(v["raw"]))
		if m == nil {
			return fmt.Errorf("dead letter without an id: %v", v)
		}
		var id int64
		fmt.Sscan(m[1], &id)
		if prev, dup := dead[id]; dup {
			return fmt.Errorf("id %d dead-lettered twice (%s, %v)", id, prev, v["reason"])
		}
		dead[id] = fmt.Sprintf("%s: %s", v["stage"], v["reason"])
		if v["source_table"] != s.db.Database+".orders" || v["position"] == nil {
			return fmt.Errorf("dead letter %v lacks its table or position", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, why := range s.bad {
		got, ok := dead[id]
		switch {
		case !ok:
			t.Errorf("bad row %d (%s) is not a dead letter", id, why)
		case why == "amount" && !(strings.HasPrefix(got, "clean:") && strings.Contains(got, "amount")):
			t.Errorf("bad row %d: reason %q, want clean's cast of amount", id, got)
		case why == "channel" && !(strings.HasPrefix(got, "enrich:") && strings.Contains(got, "channels")):
			t.Errorf("bad row %d: reason %q, want enrich's missing channel", id, got)
		}
	}
	if len(dead) != len(s.bad) {
		t.Errorf("%d dead letters, %d bad rows", len(dead), len(s.bad))
	}
	if len(s.bad) == 0 {
		t.Fatal("the workload made no bad rows")
	}
	// Dedupe dropped the no-op updates (raw spelling changes only).
	if !regexp.MustCompile(`"operator":"dedupe".*"Unchanged":[1-9]`).MatchString(log) {
		t.Errorf("dedupe reported no unchanged update dropped:\n%s", grepLines(log, "operator stats"))
	}
	t.Logf("%d changes, %d dead letters, %d rows in the current state", s.changes, len(dead), len(s.expected()))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An upgrade in progress: the old job and the new one read the same source
// and write the same current-state table, each with its own checkpoints;
// the new one starts late and both are killed along the way. The table
// ends exactly right.
func TestTwoJobsSideBySide(t *testing.T) {
	s := newShop(t)
	for range 100 {
		s.step()
	}
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	if err := os.WriteFile(oldPath, []byte(s.jobYAML(dir, "old", "ods_{table}")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The new job writes the current state only: one changelog is enough.
	if err := os.WriteFile(newPath, []byte(s.jobYAML(dir, "new", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	runOld, runNew := &job{dir: dir, path: oldPath}, &job{dir: dir, path: newPath}
	delays := []time.Duration{120 * time.Millisecond, 0, 250 * time.Millisecond, 60 * time.Millisecond, 180 * time.Millisecond, 10 * time.Millisecond}
	for round := 0; round < 3; round++ {
		done := make(chan struct{}, 2)
		for _, j := range []*job{runOld, runNew} {
			if j == runNew && round == 0 {
				done <- struct{}{}
				continue // the new job starts in the second round
			}
			delay := delays[(2*round+len(j.path))%len(delays)]
			go func(j *job) {
				defer func() { done <- struct{}{} }()
				plan := &killPlan{afterCheckpoints: 2, delay: delay, maxWait: 20 * time.Second}
				if r := j.run(t, sluiceBin, nil, plan, "run", "-c", j.path); !r.killed {
					t.Errorf("%s round %d ended by itself: %v\n%s", j.path, round, r.err, tail(r.stderr, 20))
				}
			}(j)
		}
		for i := 0; i < 120; i++ {
			s.step()
			time.Sleep(3 * time.Millisecond)
		}
		<-done
		<-done
	}
	stopWhenCaughtUp(t, s, oldPath)
	stopWhenCaughtUp(t, s, newPath)
	sink := lakeAt(dir)
	compareState(t, scanDWD(t, sink, "lake.dwd_orders"), s.expected())
}
