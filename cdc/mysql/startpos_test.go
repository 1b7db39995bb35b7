package mysql

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// A start given as binlog file:offset becomes the GTID position the server
// itself gives for that offset (BINLOG_GTID_POS), across rotations, DDL
// and multi-statement transactions; the stream then starts exactly there;
// offsets inside a transaction, between events or past the end are
// refused with the reason.
func TestStartPosition(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, "CREATE TABLE sp (id INT PRIMARY KEY, v VARCHAR(20))")

	type mark struct {
		at   binlogPos
		next int // the first id inserted after the mark
	}
	var marks []mark
	markNow := func(next int) {
		at, err := binlogEnd(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		marks = append(marks, mark{at, next})
	}
	id := 0
	insert := func(n int) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			id++
			if _, err := tx.Exec("INSERT INTO sp (id, v) VALUES (?, ?)", id, fmt.Sprint("v", id)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	markNow(1)
	insert(1)
	markNow(id + 1)
	insert(3)
	exec(t, db, "ALTER TABLE sp ADD COLUMN w INT")
	markNow(id + 1)
	exec(t, db, "FLUSH BINARY LOGS") // a new file: its start and the old file's end
	marks = append(marks, mark{binlogPos{file: marks[len(marks)-1].at.file, pos: marks[len(marks)-1].at.pos}, id + 1})
	markNow(id + 1)
	insert(2)
	markNow(id + 1)
	insert(4)
	insert(1)

	cfg := func(start string) Config {
		return Config{DSN: my.CDCDSN(), Tables: []string{regexp.QuoteMeta(my.Database) + `\.sp`}, StartPosition: start}
	}
	for _, m := range marks {
		var want string
		if err := db.QueryRow("SELECT BINLOG_GTID_POS(?, ?)", m.at.file, m.at.pos).Scan(&want); err != nil {
			t.Fatal(err)
		}
		s := newSource(t, cfg(m.at.String()), nil)
		if got := s.set.String(); got != want {
			t.Errorf("start %s: GTID position %q, the server says %q", m.at, got, want)
		}
		// The stream starts right after the offset: its first rows are
		// the ids inserted after the mark.
		recs := readN(t, s, id-m.next+1)
		for i, g := range recs {
			if got := g.rec.After[0]; got != int32(m.next+i) {
				t.Fatalf("start %s: record %d has id %v, want %d", m.at, i, got, m.next+i)
			}
		}
		s.Close()
	}
	// The first file's start (offset 4) is before every transaction of it.
	first := binlogPos{file: marks[0].at.file, pos: 4}
	var want string
	if err := db.QueryRow("SELECT BINLOG_GTID_POS(?, 4)", first.file).Scan(&want); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, cfg(first.String()), nil)
	if got := s.set.String(); got != want {
		t.Errorf("start %s: GTID position %q, the server says %q", first, got, want)
	}
	s.Close()

	// A row event's offset is inside its transaction.
	rows, err := db.Query("SHOW BINLOG EVENTS IN '" + marks[1].at.file + "'")
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	for rows.Next() {
		var logName, evType, info string
		var pos, serverID, endPos uint64
		if err := rows.Scan(&logName, &pos, &evType, &serverID, &endPos, &info); err != nil {
			t.Fatal(err)
		}
		if pos > marks[1].at.pos && evType == "Write_rows_v1" && inside == 0 {
			inside = pos
		}
	}
	rows.Close()
	if inside == 0 {
		t.Fatal("no Write_rows event after the second mark")
	}
	bad := []struct{ start, want string }{
		{fmt.Sprintf("%s:%d", marks[1].at.file, inside), "inside transaction"},
		{fmt.Sprintf("%s:%d", marks[1].at.file, marks[1].at.pos+1), "not where an event starts"},
		{fmt.Sprintf("%s:%d", marks[len(marks)-1].at.file, marks[len(marks)-1].at.pos+1_000_000), "before offset"},
	}
	for _, b := range bad {
		s, err := New(cfg(b.start))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Open(t.Context(), pipeline.OpenOptions{})
		s.Close()
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "start_position") {
			t.Errorf("start %s: error %v, want one saying %q", b.start, err, b.want)
		}
	}
	if _, err := New(Config{DSN: my.CDCDSN(), Tables: []string{"x"}, StartPosition: "binlog.000001"}); err == nil ||
		!strings.Contains(err.Error(), "file:offset") {
		t.Errorf("a position without an offset: %v", err)
	}
	if _, err := New(Config{DSN: my.CDCDSN(), Tables: []string{"x"}, StartPosition: "b.1:4", StartGTID: "0-1-1"}); err == nil ||
		!strings.Contains(err.Error(), "not both") {
		t.Errorf("start_gtid and start_position: %v", err)
	}
}
