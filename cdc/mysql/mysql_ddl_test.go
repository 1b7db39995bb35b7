package mysql

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// readErr reads until Read fails, and returns the error.
func readErr(t *testing.T, s *Source) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Read(t.Context()); err != nil {
			return err
		}
	}
	t.Fatal("Read did not fail")
	return nil
}

// render prints a record as "op col=value ..." of its After (or Before).
func render(sr got) string {
	row := sr.rec.Row()
	parts := []string{sr.rec.Op.String()}
	for i, c := range sr.schema.Columns {
		v := row[i]
		s := fmt.Sprintf("%T(%v)", v, v)
		switch x := v.(type) {
		case nil:
			s = "NULL"
		case string:
			s = "'" + x + "'"
		case pipeline.Decimal:
			s = "d" + x.String()
		}
		parts = append(parts, c.Name+"="+s)
	}
	return strings.Join(parts, " ")
}

func schemaString(s *pipeline.Schema) string {
	var parts []string
	for i, c := range s.Columns {
		p := c.Name + " " + typeName(c)
		if slices.Contains(s.Key, i) {
			p += " key"
		}
		if !c.Nullable {
			p += " not null"
		}
		parts = append(parts, p)
	}
	out := fmt.Sprintf("v%d: %s", s.Version, strings.Join(parts, ", "))
	if s.Renamed != nil {
		out += fmt.Sprint(" renamed ", s.Renamed)
	}
	return out
}

// ddlSteps are the statements of TestDDLEvolution: rows, then each DDL
// with rows after it.
var ddlSteps = []string{
	`INSERT INTO items VALUES (1, 'a', 1, 1.5), (2, 'b', 2, 2.5)`,
	`ALTER TABLE items ADD COLUMN note VARCHAR(20) AFTER name`,
	`INSERT INTO items VALUES (3, 'c', 'n3', 3, 3.5)`,
	`UPDATE items SET note = 'n1' WHERE id = 1`,
	`ALTER TABLE items RENAME COLUMN note TO remark`,
	`INSERT INTO items VALUES (4, 'd', 'r4', 4, 4.5)`,
	`ALTER TABLE items DROP COLUMN name`,
	`INSERT INTO items VALUES (5, 'r5', 5, 5.5)`,
	`ALTER TABLE items MODIFY qty BIGINT, MODIFY price DOUBLE`,
	`INSERT INTO items VALUES (6, 'r6', 6000000000, 6.25)`,
	`DELETE FROM items WHERE id = 2`,
}

var ddlWant = []struct{ schema, rec string }{
	{"v1: id int key not null, name string, qty int, price float", "insert id=int32(1) name='a' qty=int32(1) price=float32(1.5)"},
	{"v1: id int key not null, name string, qty int, price float", "insert id=int32(2) name='b' qty=int32(2) price=float32(2.5)"},
	{"v2: id int key not null, name string, note string, qty int, price float", "insert id=int32(3) name='c' note='n3' qty=int32(3) price=float32(3.5)"},
	{"v2: id int key not null, name string, note string, qty int, price float", "update id=int32(1) name='a' note='n1' qty=int32(1) price=float32(1.5)"},
	{"v3: id int key not null, name string, remark string, qty int, price float renamed map[remark:note]", "insert id=int32(4) name='d' remark='r4' qty=int32(4) price=float32(4.5)"},
	{"v4: id int key not null, remark string, qty int, price float", "insert id=int32(5) remark='r5' qty=int32(5) price=float32(5.5)"},
	{"v5: id int key not null, remark string, qty long, price double", "insert id=int32(6) remark='r6' qty=int64(6000000000) price=float64(6.25)"},
	{"v5: id int key not null, remark string, qty long, price double", "delete id=int32(2) remark=NULL qty=int64(2) price=float64(2.5)"},
}

func checkDDLRecords(t *testing.T, recs []got, versionOffset int) {
	t.Helper()
	for i, w := range ddlWant {
		if i >= len(recs) {
			break
		}
		wantSchema := w.schema
		if versionOffset != 0 {
			var v int
			fmt.Sscanf(wantSchema, "v%d:", &v)
			wantSchema = fmt.Sprintf("v%d:", v+versionOffset) + strings.SplitN(wantSchema, ":", 2)[1]
		}
		if g := schemaString(recs[i].schema); g != wantSchema {
			t.Errorf("record %d schema\n got %s\nwant %s", i, g, wantSchema)
		}
		if g := render(recs[i]); g != w.rec {
			t.Errorf("record %d\n got %s\nwant %s", i, g, w.rec)
		}
	}
	// One schema pointer per version.
	ptrs := map[int]*pipeline.Schema{}
	for i, g := range recs {
		if p, ok := ptrs[g.schema.Version]; ok && p != g.schema {
			t.Errorf("record %d: another schema pointer for version %d", i, g.schema.Version)
		}
		ptrs[g.schema.Version] = g.schema
	}
}

// Columns added, renamed, dropped and widened mid-stream: each record
// carries the shape of its table at its point of the binlog, its values
// in the right columns, and the rename is announced. Read again from the
// start, when information_schema has the last shape, the records are the
// same: the shapes come from the binlog.
func TestDDLEvolution(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT, price FLOAT) DEFAULT CHARSET=utf8mb4`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.items`}, StartGTID: start}
	s := newSource(t, cfg, nil)
	defer s.Close()
	if !s.fullMeta {
		t.Fatal("the test server does not write binlog_row_metadata=FULL")
	}
	exec(t, db, ddlSteps...)
	got := readN(t, s, len(ddlWant))
	checkDDLRecords(t, got, 0)
	expectIdle(t, s)
	s.Close()

	// Again from the start: information_schema has the last shape (read
	// at Open as version 1); the binlog's shapes follow.
	again := newSource(t, cfg, nil)
	defer again.Close()
	got = readN(t, again, len(ddlWant))
	checkDDLRecords(t, got, 1)
	expectIdle(t, again)
}

// A checkpoint between a RENAME COLUMN and the first rows after it keeps
// the rename: the source restored from it announces it with those rows.
func TestDDLRenameAcrossRestore(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE r (id INT PRIMARY KEY, a INT, b INT)`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.r`}, StartGTID: start}
	s := newSource(t, cfg, nil)
	defer s.Close()
	exec(t, db, `INSERT INTO r VALUES (1, 10, 100)`, `ALTER TABLE r RENAME COLUMN a TO aa, CHANGE b bb BIGINT`)
	first := readN(t, s, 1)
	expectIdle(t, s) // the ALTER is read and delivered
	p, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var st state
	if err := json.Unmarshal(p.State, &st); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st.Renames) != fmt.Sprintf("map[%s\x00r:map[aa:a bb:b]]", my.Database) {
		t.Errorf("state renames %q", st.Renames)
	}
	s.Close()

	exec(t, db, `INSERT INTO r VALUES (2, 20, 200)`)
	re := newSource(t, cfg, p.State)
	defer re.Close()
	got := readN(t, re, 1)
	if g := schemaString(got[0].schema); g != "v2: id int key not null, aa int, bb long renamed map[aa:a bb:b]" {
		t.Errorf("schema after restore: %s", g)
	}
	if g := render(got[0]); g != "insert id=int32(2) aa=int32(20) bb=int64(200)" {
		t.Errorf("record after restore: %s", g)
	}
	if g := schemaString(first[0].schema); g != "v1: id int key not null, a int, b int" {
		t.Errorf("first schema: %s", g)
	}
	p2, err := re.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(p2.State), "renames") {
		t.Errorf("the rename is still pending after its rows: %s", p2.State)
	}
}

// The policies: fail stops at any DDL of a captured table, naming it and
// its position; evolve stops at a change the lake cannot follow, naming
// the column, the change, the position and the remedy; skip goes on
// without it.
func TestDDLPolicies(t *testing.T) {
	if c := (Config{DSN: "u:p@tcp(h:1)/", Tables: []string{"x"}, DDL: "ignore"}); func() error { c.Defaults(); return c.Validate() }() == nil ||
		!strings.Contains(func() string { c.Defaults(); return c.Validate().Error() }(), `source.mysql.ddl: "ignore" is not one of`) {
		t.Error("an unknown ddl policy is accepted")
	}
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE p (id INT PRIMARY KEY, a INT, s VARCHAR(10))`, `CREATE TABLE other (id INT PRIMARY KEY)`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	exec(t, db,
		`INSERT INTO p VALUES (1, 1, 'x')`,
		`ALTER TABLE other ADD COLUMN z INT`, // not captured: ignored by every policy
		`ALTER TABLE p MODIFY a VARCHAR(10)`,
		`INSERT INTO p VALUES (2, '2', 'y')`,
		`TRUNCATE TABLE p`,
		`INSERT INTO p VALUES (3, '3', 'z')`,
	)
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.p`}, StartGTID: start}

	t.Run("fail", func(t *testing.T) {
		c := cfg
		c.DDL = DDLFail
		s := newSource(t, c, nil)
		defer s.Close()
		err := readErr(t, s)
		for _, w := range []string{"ALTER TABLE of captured table " + my.Database + ".p at GTID 0-1-", "`ALTER TABLE p MODIFY a VARCHAR(10)`", `source.mysql.ddl is "fail"`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	})
	t.Run("evolve", func(t *testing.T) {
		s := newSource(t, cfg, nil)
		defer s.Close()
		err := readErr(t, s)
		if !errors.Is(err, errInexpressible) {
			t.Errorf("error %v is not errInexpressible", err)
		}
		for _, w := range []string{"table " + my.Database + ".p changed shape at GTID 0-1-", "after `ALTER TABLE p MODIFY a VARCHAR(10)`",
			"column a changes from int to string", "Set source.mysql.ddl: skip to continue without it (the column keeps its type and is NULL from here on)"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	})
	t.Run("skip", func(t *testing.T) {
		c := cfg
		c.DDL = DDLSkip
		s := newSource(t, c, nil)
		defer s.Close()
		got := readN(t, s, 3)
		var lines []string
		for _, g := range got {
			lines = append(lines, schemaString(g.schema)+" | "+render(g))
		}
		want := []string{
			// v1 is the shape information_schema has now (a is a
			// VARCHAR), which the binlog's first rows replace.
			"v2: id int key not null, a int, s string | insert id=int32(1) a=int32(1) s='x'",
			"v2: id int key not null, a int, s string | insert id=int32(2) a=NULL s='y'",
			"v2: id int key not null, a int, s string | insert id=int32(3) a=NULL s='z'",
		}
		if !slices.Equal(lines, want) {
			t.Errorf("records:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		expectIdle(t, s)
	})
}

// TRUNCATE and DROP of a captured table stop ddl: evolve; a table created
// after the start that matches is captured from its first rows, with the
// shape and key of its table map.
func TestDDLTableLifecycle(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE keep (id INT PRIMARY KEY)`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	exec(t, db,
		`CREATE TABLE fresh (k VARCHAR(8) NOT NULL, n INT UNSIGNED, d DECIMAL(12,3), e ENUM('x','y'), PRIMARY KEY (k))`,
		`INSERT INTO fresh VALUES ('a', 4294967295, 1.5, 'y')`,
		`TRUNCATE TABLE fresh`,
		`INSERT INTO fresh VALUES ('b', 1, 2.25, 'x')`,
		`DROP TABLE fresh`,
	)
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.(keep|fresh)`}, StartGTID: start}
	s := newSource(t, cfg, nil)
	defer s.Close()
	err := readErr(t, s)
	for _, w := range []string{"TRUNCATE TABLE of captured table " + my.Database + ".fresh at GTID", "`TRUNCATE TABLE fresh`", "Set source.mysql.ddl: skip to continue without it"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	s.Close()

	c := cfg
	c.DDL = DDLSkip
	s = newSource(t, c, nil)
	defer s.Close()
	got := readN(t, s, 2)
	if g := schemaString(got[0].schema) + " | " + render(got[0]); g != "v1: k string key not null, n long, d decimal(12,3), e string | insert k='a' n=int64(4294967295) d=d1.500 e='y'" {
		t.Errorf("new table: %s", g)
	}
	if render(got[1]) != "insert k='b' n=int64(1) d=d2.250 e='x'" {
		t.Errorf("after the skipped TRUNCATE: %s", render(got[1]))
	}
	expectIdle(t, s)
	if _, ok := s.tables[my.Database+"\x00fresh"]; ok {
		t.Error("a dropped table is still known")
	}
}

// The table map of every type the source maps gives the shape that
// information_schema gives: no spurious schema change.
func TestTableMapMatchesInformationSchema(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, typesDDL, `CREATE TABLE geo (id BIGINT UNSIGNED PRIMARY KEY, g GEOMETRY, b BINARY(3), c CHAR(2), j LONGTEXT, t TINYTEXT, m MEDIUMBLOB)`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.(types|geo)`}, StartGTID: start}
	s := newSource(t, cfg, nil)
	defer s.Close()
	before := map[string]*table{}
	for k, tb := range s.tables {
		before[k] = tb
	}
	exec(t, db, `INSERT INTO types VALUES `+fullRow, `INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1 2)'), 'ab', 'c', 'j', 't', 'm')`)
	got := readN(t, s, 2)
	for _, g := range got {
		k := my.Database + "\x00" + g.schema.Table.Name
		if g.schema != before[k].schema {
			t.Errorf("%s: the table map gave another schema: %s, information_schema %s", g.schema.Table, schemaString(g.schema), schemaString(before[k].schema))
		}
		if now := s.tables[k]; now != before[k] {
			for i := range now.cols {
				if a, b := now.cols[i], before[k].cols[i]; fmt.Sprint(a) != fmt.Sprint(b) {
					t.Errorf("%s column %s: table map %+v, information_schema %+v", g.schema.Table, g.schema.Columns[i].Name, a, b)
				}
			}
		}
	}
	if !equalRow(got[0].rec.After, fullValues()) {
		t.Errorf("types row %#v", got[0].rec.After)
	}
}

// DDL on a table whose snapshot is being read: the chunks read from then
// on select the new columns, those read before are handed out with the
// old shape at their points, and applying every record in order gives
// the table as SELECT * shows it, values by column name.
func TestDDLDuringSnapshot(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE sd (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20)) DEFAULT CHARSET=utf8mb4`)
	const n = 3000
	var ins strings.Builder
	for i := 0; i < n; i += 500 {
		ins.Reset()
		ins.WriteString("INSERT INTO sd VALUES ")
		for j := i; j < i+500; j++ {
			if j > i {
				ins.WriteString(",")
			}
			fmt.Fprintf(&ins, "(%d, %d, 'n%d')", j, j, j)
		}
		exec(t, db, ins.String())
	}
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.sd`}, ChunkSize: 50, SnapshotParallel: 3}
	s := newSource(t, cfg, nil)
	defer s.Close()

	// The lake, by id: column name -> value.
	lake := map[int32]map[string]any{}
	var last *pipeline.Schema
	renamed := 0
	apply := func(recs []got) {
		for _, r := range recs {
			if r.schema != last && r.schema.Renamed != nil {
				// What the lake does: rename, keeping the values.
				renamed++
				for _, m := range lake {
					for nw, old := range r.schema.Renamed {
						if v, ok := m[old]; ok {
							m[nw] = v
							delete(m, old)
						}
					}
				}
			}
			last = r.schema
			row := r.rec.Row()
			if len(row) != len(r.schema.Columns) {
				t.Fatalf("record at %s has %d values, its schema %d columns", r.rec.Position, len(row), len(r.schema.Columns))
			}
			id := row[0].(int32)
			if r.rec.Op == pipeline.OpDelete {
				delete(lake, id)
				continue
			}
			m := map[string]any{}
			for i, c := range r.schema.Columns {
				m[c.Name] = row[i]
			}
			lake[id] = m
		}
	}
	read := func() int {
		b, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			return 0
		}
		var recs []got
		for _, r := range b.Records {
			recs = append(recs, got{table: b.Schema.Table.Name, rec: r, schema: b.Schema})
		}
		apply(recs)
		return len(recs)
	}
	got := 0
	for got < 400 {
		got += read()
	}
	exec(t, db,
		`UPDATE sd SET v = v + 1 WHERE id IN (1, 1500, 2999)`,
		`ALTER TABLE sd RENAME COLUMN note TO remark, ADD COLUMN extra INT AFTER v`,
		`UPDATE sd SET extra = id, remark = CONCAT('r', id) WHERE id IN (2, 1501, 2998)`,
		`INSERT INTO sd VALUES (5000, 1, 7, 'new')`,
		`DELETE FROM sd WHERE id = 3`,
	)
	var final string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&final); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(s.snapTodo) > 0 || s.delivered != final {
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: %d tables in the snapshot, at %s of %s", len(s.snapTodo), s.delivered, final)
		}
		read()
	}
	if renamed != 1 {
		t.Errorf("the rename was announced %d times", renamed)
	}
	_, want := selectRows(t, db, "SELECT id, v, extra, remark FROM sd")
	if len(lake) != len(want) {
		t.Errorf("%d rows applied, the table has %d", len(lake), len(want))
	}
	bad := 0
	for id, w := range want {
		g := lake[id]
		gs := fmt.Sprintf("%v %v %v", g["v"], g["extra"], g["remark"])
		if gs != w {
			bad++
			if bad < 10 {
				t.Errorf("id %d: applied %s (%v), table %s", id, gs, g, w)
			}
		}
	}
}

// selectRows maps the first column (an int) of q's rows to the rest,
// printed like the test's applied rows.
func selectRows(t *testing.T, db *sql.DB, q string) ([]string, map[int32]string) {
	t.Helper()
	r, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	out := map[int32]string{}
	for r.Next() {
		var id int32
		var v int32
		var extra sql.NullInt32
		var remark sql.NullString
		if err := r.Scan(&id, &v, &extra, &remark); err != nil {
			t.Fatal(err)
		}
		var e, rm any = "<nil>", "<nil>"
		if extra.Valid {
			e = extra.Int32
		}
		if remark.Valid {
			rm = remark.String
		}
		out[id] = fmt.Sprintf("%v %v %v", v, e, rm)
	}
	return cols, out
}
