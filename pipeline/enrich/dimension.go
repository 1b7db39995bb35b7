package enrich

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	lru "github.com/hashicorp/golang-lru/v2/simplelru"
	_ "github.com/lib/pq" // the "postgres" database/sql driver

	"github.com/sluice-cdc/sluice/pipeline"
)

// keyKind is how a dimension's keys are compared.
type keyKind uint8

const (
	// keyInt: the key column is an integer; keys are compared as int64,
	// so int32 42, int64 42 and the string "42" are one key.
	keyInt keyKind = iota + 1
	// keyText: the key column is text (or a decimal); keys are compared by
	// their canonical text: strings as they are, integers in decimal,
	// decimals as pipeline.Decimal.String renders them.
	keyText
	// keyBinary: the key column is binary; keys are compared byte for byte.
	keyBinary
)

// kindOf is how keys of a column type are looked up; 0 for a type no
// lookup supports.
func kindOf(t pipeline.Type) keyKind {
	switch t {
	case pipeline.TypeInt32, pipeline.TypeInt64:
		return keyInt
	case pipeline.TypeString, pipeline.TypeDecimal:
		return keyText
	case pipeline.TypeBinary:
		return keyBinary
	}
	return 0
}

func (k keyKind) String() string {
	switch k {
	case keyInt:
		return "integer"
	case keyText:
		return "text"
	case keyBinary:
		return "binary"
	}
	return "unknown"
}

// lookupKey is a key in canonical form. For keyInt dimensions n holds the
// value and s is empty (an int64 rather than its decimal text, so that the
// common integer key costs no allocation per record); for keyText and
// keyBinary dimensions s holds the text or the bytes.
type lookupKey struct {
	n int64
	s string
}

// entry is a cached lookup result. It carries its own expiry rather than
// leaning on the expirable LRU (see newCache) so that found and missing
// keys can live for different TTLs and tests can move the clock.
type entry struct {
	row     []any // the dimension's Columns, converted; nil: no such row
	expires time.Time
}

// dimension is an open dimension: its connection pool, cache and prepared
// lookups. It is used by the operator's single goroutine only.
type dimension struct {
	cfg    Dimension
	db     *sql.DB
	cols   []pipeline.Column // cfg.Columns with their pipeline types
	keyCol pipeline.Column
	kind   keyKind
	cache  *lru.LRU[lookupKey, *entry]
	// stream is set for a stream dimension, which has no db and no
	// statements: its rows are in the operator's store.
	stream *streamDim
	// kafka is set for a stream dimension fed from a Kafka topic.
	kafka *kafkaFeed
	// stmts are the prepared lookups by IN-list width; widths are the
	// widths prepared on demand, ascending, the last one BatchSize.
	stmts  map[int]*sql.Stmt
	widths []int
	// scratch reused across queries
	args []any
	dest []any
	ptrs []any
}

// newCache makes a dimension's cache. It is golang-lru's plain LRU with
// the expiry checked by us, not its expirable package: in v2.0.7 that
// package starts a cleanup goroutine per cache that cannot be stopped
// (Close is commented out) and holds the cache alive, it has one TTL for
// every entry, and it reads time.Now, so tests could not move its clock.
// Expired entries stay until they are looked up again (and replaced) or
// pushed out by newer ones, so memory stays bounded by Size.
func newCache(size int) (*lru.LRU[lookupKey, *entry], error) {
	return lru.NewLRU[lookupKey, *entry](size, nil)
}

// cached returns the live cache entry of k, or nil. Get moves a hit to
// the front of the LRU list. (Reading with Peek and moving only entries
// that drifted into the back half was tried: on 10,000 keys the cost of a
// hit is the map read and the scattered entry, not the move, and no gain
// showed.)
func (d *dimension) cached(k lookupKey, now time.Time) *entry {
	e, ok := d.cache.Get(k)
	if !ok || !now.Before(e.expires) {
		return nil
	}
	return e
}

// describe names the dimension in errors without its DSN (which may hold
// a password).
func (d *dimension) describe() string {
	if d.stream != nil {
		return d.streamDescribe()
	}
	return fmt.Sprintf("dimension %s (%s table %s)", d.cfg.Name, d.cfg.JDBC.Driver, d.cfg.JDBC.Table)
}

// openDimension connects, checks the table and learns the column types.
func openDimension(ctx context.Context, cfg Dimension) (*dimension, error) {
	d := &dimension{cfg: cfg, stmts: map[int]*sql.Stmt{}}
	var err error
	switch cfg.JDBC.Driver {
	case DriverMySQL:
		mc, perr := mysql.ParseDSN(cfg.JDBC.DSN)
		if perr != nil {
			return nil, fmt.Errorf("%s: dsn: %w", d.describe(), perr)
		}
		// Dates arrive as time.Time rather than text, DATETIME is read as
		// the UTC wall clock (pipeline.TypeTimestamp's convention), and a
		// session in UTC makes TIMESTAMP values instants in UTC whatever
		// the server's time zone is.
		mc.ParseTime = true
		mc.Loc = time.UTC
		if mc.Params == nil {
			mc.Params = map[string]string{}
		}
		mc.Params["time_zone"] = "'+00:00'"
		conn, cerr := mysql.NewConnector(mc)
		if cerr != nil {
			return nil, fmt.Errorf("%s: dsn: %w", d.describe(), cerr)
		}
		d.db = sql.OpenDB(conn)
	case DriverPostgres:
		d.db, err = sql.Open("postgres", cfg.JDBC.DSN)
		if err != nil {
			return nil, fmt.Errorf("%s: dsn: %w", d.describe(), err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown driver %q", d.describe(), cfg.JDBC.Driver)
	}
	// One goroutine runs the lookups, one query at a time: one connection
	// is all it uses, and statements are prepared on it once.
	d.db.SetMaxOpenConns(1)
	d.db.SetMaxIdleConns(1)
	if err := d.db.PingContext(ctx); err != nil {
		d.db.Close()
		return nil, fmt.Errorf("%s: connect: %w", d.describe(), err)
	}
	if err := d.probe(ctx); err != nil {
		d.db.Close()
		return nil, err
	}
	if d.cache, err = newCache(cfg.Cache.Size); err != nil {
		d.db.Close()
		return nil, fmt.Errorf("%s: cache: %w", d.describe(), err)
	}
	d.widths = widths(cfg.BatchSize)
	return d, nil
}

// widths are the IN-list widths a dimension prepares: powers of two from
// 16 below BatchSize, then BatchSize. A chunk of n keys runs on the
// narrowest width >= n, padded by repeating its last key, so that a few
// prepared statements serve every chunk size and each chunk is one round
// trip (a query with arguments but no prepared statement costs two: one
// to prepare or describe, one to execute).
func widths(batch int) []int {
	var w []int
	for n := 16; n < batch; n *= 2 {
		w = append(w, n)
	}
	return append(w, batch)
}

func (d *dimension) quote(id string) string {
	if d.cfg.JDBC.Driver == DriverPostgres {
		return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
	}
	return "`" + strings.ReplaceAll(id, "`", "``") + "`"
}

func (d *dimension) quoteTable() string {
	parts := strings.Split(d.cfg.JDBC.Table, ".")
	for i, p := range parts {
		parts[i] = d.quote(p)
	}
	return strings.Join(parts, ".")
}

// selectList is "key, col1, col2, ...", quoted.
func (d *dimension) selectList() string {
	var b strings.Builder
	b.WriteString(d.quote(d.cfg.JDBC.Key))
	for _, c := range d.cfg.Columns {
		b.WriteString(", ")
		b.WriteString(d.quote(c))
	}
	return b.String()
}

// probe reads the types of the key and the columns from an empty result:
// the drivers report what the server sends for the select list, which is
// what lookups will scan.
func (d *dimension) probe(ctx context.Context) error {
	q := "SELECT " + d.selectList() + " FROM " + d.quoteTable() + " LIMIT 0"
	rows, err := d.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: read the types of key %s and columns %v: %w", d.describe(), d.cfg.JDBC.Key, d.cfg.Columns, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("%s: read column types: %w", d.describe(), err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: read column types: %w", d.describe(), err)
	}
	if len(types) != len(d.cfg.Columns)+1 {
		return fmt.Errorf("%s: the probe returned %d columns, want %d", d.describe(), len(types), len(d.cfg.Columns)+1)
	}
	d.keyCol = mapType(d.cfg.JDBC.Driver, d.cfg.JDBC.Key, types[0])
	if d.kind = kindOf(d.keyCol.Type); d.kind == 0 {
		return fmt.Errorf("%s: key column %s is %s (%s); lookups support integer, text, decimal and binary keys",
			d.describe(), d.cfg.JDBC.Key, types[0].DatabaseTypeName(), d.keyCol.Type)
	}
	d.cols = make([]pipeline.Column, len(d.cfg.Columns))
	for i, name := range d.cfg.Columns {
		c := mapType(d.cfg.JDBC.Driver, name, types[i+1])
		c.Nullable = true // a key without a row adds NULLs
		d.cols[i] = c
	}
	return nil
}

// mapType maps a column as a driver reports it to a pipeline column. Type
// names are go-sql-driver/mysql's and lib/pq's DatabaseTypeName values;
// the MySQL mapping follows cdc/mysql's, so that an enriched column has
// the type the same column would have when captured. Types without a
// better match (PostgreSQL intervals, arrays, ranges...) are read as text.
func mapType(driver, name string, ct *sql.ColumnType) pipeline.Column {
	c := pipeline.Column{Name: name, Nullable: true}
	switch ct.DatabaseTypeName() {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "YEAR",
		"UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT",
		"INT2", "INT4":
		c.Type = pipeline.TypeInt32
	case "UNSIGNED INT", "BIGINT", "BIT", "INT8", "OID":
		c.Type = pipeline.TypeInt64
	case "UNSIGNED BIGINT":
		// pipeline.Decimal holds 18 digits; 2^64-1 has 20.
		c.Type, c.Precision = pipeline.TypeString, 20
	case "DECIMAL", "NUMERIC":
		p, s, ok := ct.DecimalSize()
		// An unconstrained PostgreSQL numeric reports 65535 digits.
		if ok && p > 0 && p <= 18 && s >= 0 && s <= p {
			c.Type, c.Precision, c.Scale = pipeline.TypeDecimal, int(p), int(s)
		} else {
			c.Type = pipeline.TypeString
			if ok && p <= 65 {
				c.Precision, c.Scale = int(p), int(s)
			}
		}
	case "FLOAT", "FLOAT4":
		c.Type = pipeline.TypeFloat32
	case "DOUBLE", "FLOAT8":
		c.Type = pipeline.TypeFloat64
	case "BOOL":
		c.Type = pipeline.TypeBool
	case "DATE":
		c.Type = pipeline.TypeDate
	case "DATETIME":
		c.Type = pipeline.TypeTimestamp
	case "TIMESTAMP":
		// MySQL's TIMESTAMP is an instant; PostgreSQL's is a wall clock.
		c.Type = pipeline.TypeTimestamp
		if driver == DriverMySQL {
			c.Type = pipeline.TypeTimestampTZ
		}
	case "TIMESTAMPTZ":
		c.Type = pipeline.TypeTimestampTZ
	case "TIME":
		c.Type = pipeline.TypeTime
	case "BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "GEOMETRY", "BYTEA":
		c.Type = pipeline.TypeBinary
	default:
		// CHAR, VARCHAR, TEXT..., JSON, ENUM, SET; BPCHAR, NAME, UUID,
		// JSONB; and everything else as text.
		c.Type = pipeline.TypeString
	}
	return c
}

// keyOf brings a record's key value into the dimension's canonical form.
// ok is false for NULL and for values that cannot equal any key of the
// dimension (the string "abc" against an integer key).
func (d *dimension) keyOf(v any) (lookupKey, bool) {
	switch d.kind {
	case keyInt:
		switch x := v.(type) {
		case int64:
			return lookupKey{n: x}, true
		case int32:
			return lookupKey{n: int64(x)}, true
		case string:
			n, err := strconv.ParseInt(x, 10, 64)
			return lookupKey{n: n}, err == nil
		case []byte:
			n, err := strconv.ParseInt(string(x), 10, 64)
			return lookupKey{n: n}, err == nil
		case pipeline.Decimal:
			n, ok := decimalToInt(x)
			return lookupKey{n: n}, ok
		}
		return lookupKey{}, false
	case keyText:
		switch x := v.(type) {
		case string:
			return lookupKey{s: x}, true
		case []byte:
			return lookupKey{s: string(x)}, true
		case int64:
			return lookupKey{s: strconv.FormatInt(x, 10)}, true
		case int32:
			return lookupKey{s: strconv.FormatInt(int64(x), 10)}, true
		case pipeline.Decimal:
			return lookupKey{s: x.String()}, true
		}
		return lookupKey{}, false
	case keyBinary:
		switch x := v.(type) {
		case []byte:
			return lookupKey{s: string(x)}, true
		case string:
			return lookupKey{s: x}, true
		}
		return lookupKey{}, false
	}
	return lookupKey{}, false
}

// keyAcceptable reports whether a record column of type t can hold keys of
// this dimension, so that a wrong `on` fails when the table is first seen
// rather than turning every record into a miss.
func (d *dimension) keyAcceptable(t pipeline.Type) bool {
	switch d.kind {
	case keyInt, keyText:
		switch t {
		case pipeline.TypeInt32, pipeline.TypeInt64, pipeline.TypeString, pipeline.TypeDecimal:
			return true
		}
	case keyBinary:
		return t == pipeline.TypeBinary || t == pipeline.TypeString
	}
	return false
}

// arg is the query argument for a key, typed like the key column so that
// the database compares in the column's type: an integer column compared
// with a string argument would be compared as doubles by MySQL, which
// confuses keys above 2^53.
func (d *dimension) arg(k lookupKey) any {
	switch d.kind {
	case keyInt:
		return k.n
	case keyBinary:
		return []byte(k.s)
	}
	return k.s
}

func (d *dimension) render(k lookupKey) string {
	if d.kind == keyInt {
		return strconv.FormatInt(k.n, 10)
	}
	return strconv.Quote(k.s)
}

func compareKeys(a, b lookupKey) int {
	if c := cmp.Compare(a.n, b.n); c != 0 {
		return c
	}
	return strings.Compare(a.s, b.s)
}

// stmt returns the prepared lookup of the given width.
func (d *dimension) stmt(ctx context.Context, width int) (*sql.Stmt, error) {
	if s, ok := d.stmts[width]; ok {
		return s, nil
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(d.selectList())
	b.WriteString(" FROM ")
	b.WriteString(d.quoteTable())
	b.WriteString(" WHERE ")
	b.WriteString(d.quote(d.cfg.JDBC.Key))
	b.WriteString(" IN (")
	for i := range width {
		if i > 0 {
			b.WriteByte(',')
		}
		if d.cfg.JDBC.Driver == DriverPostgres {
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i + 1))
		} else {
			b.WriteByte('?')
		}
	}
	b.WriteByte(')')
	s, err := d.db.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("%s: prepare lookup of %d keys: %w", d.describe(), width, err)
	}
	d.stmts[width] = s
	return s, nil
}

// fetch looks keys up (distinct, not cached) in chunks of at most
// BatchSize, one query per chunk, and records every key's outcome in got
// and in the cache: the row, or a negative entry. The round trips are
// what an enrichment costs when the cache misses (a query for 500 keys
// takes about as long as one for 1), hence distinct keys, whole chunks,
// and prepared statements. It returns the number of queries issued.
func (d *dimension) fetch(ctx context.Context, keys []lookupKey, got map[lookupKey]*entry, now time.Time) (int, error) {
	// Sorted keys keep the statements' index lookups in key order and make
	// the queries of a batch deterministic.
	slices.SortFunc(keys, compareKeys)
	queries := 0
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), d.cfg.BatchSize)]
		keys = keys[len(chunk):]
		width := d.widths[len(d.widths)-1]
		for _, w := range d.widths {
			if w >= len(chunk) {
				width = w
				break
			}
		}
		st, err := d.stmt(ctx, width)
		if err != nil {
			return queries, err
		}
		d.args = d.args[:0]
		for _, k := range chunk {
			d.args = append(d.args, d.arg(k))
		}
		for len(d.args) < width {
			d.args = append(d.args, d.args[len(d.args)-1])
		}
		queries++
		if err := d.query(ctx, st, chunk, got, now); err != nil {
			return queries, err
		}
	}
	return queries, nil
}

func (d *dimension) query(ctx context.Context, st *sql.Stmt, chunk []lookupKey, got map[lookupKey]*entry, now time.Time) error {
	rows, err := st.QueryContext(ctx, d.args...)
	if err != nil {
		return fmt.Errorf("%s: look up %d keys: %w", d.describe(), len(chunk), err)
	}
	defer rows.Close()
	n := len(d.cols) + 1
	if len(d.dest) != n {
		d.dest = make([]any, n)
		d.ptrs = make([]any, n)
		for i := range d.dest {
			d.ptrs[i] = &d.dest[i]
		}
	}
	expires := now.Add(d.cfg.Cache.TTL)
	for rows.Next() {
		if err := rows.Scan(d.ptrs...); err != nil {
			return fmt.Errorf("%s: look up %d keys: %w", d.describe(), len(chunk), err)
		}
		kv, err := convert(d.keyCol, d.dest[0])
		if err != nil {
			return fmt.Errorf("%s: key column %s: %w", d.describe(), d.cfg.JDBC.Key, err)
		}
		k, ok := d.keyOf(kv)
		if !ok {
			continue // a NULL key matches nothing
		}
		if e, dup := got[k]; dup && e.row != nil {
			continue // a duplicate key: the first row wins
		}
		row := make([]any, len(d.cols))
		for i, c := range d.cols {
			if row[i], err = convert(c, d.dest[i+1]); err != nil {
				return fmt.Errorf("%s: key %s: column %s: %w", d.describe(), d.render(k), c.Name, err)
			}
		}
		e := &entry{row: row, expires: expires}
		got[k] = e
		d.cache.Add(k, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: look up %d keys: %w", d.describe(), len(chunk), err)
	}
	negExpires := now.Add(d.cfg.Cache.NegativeTTL)
	for _, k := range chunk {
		if _, ok := got[k]; !ok {
			e := &entry{expires: negExpires}
			got[k] = e
			d.cache.Add(k, e)
		}
	}
	return nil
}

// keyName is the dimension's key column.
func (d *dimension) keyName() string {
	if d.stream != nil {
		return d.stream.keyName
	}
	return d.cfg.JDBC.Key
}

func (d *dimension) close() error {
	var errs []error
	for _, s := range d.stmts {
		errs = append(errs, s.Close())
	}
	d.stmts = map[int]*sql.Stmt{}
	if d.cache != nil {
		d.cache.Purge()
	}
	if d.kafka != nil {
		d.kafka.feed.Close()
		d.kafka = nil
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
	}
	return errors.Join(errs...)
}
