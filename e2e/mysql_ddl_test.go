package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// ddlPhase is one shape of the items table: the DDL that makes it, and the
// columns a row of it has (id aside).
type ddlPhase struct {
	ddl  string
	cols []string
	big  bool // qty holds values beyond int32
}

var ddlPhases = []ddlPhase{
	{"", []string{"name", "qty", "price", "amount"}, false},
	{"ALTER TABLE items ADD COLUMN note VARCHAR(40) AFTER name", []string{"name", "note", "qty", "price", "amount"}, false},
	{"ALTER TABLE items RENAME COLUMN note TO remark", []string{"name", "remark", "qty", "price", "amount"}, false},
	{"ALTER TABLE items DROP COLUMN name", []string{"remark", "qty", "price", "amount"}, false},
	{"ALTER TABLE items MODIFY qty BIGINT, MODIFY price DOUBLE, MODIFY amount DECIMAL(14,2)", []string{"remark", "qty", "price", "amount"}, true},
	{"ALTER TABLE items ADD COLUMN extra INT", []string{"remark", "qty", "price", "amount", "extra"}, true},
}

// bigQty is added to qty in the phases whose qty is a BIGINT, so that
// the value c of a row's write is qty % bigQty.
const bigQty = 5_000_000_000

// Columns added, renamed, dropped and widened while sluice streams the
// binlog, with kills after each change: at random moments, and between
// the protocol steps (after prepare, after the manifest, between the two
// tables' commits). The upsert table ends equal to SELECT * of the source,
// column for column (the renamed column's values carried over from before
// the rename), and the changelog holds every row change once, each in the
// right columns.
func TestMySQLDDLEvolution(t *testing.T) {
	db := testinfra.MariaDB(t)
	dsn, err := mysqldrv.ParseDSN(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
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
	mustExec(`CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40), qty INT, price FLOAT, amount DECIMAL(10,2)) CHARACTER SET utf8mb4`)
	var start string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&start); err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	changes, c := 0, 0
	live := map[int64]bool{}
	phase := 0
	// values are the columns of the current phase for write c of row id:
	// every column derives from c, so that a changelog row shows whether
	// its values sit in the right columns.
	values := func(id int64) ([]string, []any) {
		c++
		p := ddlPhases[phase]
		var args []any
		for _, col := range p.cols {
			switch col {
			case "name":
				args = append(args, fmt.Sprintf("n%d-%d", id, c))
			case "note", "remark":
				args = append(args, fmt.Sprintf("r%d-%d", id, c))
			case "qty":
				q := int64(c)
				if p.big {
					q += bigQty
				}
				args = append(args, q)
			case "price":
				args = append(args, float64(c)+0.5)
			case "amount":
				args = append(args, fmt.Sprintf("%d.25", c))
			case "extra":
				args = append(args, c%7)
			}
		}
		return p.cols, args
	}
	insert := func(ex interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, id int64) error {
		cols, args := values(id)
		q := "INSERT INTO items (id, " + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)) + ")"
		if _, err := ex.ExecContext(ctx, q, append([]any{id}, args...)...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		live[id] = true
		changes++
		return nil
	}
	// workload runs txns transactions of 1 to 3 changes on ids 1..300.
	workload := func(txns int, pause time.Duration) error {
		for i := 0; i < txns; i++ {
			time.Sleep(pause)
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			for k, n := 0, 1+rng.IntN(3); k < n; k++ {
				id := int64(1 + rng.IntN(300))
				switch {
				case !live[id]:
					err = insert(tx, id)
				case rng.IntN(5) == 0:
					_, err = tx.ExecContext(ctx, "DELETE FROM items WHERE id = ?", id)
					live[id] = false
					changes++
				default:
					cols, args := values(id)
					sets := make([]string, len(cols))
					for j, col := range cols {
						sets[j] = col + " = ?"
					}
					_, err = tx.ExecContext(ctx, "UPDATE items SET "+strings.Join(sets, ", ")+" WHERE id = ?", append(args, id)...)
					changes++
				}
				if err != nil {
					tx.Rollback()
					return err
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	// Rows written in one phase and never again: their columns in the
	// lake show that the changes after them carried them over.
	untouched := func(base int64) error {
		for k := int64(0); k < 10; k++ {
			if err := insert(conn, base+int64(phase)*100+k); err != nil {
				return err
			}
		}
		return nil
	}

	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	yaml := fmt.Sprintf(`job: ddl
source:
  mysql:
    dsn: "%s"
    tables: ["%s\\.items"]
    start_gtid: "%s"
    ddl: evolve
sink:
  catalog: {type: sql, uri: "sqlite://%[4]s/lake/catalog.db"}
  warehouse: "file://%[4]s/lake/warehouse"
  namespace: lake
  tables:
    - {match: "%[2]s.*", ods: "ods_{table}", dwd: "dwd_{table}", partition: ["bucket(4, id)"]}
checkpoint: {dir: "%[4]s/state", interval: 300ms, max_records: 100000}
log: {format: json}
`, db.CDCDSN(), db.Database, start, dir)
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	runner := &job{dir: dir, path: jobPath}
	kills := rand.New(rand.NewPCG(seed, 4))

	// Phases 0 to 4: the DDL and a workload, then a daemon that catches
	// up and dies: at a random moment, or at a protocol step.
	faults := []string{"", "after-manifest", "between-table-commits", "", "after-prepare"}
	recovered := 0
	for phase = 0; phase < len(faults); phase++ {
		if p := ddlPhases[phase]; p.ddl != "" {
			mustExec(p.ddl)
		}
		if err := untouched(10_000); err != nil {
			t.Fatal(err)
		}
		if err := workload(60, 0); err != nil {
			t.Fatal(err)
		}
		if err := untouched(20_000); err != nil {
			t.Fatal(err)
		}
		var r result
		if f := faults[phase]; f != "" {
			r = runner.run(t, sluiceBin, []string{"SLUICE_FAULT=" + f}, &killPlan{afterCheckpoints: 1 << 30, maxWait: 30 * time.Second}, "run", "-c", jobPath)
			if !strings.Contains(r.stderr, "fault injected at "+f) {
				t.Fatalf("phase %d: the daemon did not die at %s: %v\n%s", phase, f, r.err, tail(r.stderr, 30))
			}
		} else {
			// The binlog is ahead: the first checkpoint comes, then the
			// kill, in streaming, prepare or commit.
			plan := &killPlan{afterCheckpoints: 1, delay: time.Duration(kills.IntN(300)) * time.Millisecond, maxWait: 15 * time.Second}
			r = runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath)
		}
		if !r.killed {
			t.Fatalf("phase %d: the daemon ended by itself: %v\n%s", phase, r.err, tail(r.stderr, 30))
		}
		if strings.Contains(r.stderr, `"level":"error"`) {
			t.Fatalf("phase %d: errors in the log:\n%s", phase, tail(r.stderr, 30))
		}
		// A schema change committed by recovery, from the manifest of the
		// checkpoint the last daemon died in.
		applied, restored := strings.Index(r.stderr, `"msg":"schema change applied"`), strings.Index(r.stderr, `"msg":"restoring from checkpoint"`)
		if applied >= 0 && applied < restored {
			recovered++
		}
	}
	if recovered == 0 {
		t.Errorf("no daemon committed a schema change while recovering a checkpoint its predecessor prepared")
	}

	// The last phase happens while a daemon streams: the DDL and the rows
	// around it arrive live. Then the daemon catches up and stops.
	daemon := startLiveDaemon(t, jobPath)
	phase = len(faults) - 1
	if err := workload(30, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	phase = len(ddlPhases) - 1
	mustExec(ddlPhases[phase].ddl)
	if err := untouched(10_000); err != nil {
		t.Fatal(err)
	}
	if err := workload(60, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var final string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if log := daemon.stopAtGTID(t, final, 2*time.Minute); strings.Contains(log, `"level":"error"`) {
		t.Fatalf("errors in the log:\n%s", tail(log, 30))
	}

	sink := lakeAt(dir)

	// SELECT * versus the upsert table: the same columns, in the same
	// order, with the same values.
	srcCols, want := selectAll(t, conn, "SELECT id, remark, CAST(qty AS CHAR), CAST(price AS CHAR), CAST(amount AS CHAR), CAST(extra AS CHAR) FROM items")
	_ = srcCols
	var lakeCols []string
	got := map[string][]string{}
	err = lake.ScanTable(ctx, sink, "lake.dwd_items", 0, func(cols []string, row []any) error {
		lakeCols = cols
		r := make([]string, len(row))
		for i, v := range row {
			r[i] = lakeString(v)
		}
		if _, dup := got[r[0]]; dup {
			return fmt.Errorf("id %s twice", r[0])
		}
		got[r[0]] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "remark", "qty", "price", "amount", "extra"}; !slices.Equal(lakeCols, want) {
		t.Errorf("dwd_items columns %v, the source's %v", lakeCols, want)
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Errorf("dwd_items has %d rows, the source %d", len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if g := got[id]; !slices.Equal(g, w) {
			bad++
			if bad <= 10 {
				t.Errorf("id %s: lake %q, source %q", id, g, w)
			}
		}
	}
	// The untouched rows of phase 1 (written with a note, renamed to
	// remark since) keep their value.
	for k := 0; k < 10; k++ {
		id := strconv.Itoa(10_100 + k)
		if g := got[id]; len(g) < 2 || !strings.HasPrefix(g[1], "r"+id+"-") {
			t.Errorf("row %s, written before the rename, lost its note: %q", id, g)
		}
	}

	// Every row change once in the changelog, each image's values in the
	// columns they were written to.
	seen := map[string]int{}
	var odsCols []string
	misplaced := 0
	err = lake.ScanTable(ctx, sink, "lake.ods_items", 0, func(cols []string, row []any) error {
		odsCols = cols
		v := map[string]any{}
		for i, col := range cols {
			v[col] = row[i]
		}
		seen[v["_pos"].(string)]++
		if msg := checkImage(v); msg != "" {
			misplaced++
			if misplaced <= 10 {
				t.Errorf("changelog row %v: %s", v, msg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "remark", "qty", "price", "amount", "extra", "_op", "_pos", "_event_time"}; !slices.Equal(odsCols, want) {
		t.Errorf("ods_items columns %v, want %v", odsCols, want)
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if len(seen) != changes || dups > 0 {
		t.Errorf("ods_items holds %d distinct changes (%d duplicated), the binlog %d", len(seen), dups, changes)
	}
	t.Logf("%d row changes through %d DDL and %d killed daemons (%d recoveries committed a schema change); %d rows in the table",
		changes, len(ddlPhases)-1, len(faults), recovered, len(want))
}

// selectAll returns the rows of q by their first column, as text.
func selectAll(t *testing.T, conn *sql.DB, q string) ([]string, map[string][]string) {
	t.Helper()
	r, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	out := map[string][]string{}
	for r.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out[row[0]] = row
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return cols, out
}

// lakeString renders a lake value as MySQL's CAST(... AS CHAR) does.
func lakeString(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case pipeline.Decimal:
		return x.String()
	}
	return fmt.Sprint(v)
}

// checkImage checks that a changelog row's values are those of one write:
// c (from qty) gives price, amount, remark and extra.
func checkImage(v map[string]any) string {
	id, ok := v["id"].(int64)
	if !ok {
		return "id is not a long"
	}
	qty, ok := v["qty"].(int64)
	if !ok {
		return "qty is not a long"
	}
	c := qty % bigQty
	if p, ok := v["price"].(float64); !ok || p != float64(c)+0.5 {
		return fmt.Sprintf("price %v, want %d.5", v["price"], c)
	}
	if a, ok := v["amount"].(pipeline.Decimal); !ok || a.String() != fmt.Sprintf("%d.25", c) {
		return fmt.Sprintf("amount %v, want %d.25", v["amount"], c)
	}
	if r := v["remark"]; r != nil && r != fmt.Sprintf("r%d-%d", id, c) {
		return fmt.Sprintf("remark %v, want r%d-%d", r, id, c)
	}
	if e := v["extra"]; e != nil && e != int32(c%7) {
		return fmt.Sprintf("extra %v, want %d", e, c%7)
	}
	if qty >= bigQty && v["remark"] == nil && v["_op"] != "delete" {
		return "a write after the rename has no remark"
	}
	return ""
}
