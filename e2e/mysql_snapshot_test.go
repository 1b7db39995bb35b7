package e2e

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// everyTypeDDL has a column of every MySQL type the source maps.
const everyTypeDDL = `CREATE TABLE everything (
	id BIGINT NOT NULL PRIMARY KEY,
	i INT, iu INT UNSIGNED, ti TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED,
	b BIGINT, bu BIGINT UNSIGNED,
	d DECIMAL(10,2), dw DECIMAL(30,10),
	f FLOAT, db DOUBLE,
	dt DATE, dtm DATETIME(6), dto DATETIME, ts TIMESTAMP(6) NULL, tm TIME(3), y YEAR,
	ch CHAR(3), vc VARCHAR(50), tx TEXT, bl BLOB, vb VARBINARY(8), bn BINARY(4),
	en ENUM('small','medium','it''s'), st SET('a','b','c'), js JSON, bt BIT(8), g GEOMETRY
) DEFAULT CHARSET=utf8mb4`

const everyTypeCols = 29

// everySelect renders each column of everything as canonical text, NULL
// as SQL NULL; lakeText renders the lake's values the same way. FLOAT and
// DOUBLE are read as values: the argument makes the query a prepared one,
// whose binary protocol carries them exactly.
const everySelect = `SELECT CAST(id AS CHAR), CAST(i AS CHAR), CAST(iu AS CHAR), CAST(ti AS CHAR), CAST(si AS CHAR), CAST(mi AS CHAR),
	CAST(b AS CHAR), CAST(bu AS CHAR), CAST(d AS CHAR), CAST(dw AS CHAR), f, db,
	CAST(dt AS CHAR), CAST(dtm AS CHAR), CAST(dto AS CHAR), CAST(ts AS CHAR), CAST(tm AS CHAR), CAST(y AS CHAR),
	ch, vc, tx, HEX(bl), HEX(vb), HEX(bn), CAST(en AS CHAR), CAST(st AS CHAR), CAST(js AS CHAR), CAST(bt+0 AS CHAR), HEX(ST_AsBinary(g))
	FROM everything WHERE id >= ?`

// everyRow is a random row of everything, NULLs included, as INSERT
// arguments (the geometry as WKT for ST_GeomFromText).
func everyRow(rng *rand.Rand, id int64) []any {
	null := func(v any) any {
		if rng.IntN(12) == 0 {
			return nil
		}
		return v
	}
	str := func(n int) string {
		const alphabet = "abcxyzé✓🚀 '\\\""
		r := []rune(alphabet)
		var b strings.Builder
		for range rng.IntN(n + 1) {
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	bytes := func(n int) []byte {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	ts := time.Date(1971+rng.IntN(60), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e6)*1000, time.UTC)
	dtm := time.Date(1000+rng.IntN(8999), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e6)*1000, time.UTC)
	tm := fmt.Sprintf("%s%d:%02d:%02d.%03d", []string{"", "-"}[rng.IntN(2)], rng.IntN(839), rng.IntN(60), rng.IntN(60), rng.IntN(1000))
	sets := []string{"", "a", "b", "a,c", "a,b,c"}
	enums := []string{"small", "medium", "it's"}
	geo := []string{"POINT(1 2)", "LINESTRING(0 0, 1 1, 2 0.5)", "POLYGON((0 0, 1 0, 1 1, 0 0))"}
	return []any{
		id,
		null(rng.Int32()), null(rng.Uint32()), null(rng.IntN(256)), null(rng.IntN(65536) - 32768), null(rng.IntN(1 << 24)),
		null(int64(rng.Uint64())), null(rng.Uint64()),
		null(fmt.Sprintf("%d.%02d", rng.IntN(2e8)-1e8, rng.IntN(100))), null(fmt.Sprintf("%d.%010d", rng.Int64N(1e18), rng.Int64N(1e10))),
		null(float32(rng.NormFloat64() * 1e3)), null(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))),
		null(ts.Format("2006-01-02")), null(dtm.Format("2006-01-02 15:04:05.000000")), null(dtm.Format("2006-01-02 15:04:05")),
		null(ts.Format("2006-01-02 15:04:05.000000")), null(tm), null(1901 + rng.IntN(255)),
		null(str(3)), null(str(50)), null(str(300)), null(bytes(100)), null(bytes(8)), null(bytes(4)),
		null(enums[rng.IntN(3)]), null(sets[rng.IntN(len(sets))]), null(fmt.Sprintf(`{"k": [%d, "%s"]}`, rng.IntN(100), "v✓")),
		null(rng.IntN(256)), null(geo[rng.IntN(len(geo))]),
	}
}

const everyInsert = `INSERT INTO everything VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,ST_GeomFromText(?))`

// lakeText renders a lake value like everySelect renders the source's.
func lakeText(col string, v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case pipeline.Decimal:
		return x.String()
	case []byte:
		return strings.ToUpper(hex.EncodeToString(x))
	case string:
		return x
	case time.Duration:
		neg := ""
		if x < 0 {
			neg, x = "-", -x
		}
		return fmt.Sprintf("%s%02d:%02d:%02d.%03d", neg, x/time.Hour, x%time.Hour/time.Minute, x%time.Minute/time.Second, x%time.Second/time.Millisecond)
	case time.Time:
		switch col {
		case "dt":
			return x.Format("2006-01-02")
		case "dto":
			return x.Format("2006-01-02 15:04:05")
		}
		return x.Format("2006-01-02 15:04:05.000000")
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// sourceText renders what everySelect returned.
func sourceText(col string, v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		s := string(x)
		switch col {
		case "f":
			f, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return "bad float " + s
			}
			return strconv.FormatFloat(f, 'g', -1, 32)
		case "db":
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return "bad double " + s
			}
			return strconv.FormatFloat(f, 'g', -1, 64)
		case "tm":
			// TIME(3) text is [-]H:MM:SS.fff with as few hour digits as needed.
			neg := strings.HasPrefix(s, "-")
			h, rest, _ := strings.Cut(strings.TrimPrefix(s, "-"), ":")
			hn, _ := strconv.Atoi(h)
			return fmt.Sprintf("%s%02d:%s", map[bool]string{true: "-"}[neg], hn, rest)
		}
		return s
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		if col == "f" {
			return strconv.FormatFloat(float64(float32(x)), 'g', -1, 32)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// A table of every type is snapshotted while a workload changes it, with
// kills during the snapshot and during streaming: the upsert table ends
// equal to SELECT * of the source, value for value, the changelog holds
// every binlog change once and every row at most one snapshot read.
// The snapshot runs once with MariaDB's snapshot positions and once with
// the watermarks that MySQL needs.
func TestMySQLSnapshotEveryTypeExactlyOnce(t *testing.T) {
	for _, method := range []string{"position", "watermark"} {
		t.Run(method, func(t *testing.T) { snapshotEveryType(t, method) })
	}
}

func snapshotEveryType(t *testing.T, method string) {
	db := testinfra.MariaDB(t)
	dsn, err := mysqldrv.ParseDSN(db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if dsn.Params == nil {
		dsn.Params = map[string]string{}
	}
	dsn.Params["time_zone"] = "'+00:00'"
	conn, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, everyTypeDDL); err != nil {
		t.Fatal(err)
	}
	const rows = 20000
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := 0; i < rows; i += 200 {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+200; j++ {
			if _, err := tx.ExecContext(ctx, everyInsert, everyRow(rng, int64(3*j))...); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.yaml")
	yaml := fmt.Sprintf(`job: snap
source:
  mysql:
    dsn: "%s"
    tables: ["%s\\.everything"]
    chunk_size: 300
    snapshot_parallel: 2
    snapshot_method: %[4]s
sink:
  catalog: {type: sql, uri: "sqlite://%[3]s/lake/catalog.db"}
  warehouse: "file://%[3]s/lake/warehouse"
  namespace: lake
  tables:
    - {match: "%[2]s.*", ods: "ods_{table}", dwd: "dwd_{table}", partition: ["bucket(4, id)"]}
checkpoint: {dir: "%[3]s/state", interval: 300ms, max_records: 1000}
log: {format: json}
`, db.CDCDSN(), db.Database, dir, method)
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	// The workload: updates, deletes and inserts of whole random rows.
	var mu sync.Mutex
	changes := 0
	stop := make(chan struct{})
	wlDone := make(chan error, 1)
	wrng := rand.New(rand.NewPCG(rng.Uint64(), 8)) // the workload's own: rng stays on this goroutine
	go func() {
		for {
			select {
			case <-stop:
				wlDone <- nil
				return
			default:
			}
			id := int64(wrng.IntN(3*rows + 600))
			var res sql.Result
			var err error
			switch k := wrng.IntN(10); {
			case k < 5:
				r := everyRow(wrng, id)
				res, err = conn.ExecContext(ctx, `UPDATE everything SET i=?, vc=?, db=?, dtm=?, ts=?, tm=?, bl=?, js=?, st=?, g=ST_GeomFromText(?) WHERE id=?`,
					r[1], r[19], r[11], r[13], r[15], r[16], r[21], r[26], r[25], r[28], id)
			case k < 7:
				res, err = conn.ExecContext(ctx, "DELETE FROM everything WHERE id=?", id)
			default:
				res, err = conn.ExecContext(ctx, strings.Replace(everyInsert, "INSERT", "INSERT IGNORE", 1), everyRow(wrng, id)...)
			}
			if err != nil {
				wlDone <- err
				return
			}
			n, _ := res.RowsAffected()
			mu.Lock()
			changes += int(n)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// Kill daemons at random moments: the first rounds fall in the
	// snapshot, the later ones in streaming.
	runner := &job{dir: dir, path: jobPath}
	kills := rand.New(rand.NewPCG(rng.Uint64(), 9))
	inSnapshot, inStream := 0, 0
	for round := 0; round < 7; round++ {
		plan := &killPlan{afterCheckpoints: 1 + kills.IntN(3), delay: time.Duration(kills.IntN(400)) * time.Millisecond, maxWait: 20 * time.Second}
		if round < 3 {
			// Early in the run: the snapshot is under way.
			plan.afterCheckpoints, plan.delay = 1, time.Duration(kills.IntN(150))*time.Millisecond
		}
		r := runner.run(t, sluiceBin, nil, plan, "run", "-c", jobPath)
		if !r.killed {
			t.Fatalf("round %d ended by itself: %v\n%s", round, r.err, tail(r.stderr, 20))
		}
		// The last checkpoint this daemon completed says where it was.
		last := ""
		for _, line := range strings.Split(r.stderr, "\n") {
			if strings.Contains(line, `"msg":"checkpoint complete"`) {
				last = line
			}
		}
		if strings.Contains(last, "snapshot=") {
			inSnapshot++
		} else if last != "" {
			inStream++
		}
	}
	close(stop)
	if err := <-wlDone; err != nil {
		t.Fatal(err)
	}
	if inSnapshot < 2 || inStream < 2 {
		t.Errorf("kills during the snapshot %d, during streaming %d: want at least 2 of each", inSnapshot, inStream)
	}

	// A last daemon catches up and stops.
	var final string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&final); err != nil {
		t.Fatal(err)
	}
	daemon := startLiveDaemon(t, jobPath)
	daemon.stopAtGTID(t, final, 3*time.Minute)

	// SELECT * versus the upsert table, every column.
	cols := []string{"id", "i", "iu", "ti", "si", "mi", "b", "bu", "d", "dw", "f", "db", "dt", "dtm", "dto", "ts", "tm", "y",
		"ch", "vc", "tx", "bl", "vb", "bn", "en", "st", "js", "bt", "g"}
	want := map[string][]string{}
	r, err := conn.QueryContext(ctx, everySelect, 0)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		vals := make([]any, everyTypeCols)
		ptrs := make([]any, everyTypeCols)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, everyTypeCols)
		for i, v := range vals {
			row[i] = sourceText(cols[i], v)
		}
		want[row[0]] = row
	}
	r.Close()
	sink := lakeAt(dir)
	got := map[string][]string{}
	err = lake.ScanTable(ctx, sink, "lake.dwd_everything", 0, func(names []string, vals []any) error {
		byName := map[string]any{}
		for i, c := range names {
			byName[c] = vals[i]
		}
		row := make([]string, everyTypeCols)
		for i, c := range cols {
			row[i] = lakeText(c, byName[c])
		}
		if _, dup := got[row[0]]; dup {
			return fmt.Errorf("id %s twice", row[0])
		}
		got[row[0]] = row
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) < rows/2 {
		t.Errorf("dwd_everything has %d rows, the source %d", len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("id %s: missing from the lake", id)
			}
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				bad++
				if bad <= 10 {
					t.Errorf("id %s column %s: lake %q, source %q", id, cols[i], g[i], w[i])
				}
			}
		}
	}

	// The changelog: each binlog change once, each row read at most once.
	seen, reads := map[string]int{}, map[int64]int{}
	binlog := 0
	err = lake.ScanTable(ctx, sink, "lake.ods_everything", 0, func(names []string, vals []any) error {
		var pos, op string
		var id int64
		for i, c := range names {
			switch c {
			case "_pos":
				pos = vals[i].(string)
			case "_op":
				op = vals[i].(string)
			case "id":
				id = vals[i].(int64)
			}
		}
		seen[pos]++
		if op == "read" {
			reads[id]++
		} else {
			binlog++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pos, n := range seen {
		if n > 1 {
			t.Errorf("changelog position %s %d times", pos, n)
		}
	}
	for id, n := range reads {
		if n > 1 {
			t.Errorf("row %d read %d times", id, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The binlog changes made before the first start were not streamed:
	// they are part of the snapshot. Those after it are all there.
	if binlog > changes {
		t.Errorf("changelog holds %d binlog changes, the workload made %d", binlog, changes)
	}
	if len(reads) < rows/2 {
		t.Errorf("only %d rows read by the snapshot", len(reads))
	}
	t.Logf("%d rows, %d snapshot reads, %d of %d workload changes streamed; kills: %d in the snapshot, %d streaming; %d mismatches",
		len(want), len(reads), binlog, changes, inSnapshot, inStream, bad)
}
