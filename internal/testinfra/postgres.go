package testinfra

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // the admin connection
)

// PG is a PostgreSQL database of its own for one test, on a server shared
// by the test binary. Authentication is trust: no password.
type PG struct {
	Host     string
	Port     int
	User     string
	Database string
}

// DSN is a postgres:// URL for lib/pq (and pgx) with sslmode=disable.
func (p *PG) DSN() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.User),
		Host:     fmt.Sprintf("%s:%d", p.Host, p.Port),
		Path:     "/" + p.Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

type pgServer struct {
	host  string
	port  int
	admin *sql.DB
	what  string // for messages: "PostgreSQL (pid N)" or a container
	tail  func() string
}

var pgShared, pgDocker shared[*pgServer]

// pgBinDir finds initdb and postgres: Debian keeps them out of PATH, in
// /usr/lib/postgresql/VERSION/bin (the highest version wins).
func pgBinDir() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, true
			}
		}
	}
	if p, ok := lookBin("initdb"); ok {
		d := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, true
		}
	}
	return "", false
}

// PostgreSQL returns a fresh database on this test binary's PostgreSQL
// server, starting the server on first use. The database is dropped when
// the test ends.
func PostgreSQL(t testing.TB) *PG {
	t.Helper()
	srv, ok := fromDocker(t, &pgDocker, "PostgreSQL", startPostgresContainer)
	if !ok {
		bin, ok := pgBinDir()
		if !ok {
			missing(t, "PostgreSQL server (initdb, postgres in /usr/lib/postgresql/*/bin)", "apt-get install -y postgresql")
		}
		var err error
		srv, err = pgShared.get(func() (*pgServer, error) { return startPostgres(bin) })
		if err != nil {
			t.Fatalf("testinfra: start PostgreSQL: %v", err)
		}
	}
	name := uniqueName(t, '_', 48)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("testinfra: %s: create database %s: %v%s", srv.what, name, err, srv.tail())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a test left open.
		if _, err := srv.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Logf("testinfra: drop database %s: %v", name, err)
		}
	})
	return &PG{Host: srv.host, Port: srv.port, User: "postgres", Database: name}
}

func startPostgres(bin string) (*pgServer, error) {
	began := time.Now()
	dir, err := newServerDir("postgres")
	if err != nil {
		return nil, err
	}
	// initdb and postgres refuse to run as root: run them as the postgres
	// user, set directly on the child (so that its PID is the server's,
	// not a runuser wrapper's).
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres user (apt package postgresql creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	args := []string{"-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"}
	if err := runTool(filepath.Join(dir, "initdb.log"), cred, filepath.Join(bin, "initdb"), append(args, "--locale=C.UTF-8")...); err != nil {
		// Not every system has the C.UTF-8 locale.
		os.RemoveAll(data)
		if err2 := runTool(filepath.Join(dir, "initdb.log"), cred, filepath.Join(bin, "initdb"), append(args, "--no-locale")...); err2 != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Mkdir(sock, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(sock, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "server.log")
	var admin *sql.DB
	p, port, err := startWithRetry(func(port int) (*proc, error) {
		// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster ends
		// its backends too. Durability settings are off: throwaway data.
		return startProc("postgres", logPath, cred, syscall.SIGQUIT, nil, filepath.Join(bin, "postgres"),
			"-D", data, "-p", strconv.Itoa(port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=200")
	}, func(port int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			db, err := openPinged(ctx, "postgres", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))
			admin = db
			return err
		}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	admin.SetMaxOpenConns(4)
	srv := &pgServer{host: "127.0.0.1", port: port, admin: admin, what: fmt.Sprintf("PostgreSQL (pid %d)", p.pid()), tail: p.logTail}
	atExit(func() {
		admin.Close()
		p.stop()
		os.RemoveAll(dir)
	})
	logStart("PostgreSQL", p, port, began)
	return srv, nil
}

// logStart notes a server's start on stderr (visible with go test -v and
// on failures): which PID to look for, how long it took.
func logStart(what string, p *proc, port int, began time.Time) {
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testinfra: %s pid %d on 127.0.0.1:%d, started in %v\n", what, p.pid(), port, time.Since(began).Round(time.Millisecond))
	}
}
