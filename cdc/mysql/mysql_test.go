package mysql

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// got is one record as read, with its table and the schema of its batch.
type got struct {
	table  string
	rec    pipeline.Record
	schema *pipeline.Schema
}

func openDB(t *testing.T, my *testinfra.MySQL) *sql.DB {
	t.Helper()
	// Session time zone UTC, so TIMESTAMP literals are UTC instants.
	db, err := sql.Open("mysql", my.DSN()+"?multiStatements=true&time_zone=%27%2B00%3A00%27")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func newSource(t *testing.T, cfg Config, state []byte) *Source {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(t.Context(), pipeline.OpenOptions{State: state}); err != nil {
		t.Fatal(err)
	}
	return s
}

// readN reads until n records arrived (or fails after a deadline).
func readN(t *testing.T, s *Source, n int) []got {
	t.Helper()
	var out []got
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d records, want %d", len(out), n)
		}
		b, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batchRecs(t, b)...)
	}
	if len(out) != n {
		t.Fatalf("read %d records, want %d", len(out), n)
	}
	return out
}

func batchRecs(t *testing.T, b *pipeline.Batch) []got {
	t.Helper()
	if b == nil {
		return nil
	}
	if len(b.Records) == 0 || len(b.Records) > maxBatch {
		t.Fatalf("batch of %d records", len(b.Records))
	}
	var out []got
	for _, r := range b.Records {
		out = append(out, got{table: b.Schema.Table.Name, rec: r, schema: b.Schema})
	}
	return out
}

// expectIdle checks that nothing more arrives and that an idle Read
// returns promptly.
func expectIdle(t *testing.T, s *Source) {
	t.Helper()
	for range 2 {
		began := time.Now()
		b, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			t.Fatalf("unexpected batch of %s: %+v", b.Schema.Table, b.Records)
		}
		if d := time.Since(began); d > 1500*time.Millisecond {
			t.Fatalf("idle Read took %v", d)
		}
	}
}

func utc(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

const typesDDL = `CREATE TABLE types (
	id INT NOT NULL PRIMARY KEY,
	i INT, iu INT UNSIGNED, ti TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED,
	b BIGINT, bu BIGINT UNSIGNED,
	d DECIMAL(10,2), dw DECIMAL(30,10),
	f FLOAT, db DOUBLE,
	dt DATE, dtm DATETIME(6), dto DATETIME, ts TIMESTAMP(6) NULL, tm TIME, tm3 TIME(3), y YEAR,
	ch CHAR(3), vc VARCHAR(50), tx TEXT, bl BLOB, vb VARBINARY(8), bn BINARY(4),
	en ENUM('small','medium','it''s'), st SET('a','b','c'), js JSON, bt BIT(8)
) DEFAULT CHARSET=utf8mb4`

const fullRow = `(1, -5, 4294967295, 255, -300, 16777215,
	-9223372036854775808, 18446744073709551615,
	-12345678.91, 12345678901234567890.0123456789,
	1.5, 3.141592653589793,
	'2024-02-29', '2024-02-29 13:14:15.123456', '1969-07-20 20:17:40', '2024-03-01 01:02:03.654321',
	'-838:59:59', '12:34:56.789', 2024,
	'ab', 'héllo 🚀', 'long text', x'00FF10', x'0102', x'0A00',
	'it''s', 'a,c', '{"k": [1, 2]}', b'10100101')`

func fullValues() []any {
	return []any{
		int32(1), int32(-5), int64(4294967295), int32(255), int32(-300), int32(16777215),
		int64(-9223372036854775808), "18446744073709551615",
		pipeline.Decimal{Unscaled: -1234567891, Scale: 2}, "12345678901234567890.0123456789",
		float32(1.5), 3.141592653589793,
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), utc("2024-02-29 13:14:15.123456"), utc("1969-07-20 20:17:40"),
		utc("2024-03-01 01:02:03.654321"),
		-(838*time.Hour + 59*time.Minute + 59*time.Second), 12*time.Hour + 34*time.Minute + 56*time.Second + 789*time.Millisecond,
		int32(2024),
		"ab", "héllo 🚀", "long text", []byte{0, 0xff, 0x10}, []byte{1, 2}, []byte{0x0a, 0, 0, 0},
		"it's", "a,c", `{"k": [1, 2]}`, int64(0xa5),
	}
}

func nullValues(id int32) []any {
	v := make([]any, 29)
	v[0] = id
	return v
}

func with(v []any, i int, x any) []any {
	c := append([]any(nil), v...)
	c[i] = x
	return c
}

type want struct {
	table         string
	op            pipeline.Op
	before, after []any
}

func equalValue(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y) && y.Location() == time.UTC
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return a == b
}

func equalRow(a, b []any) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalValue(a[i], b[i]) {
			return false
		}
	}
	return true
}

func checkRecords(t *testing.T, gots []got, wants []want) {
	t.Helper()
	if len(gots) != len(wants) {
		t.Errorf("got %d records, want %d", len(gots), len(wants))
	}
	for i := range min(len(gots), len(wants)) {
		g, w := gots[i], wants[i]
		if g.table != w.table || g.rec.Op != w.op || !equalRow(g.rec.Before, w.before) || !equalRow(g.rec.After, w.after) {
			t.Errorf("record %d at %s:\n got %s %s before=%#v after=%#v\nwant %s %s before=%#v after=%#v",
				i, g.rec.Position, g.table, g.rec.Op, g.rec.Before, g.rec.After, w.table, w.op, w.before, w.after)
		}
		if g.rec.EventTime.IsZero() || time.Since(g.rec.EventTime) > time.Hour {
			t.Errorf("record %d: event time %v", i, g.rec.EventTime)
		}
	}
}

func TestStream(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, typesDDL,
		`CREATE TABLE second (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (b, a)) DEFAULT CHARSET=utf8mb4`,
		`CREATE TABLE other (id INT PRIMARY KEY, v INT)`)

	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.(types|second|late)`}, Snapshot: SnapshotNever}
	s := newSource(t, cfg, nil)
	defer s.Close()
	if s.flavor != "mariadb" {
		t.Errorf("flavor %q, want mariadb", s.flavor)
	}

	// Schemas.
	ty := s.tables[my.Database+"\x00types"]
	if ty == nil {
		t.Fatal("types not captured")
	}
	wantTypes := []pipeline.Type{
		pipeline.TypeInt32, pipeline.TypeInt32, pipeline.TypeInt64, pipeline.TypeInt32, pipeline.TypeInt32, pipeline.TypeInt32,
		pipeline.TypeInt64, pipeline.TypeString,
		pipeline.TypeDecimal, pipeline.TypeString,
		pipeline.TypeFloat32, pipeline.TypeFloat64,
		pipeline.TypeDate, pipeline.TypeTimestamp, pipeline.TypeTimestamp, pipeline.TypeTimestampTZ, pipeline.TypeTime, pipeline.TypeTime,
		pipeline.TypeInt32,
		pipeline.TypeString, pipeline.TypeString, pipeline.TypeString, pipeline.TypeBinary, pipeline.TypeBinary, pipeline.TypeBinary,
		pipeline.TypeString, pipeline.TypeString, pipeline.TypeString, pipeline.TypeInt64,
	}
	if len(ty.schema.Columns) != len(wantTypes) {
		t.Fatalf("types has %d columns, want %d", len(ty.schema.Columns), len(wantTypes))
	}
	for i, c := range ty.schema.Columns {
		if c.Type != wantTypes[i] {
			t.Errorf("column %s: type %s, want %s", c.Name, c.Type, wantTypes[i])
		}
		if c.Nullable != (i != 0) {
			t.Errorf("column %s: nullable %v", c.Name, c.Nullable)
		}
	}
	if d := ty.schema.Columns[8]; d.Precision != 10 || d.Scale != 2 {
		t.Errorf("d: decimal(%d,%d), want (10,2)", d.Precision, d.Scale)
	}
	if ty.schema.Table != (pipeline.TableID{Namespace: my.Database, Name: "types"}) || fmt.Sprint(ty.schema.Key) != "[0]" {
		t.Errorf("types schema %v key %v", ty.schema.Table, ty.schema.Key)
	}
	sec := s.tables[my.Database+"\x00second"]
	if sec == nil || fmt.Sprint(sec.schema.Key) != "[1 0]" {
		t.Fatalf("second: %+v", sec)
	}
	if _, ok := s.tables[my.Database+"\x00other"]; ok {
		t.Error("other is captured")
	}

	full := fullValues()
	exec(t, db,
		`INSERT INTO types VALUES `+fullRow,
		`INSERT INTO types (id) VALUES (2)`,
		`INSERT INTO second VALUES (1, 'x', 10)`,
		`INSERT INTO other VALUES (1, 1)`,
		`UPDATE types SET vc = 'changed', bu = 0 WHERE id = 1`,
		`BEGIN; INSERT INTO types (id, i) VALUES (3, 30); INSERT INTO other VALUES (2, 2);
		 INSERT INTO second VALUES (2, 'y', 20), (3, 'y', NULL); UPDATE second SET v = 11 WHERE a = 1;
		 DELETE FROM types WHERE id = 2; COMMIT`,
		`BEGIN; INSERT INTO types (id) VALUES (99); INSERT INTO second VALUES (99, 'z', 0); ROLLBACK`,
		`UPDATE types SET i = NULL, en = 'small', st = '', js = NULL WHERE id = 1`,
		`DELETE FROM types WHERE id = 1`,
		`DELETE FROM second`,
		// A table created after Open, DDL mid-stream, a savepoint.
		`CREATE TABLE late (id INT PRIMARY KEY, v VARCHAR(5))`,
		`ALTER TABLE other ADD COLUMN w INT`,
		`BEGIN; INSERT INTO second VALUES (5, 's', 1); SAVEPOINT sp; INSERT INTO second VALUES (6, 's', 1);
		 ROLLBACK TO SAVEPOINT sp; INSERT INTO late VALUES (1, 'l'); COMMIT`,
	)
	full2 := with(with(full, 20, "changed"), 7, "0")
	full3 := with(with(with(with(full2, 1, nil), 25, "small"), 26, ""), 27, nil)
	wants := []want{
		{"types", pipeline.OpInsert, nil, full},
		{"types", pipeline.OpInsert, nil, nullValues(2)},
		{"second", pipeline.OpInsert, nil, []any{int32(1), "x", int32(10)}},
		{"types", pipeline.OpUpdate, full, full2},
		{"types", pipeline.OpInsert, nil, with(nullValues(3), 1, int32(30))},
		{"second", pipeline.OpInsert, nil, []any{int32(2), "y", int32(20)}},
		{"second", pipeline.OpInsert, nil, []any{int32(3), "y", nil}},
		{"second", pipeline.OpUpdate, []any{int32(1), "x", int32(10)}, []any{int32(1), "x", int32(11)}},
		{"types", pipeline.OpDelete, nullValues(2), nil},
		{"types", pipeline.OpUpdate, full2, full3},
		{"types", pipeline.OpDelete, full3, nil},
		{"second", pipeline.OpDelete, []any{int32(1), "x", int32(11)}, nil},
		{"second", pipeline.OpDelete, []any{int32(2), "y", int32(20)}, nil},
		{"second", pipeline.OpDelete, []any{int32(3), "y", nil}, nil},
		{"second", pipeline.OpInsert, nil, []any{int32(5), "s", int32(1)}},
		{"late", pipeline.OpInsert, nil, []any{int32(1), "l"}},
	}
	gots := readN(t, s, len(wants))
	checkRecords(t, gots, wants)
	expectIdle(t, s)

	// Positions: GTID#index, the index counting captured rows of the
	// transaction (the multi-statement one has 5).
	pos := regexp.MustCompile(`^0-1-\d+#\d+$`)
	for i, g := range gots {
		if !pos.MatchString(g.rec.Position) {
			t.Errorf("record %d: position %q", i, g.rec.Position)
		}
	}
	txn := strings.Split(gots[4].rec.Position, "#")[0]
	for i := 4; i <= 8; i++ {
		if p := fmt.Sprintf("%s#%d", txn, i-4); gots[i].rec.Position != p {
			t.Errorf("record %d: position %q, want %q", i, gots[i].rec.Position, p)
		}
	}

	// The snapshot after everything is the server's position.
	var cur string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&cur); err != nil {
		t.Fatal(err)
	}
	p, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"gtid":"` + cur + `"}`; string(p.State) != want {
		t.Errorf("snapshot %s, want %s", p.State, want)
	}
}

// TestResume cuts the stream after every batch, restarts from the
// snapshot and checks that the union equals one uninterrupted read.
func TestResume(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db,
		`CREATE TABLE t1 (id INT PRIMARY KEY, v VARCHAR(20))`,
		`CREATE TABLE t2 (id INT PRIMARY KEY, v INT)`)
	var start string
	if err := db.QueryRowContext(t.Context(), `SELECT @@gtid_current_pos`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.t[12]`}, StartGTID: start}

	// A transaction larger than a batch, one that alternates tables, and
	// small ones.
	var big strings.Builder
	big.WriteString("INSERT INTO t1 VALUES ")
	for i := range 2500 {
		if i > 0 {
			big.WriteString(",")
		}
		fmt.Fprintf(&big, "(%d, 'r%d')", i, i)
	}
	exec(t, db,
		`BEGIN; `+big.String()+`; COMMIT`,
		`BEGIN; INSERT INTO t2 VALUES (1, 1); UPDATE t1 SET v = 'u' WHERE id < 3; INSERT INTO t2 VALUES (2, 2); DELETE FROM t1 WHERE id = 5; COMMIT`,
		`INSERT INTO t2 VALUES (3, 3)`,
		`UPDATE t2 SET v = v + 1`,
		`DELETE FROM t1 WHERE id >= 1000 AND id < 2200`,
		`INSERT INTO t1 VALUES (9000, 'last')`,
	)
	const total = 2500 + 1 + 3 + 1 + 1 + 1 + 3 + 1200 + 1

	ref := newSource(t, cfg, nil)
	all := readN(t, ref, total)
	expectIdle(t, ref)
	ref.Close()

	// Cut after every batch.
	var union []got
	var saved []byte
	cuts, inside := 0, 0
	deadline := time.Now().Add(90 * time.Second)
	for len(union) < total {
		if time.Now().After(deadline) {
			t.Fatalf("resumed reads got %d records, want %d", len(union), total)
		}
		s := newSource(t, cfg, saved)
		if saved != nil {
			// A snapshot before any Read repeats the restored state.
			p, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.State, saved) {
				t.Errorf("snapshot right after restore %s, want %s", p.State, saved)
			}
		}
		var b *pipeline.Batch
		for b == nil {
			var err error
			if b, err = s.Read(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		union = append(union, batchRecs(t, b)...)
		p, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var st state
		if err := json.Unmarshal(p.State, &st); err != nil {
			t.Fatal(err)
		}
		if st.Skip > 0 {
			inside++
		}
		saved = p.State
		s.Close()
		cuts++
	}
	t.Logf("%d records in %d cuts, %d of them inside a transaction", len(union), cuts, inside)
	if inside < 2 {
		t.Errorf("only %d cuts fell inside a transaction; the test should exercise that", inside)
	}
	s := newSource(t, cfg, saved)
	expectIdle(t, s)
	s.Close()

	if len(union) != len(all) {
		t.Fatalf("resumed reads got %d records, one read %d", len(union), len(all))
	}
	seen := map[string]bool{}
	for i := range all {
		a, u := all[i], union[i]
		if seen[u.rec.Position] {
			t.Fatalf("record %d: duplicate position %s", i, u.rec.Position)
		}
		seen[u.rec.Position] = true
		if a.table != u.table || a.rec.Op != u.rec.Op || a.rec.Position != u.rec.Position ||
			!equalRow(a.rec.Before, u.rec.Before) || !equalRow(a.rec.After, u.rec.After) {
			t.Fatalf("record %d: resumed %s %s %s %v %v, one read %s %s %s %v %v", i,
				u.table, u.rec.Op, u.rec.Position, u.rec.Before, u.rec.After,
				a.table, a.rec.Op, a.rec.Position, a.rec.Before, a.rec.After)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE nokey (a INT, b INT)`, `CREATE TABLE ok (id INT PRIMARY KEY)`)
	q := regexp.QuoteMeta(my.Database)
	for _, c := range []struct {
		tables []string
		want   string
	}{
		{[]string{q + `\.nokey`}, "has no primary key"},
		{[]string{q + `\.missing`}, "source.mysql.tables: no table matches"},
		{[]string{q + `\.ok`, q + `\.no.*`}, "has no primary key"},
	} {
		s, err := New(Config{DSN: my.CDCDSN(), Tables: c.tables})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Open(t.Context(), pipeline.OpenOptions{})
		s.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tables %q: Open error %v, want %q", c.tables, err, c.want)
		}
	}
	// A bad restored state.
	s, err := New(Config{DSN: my.CDCDSN(), Tables: []string{q + `\.ok`}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Open(t.Context(), pipeline.OpenOptions{State: []byte(`{"gtid":"x-y"}`)})
	s.Close()
	if err == nil || !strings.Contains(err.Error(), "not a mariadb GTID set") {
		t.Errorf("bad state: %v", err)
	}
}

func TestCheckSettings(t *testing.T) {
	good := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "gtid_mode": "ON"}
	if err := checkSettings("mariadb", good); err != nil {
		t.Errorf("good settings: %v", err)
	}
	if err := checkSettings("mysql", good); err != nil {
		t.Errorf("good settings: %v", err)
	}
	bad := map[string]string{"log_bin": "OFF", "binlog_format": "STATEMENT", "binlog_row_image": "MINIMAL"}
	err := checkSettings("mysql", bad)
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, w := range []string{
		"log_bin is OFF, must be ON (start the server with --log-bin)",
		"binlog_format is STATEMENT, must be ROW (set binlog_format=ROW",
		"binlog_row_image is MINIMAL, must be FULL (set binlog_row_image=FULL",
		"gtid_mode is unset, must be ON",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	err = checkSettings("mariadb", with3(good, "binlog_format", "MIXED"))
	if err == nil || !strings.Contains(err.Error(), "binlog_format is MIXED, must be ROW") || strings.Contains(err.Error(), "log_bin") {
		t.Errorf("MIXED: %v", err)
	}
}

func with3(m map[string]string, k, v string) map[string]string {
	c := map[string]string{}
	for a, b := range m {
		c[a] = b
	}
	c[k] = v
	return c
}

func TestConfig(t *testing.T) {
	ok := Config{DSN: "u:p@tcp(127.0.0.1:3306)/", Tables: []string{`shop\.(orders|items)`}}
	c := ok
	c.Defaults()
	if err := c.Validate(); err != nil || c.ServerID != DefaultServerID {
		t.Fatalf("valid config: %v, server id %d", err, c.ServerID)
	}
	s, err := New(ok)
	if err != nil || s.Name() != "mysql" {
		t.Fatalf("New: %v", err)
	}
	if !s.match.match("shop", "orders") || s.match.match("shop", "orders2") || s.match.match("xshop", "items") {
		t.Error("table patterns are not anchored")
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.DSN = "" }, "source.mysql.dsn: required"},
		{func(c *Config) { c.DSN = "u:p@unix(/tmp/s)/" }, "source.mysql.dsn: the binlog connection needs tcp"},
		{func(c *Config) { c.DSN = "u:p@tcp(h:99999)/" }, "source.mysql.dsn: address"},
		{func(c *Config) { c.Flavor = "postgres" }, "source.mysql.flavor"},
		{func(c *Config) { c.Tables = nil }, "source.mysql.tables: at least one"},
		{func(c *Config) { c.Tables = []string{"a", "(b"} }, "source.mysql.tables[1]: error parsing regexp"},
		{func(c *Config) { c.Tables = []string{" "} }, "source.mysql.tables[0]: empty"},
		{func(c *Config) { c.Flavor = "mariadb"; c.StartGTID = "1-2" }, "source.mysql.start_gtid"},
		{func(c *Config) { c.Snapshot = "sometimes" }, "source.mysql.snapshot: \"sometimes\" is not one of"},
		{func(c *Config) { c.Snapshot = "initial"; c.StartGTID = "0-1-2" }, "source.mysql.start_gtid: a start position skips the snapshot"},
		{func(c *Config) { c.ChunkSize = -1 }, "source.mysql.chunk_size: must be positive"},
		{func(c *Config) { c.SnapshotParallel = 17 }, "source.mysql.snapshot_parallel: must be 1 to 16"},
		{func(c *Config) { c.Heartbeat = time.Millisecond }, "source.mysql.heartbeat: must be at least 100ms"},
		{func(c *Config) { c.Keys = map[string][]string{"orders": {"id"}} }, "source.mysql.keys.orders: name the table"},
	} {
		c := ok
		c.Tables = append([]string(nil), ok.Tables...)
		tc.mod(&c)
		c.Defaults()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want %q", err, tc.want)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New accepted what Validate refused (%q)", tc.want)
		}
	}
}

func TestParseHelpers(t *testing.T) {
	m, err := parseMembers(`enum('a','it''s','','x,y')`)
	if err != nil || fmt.Sprintf("%q", m) != `["a" "it's" "" "x,y"]` {
		t.Errorf("parseMembers: %q %v", m, err)
	}
	for s, want := range map[string]time.Duration{
		"00:00:00": 0, "-00:00:01.5": -1500 * time.Millisecond, "838:59:59": 838*time.Hour + 59*time.Minute + 59*time.Second,
		"01:02:03.000004": time.Hour + 2*time.Minute + 3*time.Second + 4*time.Microsecond,
	} {
		if d, err := parseTime(s); err != nil || d != want {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, d, err, want)
		}
	}
	// Unsigned values decoded as signed (no signedness metadata).
	c := pipeline.Column{Type: pipeline.TypeInt64}
	if v, err := convert(&c, &colInfo{dataType: "int", unsigned: true, bits: 32}, int32(-1)); err != nil || v != int64(4294967295) {
		t.Errorf("int unsigned from int32(-1): %v %v", v, err)
	}
	c = pipeline.Column{Type: pipeline.TypeString}
	if v, err := convert(&c, &colInfo{dataType: "bigint", unsigned: true, bits: 64}, int64(-1)); err != nil || v != "18446744073709551615" {
		t.Errorf("bigint unsigned from int64(-1): %v %v", v, err)
	}
	c = pipeline.Column{Type: pipeline.TypeInt32}
	if v, err := convert(&c, &colInfo{dataType: "mediumint", unsigned: true, bits: 24}, int32(-1)); err != nil || v != int32(16777215) {
		t.Errorf("mediumint unsigned from int32(-1): %v %v", v, err)
	}
}
