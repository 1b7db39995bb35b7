package mysql

import (
	"regexp"
	"testing"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// TestMySQL8Stream streams inserts, updates and deletes from MySQL 8.4
// with GTIDs (snapshot: never), then resumes from the snapshot. MySQL 8
// runs only in a container: without a Docker engine this test skips (the
// project's CI machine has none).
func TestMySQL8Stream(t *testing.T) {
	my := testinfra.MySQL8(t)
	db := openDB(t, my)
	exec(t, db,
		`CREATE TABLE items (id INT NOT NULL PRIMARY KEY, qty BIGINT UNSIGNED, price DECIMAL(10,2),
			name VARCHAR(50), at DATETIME(6), raw VARBINARY(8)) DEFAULT CHARSET=utf8mb4`,
		`CREATE TABLE other (id INT PRIMARY KEY)`)

	cfg := Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.items`}, Snapshot: SnapshotNever}
	s := newSource(t, cfg, nil)
	defer s.Close()
	if s.flavor != "mysql" {
		t.Errorf("flavor %q, want mysql", s.flavor)
	}

	exec(t, db,
		`INSERT INTO items VALUES (1, 18446744073709551615, 12.34, 'héllo', '2024-02-29 13:14:15.123456', x'00FF'),
			(2, NULL, NULL, NULL, NULL, NULL)`,
		`INSERT INTO other VALUES (1)`,
		`UPDATE items SET name = 'changed', qty = 0 WHERE id = 1`,
		`BEGIN; INSERT INTO items (id, name) VALUES (3, 'c'); DELETE FROM items WHERE id = 2; COMMIT`,
		`BEGIN; INSERT INTO items (id) VALUES (99); ROLLBACK`,
		`DELETE FROM items WHERE id = 1`)
	one := []any{int32(1), "18446744073709551615", pipeline.Decimal{Unscaled: 1234, Scale: 2}, "héllo",
		utc("2024-02-29 13:14:15.123456"), []byte{0, 0xff}}
	oneChanged := with(with(one, 3, "changed"), 1, "0")
	null := func(id int32) []any { return []any{id, nil, nil, nil, nil, nil} }
	wants := []want{
		{"items", pipeline.OpInsert, nil, one},
		{"items", pipeline.OpInsert, nil, null(2)},
		{"items", pipeline.OpUpdate, one, oneChanged},
		{"items", pipeline.OpInsert, nil, with(null(3), 3, "c")},
		{"items", pipeline.OpDelete, null(2), nil},
		{"items", pipeline.OpDelete, oneChanged, nil},
	}
	gots := readN(t, s, len(wants))
	checkRecords(t, gots, wants)
	expectIdle(t, s)

	// Positions: a MySQL GTID (server UUID:transaction number), then the
	// index of the record in its transaction.
	pos := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:\d+#\d+$`)
	for i, g := range gots {
		if !pos.MatchString(g.rec.Position) {
			t.Errorf("record %d: position %q", i, g.rec.Position)
		}
	}

	// The snapshot after everything is the server's executed GTID set.
	var executed string
	if err := db.QueryRowContext(t.Context(), `SELECT @@GLOBAL.gtid_executed`).Scan(&executed); err != nil {
		t.Fatal(err)
	}
	p, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"gtid":"` + executed + `"}`; string(p.State) != want {
		t.Errorf("snapshot %s, want %s", p.State, want)
	}
	s.Close()

	// Resumed from there: only what comes after.
	s2 := newSource(t, cfg, p.State)
	defer s2.Close()
	exec(t, db, `INSERT INTO items (id, name) VALUES (4, 'd')`)
	checkRecords(t, readN(t, s2, 1), []want{{"items", pipeline.OpInsert, nil, with(null(4), 3, "d")}})
	expectIdle(t, s2)
}
