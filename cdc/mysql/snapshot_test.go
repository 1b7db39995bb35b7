package mysql

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// readAll reads a bounded source to its end.
func readAll(t *testing.T, s *Source) []got {
	t.Helper()
	var out []got
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no end of input after %d records", len(out))
		}
		b, err := s.Read(t.Context())
		if errors.Is(err, pipeline.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batchRecs(t, b)...)
	}
}

// The snapshot reads every type to the same values as the binlog does.
func TestSnapshotTypes(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, typesDDL, "INSERT INTO types VALUES "+fullRow, "INSERT INTO types (id) VALUES (2)",
		`SET SESSION sql_mode = ''; INSERT INTO types (id, dt, dtm, ts) VALUES (3, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00')`,
		`CREATE TABLE geo (id INT PRIMARY KEY, g GEOMETRY, p POINT)`,
		`INSERT INTO geo VALUES (1, ST_GeomFromText('LINESTRING(0 0, 1 1)'), ST_GeomFromText('POINT(1 2)')), (2, NULL, NULL)`,
		`CREATE TABLE nokey (a INT NOT NULL, b VARCHAR(8)) DEFAULT CHARSET=utf8mb4`,
		`INSERT INTO nokey VALUES (2, 'two'), (1, 'one'), (3, 'three')`)
	q := regexp.QuoteMeta(my.Database)
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{q + `\.(types|geo|nokey)`}, Snapshot: SnapshotInitialOnly, ChunkSize: 2,
		Keys: map[string][]string{my.Database + ".nokey": {"a"}}}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(t.Context(), pipeline.OpenOptions{AvailableNow: true}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := readAll(t, s)

	// POINT(1 2) and LINESTRING(0 0, 1 1) as WKB (little endian).
	point := []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40}
	line := []byte{1, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}
	zero := nullValues(3)
	wants := []want{
		{table: "geo", op: pipeline.OpRead, after: []any{int32(1), line, point}},
		{table: "geo", op: pipeline.OpRead, after: []any{int32(2), nil, nil}},
		{table: "nokey", op: pipeline.OpRead, after: []any{int32(1), "one"}},
		{table: "nokey", op: pipeline.OpRead, after: []any{int32(2), "two"}},
		{table: "nokey", op: pipeline.OpRead, after: []any{int32(3), "three"}},
		{table: "types", op: pipeline.OpRead, after: fullValues()},
		{table: "types", op: pipeline.OpRead, after: nullValues(2)},
		{table: "types", op: pipeline.OpRead, after: zero},
	}
	checkRecords(t, recs, wants)
	if pos, err := s.Snapshot(); err != nil || strings.Contains(string(pos.State), "snapshot") {
		t.Errorf("state after the backfill: %s, %v", pos.State, err)
	}

	// The same rows through the binlog convert to the same values.
	st := newSource(t, Config{DSN: my.CDCDSN(), Tables: []string{q + `\.(types|geo)`}, Snapshot: SnapshotNever}, nil)
	defer st.Close()
	exec(t, db, "DELETE FROM types WHERE id = 1", "INSERT INTO types VALUES "+fullRow, "DELETE FROM geo WHERE id = 1",
		`INSERT INTO geo VALUES (1, ST_GeomFromText('LINESTRING(0 0, 1 1)'), ST_GeomFromText('POINT(1 2)'))`)
	checkRecords(t, readN(t, st, 4), []want{
		{table: "types", op: pipeline.OpDelete, before: fullValues()},
		{table: "types", op: pipeline.OpInsert, after: fullValues()},
		{table: "geo", op: pipeline.OpDelete, before: []any{int32(1), line, point}},
		{table: "geo", op: pipeline.OpInsert, after: []any{int32(1), line, point}},
	})
}

// snapRow is a row of the test tables as the lake would hold it.
type snapRow struct {
	grp  string
	v    int32
	note any
}

// A snapshot taken while a workload changes the tables, with restarts
// from checkpoints at random cuts, ends equal to SELECT * and reads no row
// twice: with MariaDB's snapshot positions, and with the watermarks MySQL
// needs (run here on MariaDB, with a pause between each chunk's snapshot
// and its high watermark so that the workload lands changes in the gap,
// which the reconciliation must take out of the chunk).
func TestSnapshotUnderLoad(t *testing.T) {
	for _, m := range []string{MethodPosition, MethodWatermark} {
		t.Run(m, func(t *testing.T) { snapshotUnderLoad(t, testinfra.MariaDB(t), m) })
	}
}

// The same on MySQL 8, where the watermark method is the only one (its
// low and high watermarks are @@gtid_executed). It skips without a Docker
// engine, as on the project's CI machine.
func TestMySQL8SnapshotUnderLoad(t *testing.T) {
	snapshotUnderLoad(t, testinfra.MySQL8(t), "")
}

func snapshotUnderLoad(t *testing.T, my *testinfra.MySQL, method string) {
	db := openDB(t, my)
	exec(t, db,
		`CREATE TABLE s1 (id INT PRIMARY KEY, grp VARCHAR(8) NOT NULL, v INT NOT NULL, note VARCHAR(40)) DEFAULT CHARSET=utf8mb4`,
		`CREATE TABLE s2 (a INT NOT NULL, b VARCHAR(8) NOT NULL, v INT NOT NULL, note VARCHAR(40), PRIMARY KEY (a, b)) DEFAULT CHARSET=utf8mb4`)
	const n1, n2 = 4000, 1500
	var ins strings.Builder
	for i := 0; i < n1; i += 500 {
		ins.Reset()
		ins.WriteString("INSERT INTO s1 VALUES ")
		for j := i; j < i+500; j++ {
			if j > i {
				ins.WriteString(",")
			}
			fmt.Fprintf(&ins, "(%d, 'g%d', %d, 'n%d')", 2*j, j%7, j, j)
		}
		exec(t, db, ins.String())
	}
	ins.Reset()
	ins.WriteString("INSERT INTO s2 VALUES ")
	for j := 0; j < n2; j++ {
		if j > 0 {
			ins.WriteString(",")
		}
		fmt.Fprintf(&ins, "(%d, 'k%d', %d, NULL)", j%300, j/300, j)
	}
	exec(t, db, ins.String())

	q := regexp.QuoteMeta(my.Database)
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{q + `\.s[12]`}, ChunkSize: 97, SnapshotParallel: 3, SnapshotMethod: method}
	var superseded int64
	open := func(state []byte) *Source {
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if method != MethodPosition {
			s.watermarkPause = 5 * time.Millisecond
		}
		if err := s.Open(t.Context(), pipeline.OpenOptions{State: state}); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The workload runs until told to stop, on its own connection pool.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wlErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch k := rng.IntN(10); {
			case k < 4:
				_, err = db.Exec("UPDATE s1 SET v = v + 1, note = ? WHERE id = ?", fmt.Sprint("u", i), rng.IntN(2*n1+200))
			case k < 5:
				_, err = db.Exec("DELETE FROM s1 WHERE id = ?", rng.IntN(2*n1+200))
			case k < 7:
				_, err = db.Exec("INSERT IGNORE INTO s1 VALUES (?, 'new', ?, NULL)", rng.IntN(2*n1+200), i)
			case k < 8:
				_, err = db.Exec("UPDATE s2 SET v = v + 1, note = ? WHERE a = ?", fmt.Sprint("w", i), rng.IntN(300))
			case k < 9:
				_, err = db.Exec("DELETE FROM s2 WHERE a = ? AND b = ?", rng.IntN(300), fmt.Sprint("k", rng.IntN(6)))
			default:
				tx, e := db.Begin()
				if e != nil {
					err = e
					break
				}
				for j := 0; j < 5; j++ {
					if _, e := tx.Exec("INSERT IGNORE INTO s2 VALUES (?, ?, ?, 'tx')", rng.IntN(300), fmt.Sprint("k", rng.IntN(8)), i); e != nil {
						err = e
					}
				}
				if e := tx.Commit(); e != nil && err == nil {
					err = e
				}
			}
			if err != nil {
				wlErr = err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	stopped := false
	stopWorkload := func() {
		if !stopped {
			close(stop)
			wg.Wait()
			stopped = true
			if wlErr != nil {
				t.Fatal(wlErr)
			}
		}
	}
	defer stopWorkload()

	// The lake: rows by table and key, changed only at checkpoints.
	lake := map[string]snapRow{}
	reads := map[string]int{}
	var pending []got
	apply := func() {
		for _, g := range pending {
			row := g.rec.Row()
			key := g.table + fmt.Sprint(row[0])
			if g.table == "s2" {
				key += "/" + fmt.Sprint(row[1])
			}
			if g.rec.Op == pipeline.OpRead {
				reads[key]++
			}
			if g.rec.Op == pipeline.OpDelete {
				delete(lake, key)
				continue
			}
			a := g.rec.After
			if g.table == "s1" {
				lake[key] = snapRow{grp: a[1].(string), v: a[2].(int32), note: a[3]}
			} else {
				lake[key] = snapRow{v: a[2].(int32), note: a[3]}
			}
		}
		pending = nil
	}

	rng := rand.New(rand.NewPCG(3, 4))
	var state []byte
	s := open(nil)
	defer func() { s.Close() }()
	restarts, checkpoints := 0, 0
	for restarts < 6 || len(s.snapTodo) > 0 {
		b, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, batchRecs(t, b)...)
		switch rng.IntN(8) {
		case 0: // a checkpoint
			pos, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			state = pos.State
			apply()
			checkpoints++
		case 1: // a crash: what came after the last checkpoint is lost
			if restarts >= 6 {
				continue
			}
			superseded += s.snapDropped
			s.Close()
			pending = nil
			s = open(state)
			restarts++
		}
	}
	if checkpoints < 5 {
		t.Fatalf("only %d checkpoints during the snapshot", checkpoints)
	}
	stopWorkload()

	// Catch up with the binlog's end, then compare.
	var final string
	mysql8 := s.flavor == "mysql"
	posQuery := "SELECT @@GLOBAL.gtid_current_pos"
	if mysql8 {
		posQuery = "SELECT @@GLOBAL.gtid_executed"
	}
	if err := db.QueryRow(posQuery).Scan(&final); err != nil {
		t.Fatal(err)
	}
	final = strings.Join(strings.Fields(final), "")
	caughtUp := func() bool {
		if !mysql8 {
			return s.delivered == final
		}
		// MySQL's set includes other tests' transactions: compare sets.
		want, err := gomysql.ParseMysqlGTIDSet(final)
		if err != nil {
			t.Fatal(err)
		}
		have, err := gomysql.ParseMysqlGTIDSet(s.delivered)
		if err != nil {
			t.Fatal(err)
		}
		return have.Contain(want)
	}
	deadline := time.Now().Add(time.Minute)
	for !caughtUp() || len(s.ready) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stream at %s, want %s", s.delivered, final)
		}
		b, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, batchRecs(t, b)...)
	}
	apply()
	superseded += s.snapDropped
	if method != MethodPosition && superseded == 0 {
		t.Errorf("the watermark reconciliation dropped no snapshot row: the workload changed nothing between a chunk's snapshot and its high watermark, so the test proves nothing")
	}

	want := map[string]snapRow{}
	load := func(query string, key func(a any, b string) string, withGrp bool) {
		rows, err := db.Query(query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a int
			var b string
			var v int32
			var note sql.NullString
			if err := rows.Scan(&a, &b, &v, &note); err != nil {
				t.Fatal(err)
			}
			r := snapRow{v: v}
			if withGrp {
				r.grp = b
			}
			if note.Valid {
				r.note = note.String
			}
			want[key(a, b)] = r
		}
	}
	load("SELECT id, grp, v, note FROM s1", func(a any, _ string) string { return "s1" + fmt.Sprint(a) }, true)
	load("SELECT a, b, v, note FROM s2", func(a any, b string) string { return "s2" + fmt.Sprint(a) + "/" + b }, false)
	if len(want) < n1/2 {
		t.Fatalf("the source has only %d rows", len(want))
	}
	bad := 0
	for k, w := range want {
		if g, ok := lake[k]; !ok || g != w {
			bad++
			if bad < 10 {
				t.Errorf("%s: lake %+v (present %v), source %+v", k, g, ok, w)
			}
		}
	}
	for k, g := range lake {
		if _, ok := want[k]; !ok {
			bad++
			if bad < 10 {
				t.Errorf("%s: in the lake (%+v), not in the source", k, g)
			}
		}
	}
	twice := 0
	for k, c := range reads {
		if c > 1 {
			twice++
			if twice < 5 {
				t.Errorf("%s read %d times", k, c)
			}
		}
	}
	t.Logf("%d rows, %d read by the snapshot, %d superseded by the binlog, %d checkpoints, %d restarts, %d mismatches",
		len(want), len(reads), superseded, checkpoints, restarts, bad)

	// run --once from the last state: catches up and ends.
	pos, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	once, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := once.Open(t.Context(), pipeline.OpenOptions{State: pos.State, AvailableNow: true}); err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	exec(t, db, "UPDATE s1 SET v = -1 WHERE id = 2")
	if recs := readAll(t, once); len(recs) != 0 {
		t.Errorf("run --once read %d records made after it opened: %v", len(recs), recs)
	}
}
