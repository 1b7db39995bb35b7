package mysql

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// A user without a privilege the source needs is refused at Open with the
// GRANT that fixes it; a backfill needs SELECT only.
func TestPrivileges(t *testing.T) {
	my := testinfra.MariaDB(t)
	db := openDB(t, my)
	exec(t, db, "CREATE TABLE pv (id INT PRIMARY KEY)", "INSERT INTO pv VALUES (1)")
	q := regexp.QuoteMeta(my.Database) + `\.pv`
	tbl := "`" + my.Database + "`.`pv`"
	users := []struct {
		name, grants string
		snapshot     string
		want         []string // all in the error; none: Open succeeds
	}{
		{"pv_all", "SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.*", SnapshotInitial, nil},
		{"pv_noslave", "SELECT, BINLOG MONITOR ON *.*", SnapshotNever, []string{"GRANT REPLICATION SLAVE ON *.*"}},
		{"pv_nomonitor", "SELECT, REPLICATION SLAVE ON *.*", SnapshotNever, []string{"GRANT BINLOG MONITOR ON *.*"}},
		// Without any privilege on the table, information_schema hides it.
		{"pv_noselect", "REPLICATION SLAVE, BINLOG MONITOR ON *.*", SnapshotInitial, []string{"no table matches", "GRANT SELECT"}},
		// With a column privilege, it is listed, and SELECT * fails.
		{"pv_colonly", "REPLICATION SLAVE, BINLOG MONITOR ON *.*", SnapshotInitial, []string{"GRANT SELECT ON " + tbl}},
		{"pv_nothing", "USAGE ON *.*", SnapshotNever, []string{"REPLICATION SLAVE", "BINLOG MONITOR"}},
		{"pv_backfill", "SELECT ON *.*", SnapshotInitialOnly, nil},
	}
	for _, u := range users {
		exec(t, db,
			fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY 'pw'", u.name),
			fmt.Sprintf("GRANT %s TO %s@'127.0.0.1'", u.grants, u.name))
		if u.name == "pv_colonly" {
			exec(t, db, fmt.Sprintf("GRANT INSERT (id) ON %s TO %s@'127.0.0.1'", tbl, u.name))
		}
		dsn := fmt.Sprintf("%s:pw@tcp(%s)/", u.name, my.Addr())
		s, err := New(Config{DSN: dsn, Tables: []string{q}, Snapshot: u.snapshot})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Open(t.Context(), pipeline.OpenOptions{})
		s.Close()
		switch {
		case u.want == nil && err != nil:
			t.Errorf("%s (%s): %v", u.name, u.grants, err)
		case u.want != nil && err == nil:
			t.Errorf("%s (%s): Open succeeded, want an error naming %q", u.name, u.grants, u.want)
		case u.want != nil:
			for _, w := range u.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s (%s): error %q does not say %q", u.name, u.grants, err, w)
				}
			}
		}
	}
}
