package mysql

import (
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// The metadata, snapshot and binlog connections all go over TLS for a user
// the server admits only with TLS, and the server's certificate is checked.
func TestTLS(t *testing.T) {
	my := testinfra.MariaDB(t)
	if my.CACert == "" {
		t.Skip("this MariaDB offers no TLS (testinfra's containers do not; its local server does)")
	}
	db := openDB(t, my)
	exec(t, db, `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))`, `INSERT INTO t VALUES (1, 'a'), (2, 'b')`)
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = my.TLSUser, my.TLSPassword, "tcp", my.Addr()
	dsn := c.FormatDSN()
	tables := []string{regexp.QuoteMeta(my.Database) + `\.t`}

	// Without TLS the server turns the user away.
	plain, err := New(Config{DSN: dsn, Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	err = plain.Open(t.Context(), pipeline.OpenOptions{})
	plain.Close()
	if err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("plain connection of a REQUIRE SSL user: %v", err)
	}
	// A certificate for another name is refused.
	wrong, err := New(Config{DSN: dsn, Tables: tables, TLS: &TLSConfig{CA: my.CACert, ServerName: "db.example"}})
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.Open(t.Context(), pipeline.OpenOptions{})
	wrong.Close()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("certificate for another name: %v", err)
	}

	s := newSource(t, Config{DSN: dsn, Tables: tables, ChunkSize: 1, TLS: &TLSConfig{CA: my.CACert}}, nil)
	defer s.Close()
	var name, cipher string
	if err := s.db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("metadata connection cipher %q, %v", cipher, err)
	}
	// The snapshot, over TLS.
	checkRecords(t, readN(t, s, 2), []want{
		{table: "t", op: pipeline.OpRead, after: []any{int32(1), "a"}},
		{table: "t", op: pipeline.OpRead, after: []any{int32(2), "b"}},
	})
	for range 20 {
		if len(s.snapTodo) == 0 {
			break
		}
		if b, err := s.Read(t.Context()); err != nil || b != nil {
			t.Fatalf("after the snapshot: %v, %v", b, err)
		}
	}
	if len(s.snapTodo) != 0 {
		t.Fatal("the snapshot did not finish")
	}
	// The binlog, over TLS.
	exec(t, db, `INSERT INTO t VALUES (3, 'c')`)
	checkRecords(t, readN(t, s, 1), []want{{table: "t", op: pipeline.OpInsert, after: []any{int32(3), "c"}}})

	if _, err := New(Config{DSN: dsn, Tables: tables, TLS: &TLSConfig{Cert: "x.pem"}}); err == nil || !strings.Contains(err.Error(), "source.mysql.tls: cert and key go together") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := New(Config{DSN: dsn, Tables: tables, TLS: &TLSConfig{CA: "/nonexistent/ca.pem"}}); err == nil || !strings.Contains(err.Error(), "source.mysql.tls.ca") {
		t.Errorf("missing CA file: %v", err)
	}
}
