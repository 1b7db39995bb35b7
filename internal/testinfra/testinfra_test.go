package testinfra

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestMain(m *testing.M) { Main(m) }

func TestPostgreSQL(t *testing.T) {
	began := time.Now()
	pg := PostgreSQL(t)
	t.Logf("PostgreSQL ready in %v: %s", time.Since(began), pg.DSN())
	other := PostgreSQL(t)
	if other.Database == pg.Database || other.Port != pg.Port {
		t.Errorf("two calls: databases %s and %s on ports %d and %d, want distinct databases on one server", pg.Database, other.Database, pg.Port, other.Port)
	}
	db, err := sql.Open("postgres", pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	var n int
	var dbName string
	if err := db.QueryRowContext(ctx, `SELECT count(*), current_database() FROM t`).Scan(&n, &dbName); err != nil {
		t.Fatal(err)
	}
	if n != 2 || dbName != pg.Database {
		t.Errorf("count %d in %s, want 2 in %s", n, dbName, pg.Database)
	}
}

func TestMariaDB(t *testing.T) {
	began := time.Now()
	my := MariaDB(t)
	t.Logf("MariaDB ready in %v: %s", time.Since(began), my.DSN())
	db, err := sql.Open("mysql", my.DSN()+"?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}

	// The binlog a CDC source needs, read as the cdc user.
	cdc, err := sql.Open("mysql", my.CDCDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer cdc.Close()
	var logBin, strict, serverID int
	var format, image, meta, gtid, version string
	err = cdc.QueryRowContext(ctx, `SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata,
		@@gtid_strict_mode, @@server_id, @@gtid_current_pos, VERSION()`).Scan(&logBin, &format, &image, &meta, &strict, &serverID, &gtid, &version)
	if err != nil {
		t.Fatal(err)
	}
	if logBin != 1 || format != "ROW" || image != "FULL" || meta != "FULL" || strict != 1 || serverID != 1 || gtid == "" {
		t.Errorf("log_bin=%d format=%s image=%s metadata=%s gtid_strict=%d server_id=%d gtid_current_pos=%q",
			logBin, format, image, meta, strict, serverID, gtid)
	}
	if !strings.Contains(version, "MariaDB") {
		t.Errorf("version %s", version)
	}
	rows, err := cdc.QueryContext(ctx, `SHOW BINARY LOGS`) // needs BINLOG MONITOR
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var grants []string
	rows, err = cdc.QueryContext(ctx, `SHOW GRANTS`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		grants = append(grants, g)
	}
	rows.Close()
	if g := strings.Join(grants, ";"); !strings.Contains(g, "REPLICATION SLAVE") || !strings.Contains(g, "BINLOG MONITOR") {
		t.Errorf("cdc grants: %s", g)
	}
}

func TestS3(t *testing.T) {
	began := time.Now()
	b := S3(t)
	t.Logf("S3 ready in %v: %s bucket %s", time.Since(began), b.Endpoint, b.Bucket)
	other := S3(t)
	if other.Bucket == b.Bucket || other.Endpoint != b.Endpoint {
		t.Errorf("two calls: buckets %s and %s at %s and %s", b.Bucket, other.Bucket, b.Endpoint, other.Endpoint)
	}
	c := b.Client()
	ctx := t.Context()
	body := []byte("hello, lake")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("a/b/c.txt"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("a/b/c.txt")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get = %q, %v", got, err)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket), Prefix: aws.String("a/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "a/b/c.txt" {
		t.Errorf("list = %+v", list.Contents)
	}
	// The other bucket is empty.
	list, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(other.Bucket)})
	if err != nil || len(list.Contents) != 0 {
		t.Errorf("other bucket: %d objects, %v", len(list.Contents), err)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := uniqueName(t, '_', 48), uniqueName(t, '_', 48)
	if a == b || !strings.HasSuffix(a, "_testuniquename") {
		t.Errorf("names %q, %q", a, b)
	}
	t.Run("Sub/with spaces & UPPER", func(t *testing.T) {
		n := uniqueName(t, '-', 63)
		if !strings.HasSuffix(n, "-testuniquename-sub-with-spaces-upper") {
			t.Errorf("name %q", n)
		}
		if n := uniqueName(t, '-', 10); len(n) > 10 || strings.HasSuffix(n, "-") {
			t.Errorf("truncated name %q", n)
		}
	})
}

// A child process must not outlive a test binary that dies without
// reaching Main's cleanup.
func TestChildDiesWithTestBinary(t *testing.T) {
	if os.Getenv("TESTINFRA_HELPER") == "1" {
		p, err := startProc("sleep", t.TempDir()+"/sleep.log", nil, syscall.SIGKILL, nil, "/bin/sleep", "300")
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("PID", p.pid())
		os.Exit(0) // no cleanup: as after a -timeout panic
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithTestBinary$")
	cmd.Env = append(os.Environ(), "TESTINFRA_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var pid int
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if s, ok := strings.CutPrefix(sc.Text(), "PID "); ok {
			pid, _ = strconv.Atoi(s)
		}
	}
	if pid == 0 {
		t.Fatalf("helper printed no PID: %s", out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for alive(pid) {
		if ctx.Err() != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d outlived the test binary", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie (an init that does not
// reap would keep a zombie around).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
