package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// MySQL error numbers the source tells apart.
const (
	errSpecificAccessDenied = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	errTableAccessDenied    = 1142 // ER_TABLEACCESS_DENIED_ERROR
	errParse                = 1064 // ER_PARSE_ERROR
)

func isErrNumber(err error, n uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == n
}

// checkPrivileges fails Open, naming the GRANT to run, when the user
// lacks a privilege the source needs: reading the binlog position
// (REPLICATION CLIENT, MariaDB: BINLOG MONITOR), streaming the binlog
// (REPLICATION SLAVE) and, when tables are to be snapshotted, SELECT on
// them. Without it those would fail later, mid-run, with the server's
// terser message. What can be tried is tried; REPLICATION SLAVE cannot be
// tried without starting a stream, so it is read from SHOW GRANTS, and a
// user whose grants come through roles is given the benefit of the doubt.
//
// With binlog false (a backfill) only SELECT is checked.
func (s *Source) checkPrivileges(ctx context.Context, user string, binlog bool, snapshot []*table) error {
	var missing []string
	if binlog {
		m, err := s.missingBinlogPrivileges(ctx)
		if err != nil {
			return err
		}
		missing = m
	}
	for _, t := range snapshot {
		_, err := s.db.ExecContext(ctx, "SELECT 1 FROM "+t.qualified()+" LIMIT 0")
		switch {
		case isErrNumber(err, errTableAccessDenied):
			missing = append(missing, "SELECT ON "+t.qualified()+" (to read its snapshot)")
		case err != nil:
			return fmt.Errorf("mysql: check SELECT on %s: %w", t.schema.Table, err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("mysql: the user %s lacks privileges the source needs; as an administrator run: GRANT %s TO %s",
		user, strings.Join(missing, "; GRANT "), user)
}

func (s *Source) missingBinlogPrivileges(ctx context.Context) ([]string, error) {
	var missing []string
	if _, err := binlogEnd(ctx, s.db); err != nil {
		if !isErrNumber(err, errSpecificAccessDenied) {
			return nil, err
		}
		p := "REPLICATION CLIENT"
		if s.flavor == gomysql.MariaDBFlavor {
			p = "BINLOG MONITOR"
		}
		missing = append(missing, p+" ON *.* (to read the binlog position)")
	}
	grants, err := showGrants(ctx, s.db)
	if err != nil {
		return nil, err
	}
	if !grantsInclude(grants, "REPLICATION SLAVE") {
		missing = append(missing, "REPLICATION SLAVE ON *.* (to stream the binlog)")
	}
	return missing, nil
}

// showGrants returns the lines of SHOW GRANTS for the current user.
func showGrants(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return nil, fmt.Errorf("mysql: SHOW GRANTS: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("mysql: SHOW GRANTS: %w", err)
		}
		out = append(out, strings.ToUpper(g))
	}
	return out, rows.Err()
}

// grantsInclude reports whether a global grant holds priv (or all
// privileges), or whether roles are granted, which are not followed.
func grantsInclude(grants []string, priv string) bool {
	for _, g := range grants {
		on := strings.Index(g, " ON ")
		if on < 0 {
			return true // GRANT role TO user: roles are not followed
		}
		if !strings.HasPrefix(g[on:], " ON *.* ") {
			continue
		}
		privs := g[len("GRANT "):on]
		if strings.Contains(privs, "ALL PRIVILEGES") || strings.Contains(privs, priv) {
			return true
		}
	}
	return false
}
