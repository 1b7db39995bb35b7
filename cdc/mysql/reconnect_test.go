package mysql

import (
	"regexp"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// A binlog connection the server drops is re-established, from the last
// transaction received whole: nothing is lost or repeated.
func TestReconnect(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	s := newSource(t, Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.r`},
		Snapshot: SnapshotNever, Heartbeat: 200 * time.Millisecond}, nil)
	defer s.Close()
	exec(t, db, `INSERT INTO r VALUES (1, 1)`)
	checkRecords(t, readN(t, s, 1), []want{{table: "r", op: pipeline.OpInsert, after: []any{int32(1), int32(1)}}})

	// The server ends the replica's dump thread, as on a failover or a
	// network cut.
	killed := 0
	rows, err := db.Query(`SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = ?`, my.CDCUser)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := db.Exec("KILL ?", id); err == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no binlog dump thread to kill")
	}
	exec(t, db, `INSERT INTO r VALUES (2, 2)`, `UPDATE r SET v = 10 WHERE id = 1`)
	checkRecords(t, readN(t, s, 2), []want{
		{table: "r", op: pipeline.OpInsert, after: []any{int32(2), int32(2)}},
		{table: "r", op: pipeline.OpUpdate, before: []any{int32(1), int32(1)}, after: []any{int32(1), int32(10)}},
	})
	expectIdle(t, s)
	if s.reconnects == 0 {
		t.Error("the stream was not re-established: the kill went unnoticed")
	}
}
