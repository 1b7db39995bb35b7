package enrich

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// backend is a fresh database on one of the real servers.
type backend struct {
	name   string
	driver string
	dsn    string
	db     *sql.DB
}

func mariaBackend(t testing.TB) *backend {
	t.Helper()
	my := testinfra.MariaDB(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{name: "mariadb", driver: DriverMySQL, dsn: my.DSN(), db: db}
}

func pgBackend(t testing.TB) *backend {
	t.Helper()
	pg := testinfra.PostgreSQL(t)
	db, err := sql.Open("postgres", pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{name: "postgres", driver: DriverPostgres, dsn: pg.DSN(), db: db}
}

// eachBackend runs f against MariaDB and PostgreSQL, each in a database of
// its own.
func eachBackend(t *testing.T, f func(t *testing.T, be *backend)) {
	t.Run("mariadb", func(t *testing.T) { f(t, mariaBackend(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, pgBackend(t)) })
}

// exec runs SQL written with ? placeholders on either server.
func (be *backend) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if be.driver == DriverPostgres {
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(r)
		}
		q = b.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := be.db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %s: %v", be.name, q, err)
	}
}

// channels creates the dimension used by most tests: ids 1..n with
// name "ch-<id>" and region "r<id%3>".
func (be *backend) channels(t testing.TB, n int) {
	t.Helper()
	be.exec(t, "CREATE TABLE channels (id BIGINT PRIMARY KEY, name VARCHAR(100), region VARCHAR(20))")
	be.insertChannels(t, 1, n)
}

func (be *backend) insertChannels(t testing.TB, from, to int) {
	t.Helper()
	for lo := from; lo <= to; lo += 1000 {
		hi := min(lo+999, to)
		var q strings.Builder
		q.WriteString("INSERT INTO channels (id, name, region) VALUES ")
		var args []any
		for id := lo; id <= hi; id++ {
			if id > lo {
				q.WriteString(",")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, id, fmt.Sprintf("ch-%d", id), fmt.Sprintf("r%d", id%3))
		}
		be.exec(t, q.String(), args...)
	}
}

func (be *backend) dim(table, key string, cols ...string) Dimension {
	return Dimension{JDBC: JDBC{Driver: be.driver, DSN: be.dsn, Table: table, Key: key}, Columns: cols}
}

var ordersID = pipeline.TableID{Namespace: "shop", Name: "orders"}

func ordersSchema() *pipeline.Schema {
	return &pipeline.Schema{
		Table: ordersID,
		Columns: []pipeline.Column{
			{Name: "id", Type: pipeline.TypeInt64},
			{Name: "channel_id", Type: pipeline.TypeInt32, Nullable: true},
			{Name: "note", Type: pipeline.TypeString, Nullable: true},
		},
		Key:     []int{0},
		Version: 1,
	}
}

func ins(id int64, ch any) pipeline.Record {
	return pipeline.Record{Op: pipeline.OpInsert, After: []any{id, ch, "n"}, Position: "pos-" + strconv.FormatInt(id, 10)}
}

func batchOf(s *pipeline.Schema, recs ...pipeline.Record) *pipeline.Batch {
	return &pipeline.Batch{Schema: s, Records: recs}
}

// channelRule adds the channels' name and region to shop.orders.
func channelRule(missing Missing) Rule {
	return Rule{Match: "shop.orders", Dim: "channels", On: "channel_id",
		Add: map[string]string{"channel_name": "name", "channel_region": "region"}, Missing: missing}
}

// open builds and opens an operator, closed when the test ends.
func open(t testing.TB, dims map[string]Dimension, rules []Rule, opts ...Option) *Operator {
	t.Helper()
	op, err := New(dims, rules, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := op.Open(ctx, nil); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := op.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return op
}

// process runs one batch and returns what the operator emitted.
func process(t testing.TB, op *Operator, b *pipeline.Batch) []*pipeline.Batch {
	t.Helper()
	out, err := tryProcess(op, b)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return out
}

func tryProcess(op *Operator, b *pipeline.Batch) ([]*pipeline.Batch, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*pipeline.Batch
	err := op.Process(ctx, b, func(b *pipeline.Batch) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// clock is a clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func columnNames(s *pipeline.Schema) []string {
	var names []string
	for _, c := range s.Columns {
		names = append(names, c.Name)
	}
	return names
}
