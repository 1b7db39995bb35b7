package testinfra

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL is a MariaDB database of its own for one test, on a server shared
// by the test binary. The server writes a row binlog with full images and
// full metadata, with GTIDs (strict mode) and server id 1.
type MySQL struct {
	Host string
	Port int
	// User has all privileges on every database (WITH GRANT OPTION).
	User     string
	Password string
	Database string
	// CDCUser has what a binlog reader needs: SELECT, RELOAD, REPLICATION
	// SLAVE, REPLICATION CLIENT, BINLOG MONITOR on *.*.
	CDCUser     string
	CDCPassword string
	// CACert is the PEM file of the CA that signed the server's TLS
	// certificate (for 127.0.0.1 and localhost). The server offers TLS
	// and does not require it; TLSUser may connect only with TLS and has
	// CDCUser's privileges.
	CACert      string
	TLSUser     string
	TLSPassword string
}

// Addr is host:port.
func (m *MySQL) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// DSN is a go-sql-driver/mysql DSN for User on Database, without
// parameters: append "?parseTime=true" and such as needed.
func (m *MySQL) DSN() string { return m.dsn(m.User, m.Password) }

// CDCDSN is DSN for CDCUser.
func (m *MySQL) CDCDSN() string { return m.dsn(m.CDCUser, m.CDCPassword) }

func (m *MySQL) dsn(user, pass string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, pass, "tcp", m.Addr(), m.Database
	return c.FormatDSN()
}

type mysqlServer struct {
	host   string
	port   int
	admin  *sql.DB // root
	caCert string  // empty: the server offers no TLS (containers)
	what   string  // for messages: "MariaDB (pid N)" or a container
	tail   func() string
}

var mariaShared, mariaDocker shared[*mysqlServer]

const (
	mariaUser    = "sluice"
	mariaPass    = "sluice-test"
	mariaCDCUser = "cdc"
	mariaCDCPass = "cdc-test"
	mariaTLSUser = "cdctls"
	mariaTLSPass = "cdctls-test"
)

// MariaDB returns a fresh database on this test binary's MariaDB server,
// starting the server on first use. The database is dropped when the test
// ends; the binlog is shared by all tests of the binary. In a container
// the server offers no TLS: CACert and TLSUser are empty (tests of TLS
// skip).
func MariaDB(t testing.TB) *MySQL {
	t.Helper()
	srv, ok := fromDocker(t, &mariaDocker, "MariaDB", startMariaDBContainer)
	if !ok {
		const hint = "apt-get install -y mariadb-server"
		mariadbd, ok := lookBin("mariadbd", "/usr/sbin", "/usr/local/sbin")
		if !ok {
			missing(t, "mariadbd", hint)
		}
		installDB, ok := lookBin("mariadb-install-db", "/usr/bin", "/usr/local/bin")
		if !ok {
			missing(t, "mariadb-install-db", hint)
		}
		var err error
		srv, err = mariaShared.get(func() (*mysqlServer, error) { return startMariaDB(mariadbd, installDB) })
		if err != nil {
			t.Fatalf("testinfra: start MariaDB: %v", err)
		}
	}
	my := srv.database(t)
	if srv.caCert != "" {
		my.CACert, my.TLSUser, my.TLSPassword = srv.caCert, mariaTLSUser, mariaTLSPass
	}
	return my
}

// database creates a database for the test, dropped when it ends.
func (srv *mysqlServer) database(t testing.TB) *MySQL {
	t.Helper()
	name := uniqueName(t, '_', 48)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.admin.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("testinfra: %s: create database %s: %v%s", srv.what, name, err, srv.tail())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := srv.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Logf("testinfra: drop database %s: %v", name, err)
		}
	})
	return &MySQL{
		Host: srv.host, Port: srv.port, User: mariaUser, Password: mariaPass, Database: name,
		CDCUser: mariaCDCUser, CDCPassword: mariaCDCPass,
	}
}

func startMariaDB(mariadbd, installDB string) (*mysqlServer, error) {
	began := time.Now()
	dir, err := newServerDir("mariadb")
	if err != nil {
		return nil, err
	}
	data, sock, errLog := filepath.Join(dir, "data"), filepath.Join(dir, "mysqld.sock"), filepath.Join(dir, "error.log")
	caCert, srvCert, srvKey, err := writeTestCA(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("TLS certificates: %w", err)
	}
	userArg := []string{}
	if os.Geteuid() == 0 {
		userArg = []string{"--user=root"} // mariadbd refuses root otherwise
	}
	// --no-defaults: the system's /etc/mysql files (datadir, socket, log
	// paths of the packaged service) must not leak in.
	err = runTool(filepath.Join(dir, "install-db.log"), nil, installDB, append([]string{
		"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve",
	}, userArg...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var admin *sql.DB
	p, port, err := startWithRetry(func(port int) (*proc, error) {
		_ = os.Remove(errLog)
		args := append([]string{"--no-defaults"}, userArg...)
		args = append(args,
			"--datadir="+data, "--socket="+sock, "--pid-file="+filepath.Join(dir, "mysqld.pid"),
			"--bind-address=127.0.0.1", "--port="+strconv.Itoa(port), "--skip-name-resolve",
			"--log-bin="+filepath.Join(data, "binlog"), "--binlog-format=ROW", "--binlog-row-image=FULL",
			"--binlog-row-metadata=FULL", "--server-id=1", "--gtid-strict-mode=ON",
			"--innodb-buffer-pool-size=64M", "--log-error="+errLog,
			"--ssl-ca="+caCert, "--ssl-cert="+srvCert, "--ssl-key="+srvKey)
		// SIGKILL: throwaway data, and an InnoDB shutdown takes a while.
		return startProc("mariadbd", filepath.Join(dir, "stdout.log"), nil, syscall.SIGKILL, []string{errLog}, mariadbd, args...)
	}, func(int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			c := mysql.NewConfig()
			c.User, c.Net, c.Addr = "root", "unix", sock
			db, err := openPinged(ctx, "mysql", c.FormatDSN())
			admin = db
			return err
		}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	admin.SetMaxOpenConns(4)
	stop := func() {
		admin.Close()
		p.stop()
		os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER %s@'127.0.0.1' IDENTIFIED BY '%s'", mariaUser, mariaPass),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION", mariaUser),
		fmt.Sprintf("CREATE USER %s@'127.0.0.1' IDENTIFIED BY '%s'", mariaCDCUser, mariaCDCPass),
		fmt.Sprintf("GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO %s@'127.0.0.1'", mariaCDCUser),
		fmt.Sprintf("CREATE USER %s@'127.0.0.1' IDENTIFIED BY '%s' REQUIRE SSL", mariaTLSUser, mariaTLSPass),
		fmt.Sprintf("GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO %s@'127.0.0.1'", mariaTLSUser),
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	atExit(stop)
	logStart("MariaDB", p, port, began)
	return &mysqlServer{
		host: "127.0.0.1", port: port, admin: admin, caCert: caCert,
		what: fmt.Sprintf("MariaDB (pid %d)", p.pid()), tail: p.logTail,
	}, nil
}

var mysql8Docker shared[*mysqlServer]

// MySQL8 returns a fresh database on this test binary's MySQL 8.4 server,
// a container (there is no local MySQL 8 here: Debian 12 packages
// MariaDB), starting it on first use. The server writes a row binlog with
// full images and full metadata, with GTIDs (gtid_mode=ON,
// enforce_gtid_consistency=ON) and server id 1; CDCUser has SELECT,
// RELOAD, REPLICATION SLAVE and REPLICATION CLIENT. There is no TLS user
// (CACert is empty). Without a Docker engine the test is skipped, also
// with CI=true (the CI machine has none); with SLUICE_TEST_INFRA=docker it
// fails instead.
func MySQL8(t testing.TB) *MySQL {
	t.Helper()
	if infraMode(t) == "local" {
		t.Skipf("testinfra: MySQL 8 needs a Docker engine; %s=local", EnvInfra)
	}
	if !useDocker(t) {
		t.Skipf("testinfra: MySQL 8 needs a Docker engine; none answers: %v", dockerHealth())
	}
	srv, err := mysql8Docker.get(func() (*mysqlServer, error) { return startContainer(startMySQL8Container) })
	if err != nil {
		if infraMode(t) == "docker" {
			t.Fatalf("testinfra: start MySQL 8 container: %v", err)
		}
		t.Skipf("testinfra: MySQL 8 needs a Docker engine that can run %s: %v", imageMySQL8, err)
	}
	return srv.database(t)
}
