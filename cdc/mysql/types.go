package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/sluice-cdc/sluice/pipeline"
)

// colInfo is what converting one column's binlog values needs beyond its
// pipeline.Column.
type colInfo struct {
	dataType string   // information_schema DATA_TYPE, lower case
	unsigned bool     // COLUMN_TYPE says "unsigned"
	bits     uint     // integer width, for unsigned values decoded as signed
	values   []string // ENUM and SET members, in declaration order
	padTo    int      // BINARY(n): n (the binlog drops trailing zero bytes)
	spatial  bool     // geometry: strip the SRID to leave WKB
	// null: the column's values are left out (a type change the lake
	// cannot follow, under ddl: skip); it is NULL.
	null bool
}

// table is a captured table: its schema and per-column conversion details.
type table struct {
	schema *pipeline.Schema
	cols   []colInfo
	// The table map event the shape was last checked against: its table
	// id, column types, metadata and nullability (see sameLayout).
	tmID    uint64
	tmTypes []byte
	tmMeta  []uint16
	tmNull  []byte
	// used: rows were converted with the table. A table never used (read
	// from information_schema at Open, which may be ahead of the binlog)
	// is replaced by the binlog's shape without a change being judged.
	used bool
}

// loadTable reads a table's columns and primary key from information_schema.
// keys, when set, stand in for the primary key.
// setKeys makes the configured columns (source.mysql.keys) the table's
// key.
func (t *table) setKeys(keys []string) error {
	for _, k := range keys {
		i := t.schema.ColumnIndex(k)
		if i < 0 {
			return fmt.Errorf("%s.keys.%s: column %q is not a column of the table", prefix, t.schema.Table, k)
		}
		t.schema.Key = append(t.schema.Key, i)
	}
	return nil
}

func loadTable(ctx context.Context, db *sql.DB, dbName, name string, keys []string) (*table, error) {
	id := pipeline.TableID{Namespace: dbName, Name: name}
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE,
		COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0), COALESCE(CHARACTER_OCTET_LENGTH, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
		ORDER BY ORDINAL_POSITION`, dbName, name)
	if err != nil {
		return nil, fmt.Errorf("mysql: read columns of %s: %w", id, err)
	}
	defer rows.Close()
	t := &table{schema: &pipeline.Schema{Table: id, Version: 1}}
	for rows.Next() {
		var colName, dataType, colType, nullable string
		var prec, scale, octets int64
		if err := rows.Scan(&colName, &dataType, &colType, &nullable, &prec, &scale, &octets); err != nil {
			return nil, fmt.Errorf("mysql: read columns of %s: %w", id, err)
		}
		col, ci, err := mapColumn(colName, dataType, colType, int(prec), int(scale), int(octets))
		if err != nil {
			return nil, fmt.Errorf("mysql: table %s: %w", id, err)
		}
		col.Nullable = strings.EqualFold(nullable, "YES")
		t.schema.Columns = append(t.schema.Columns, col)
		t.cols = append(t.cols, ci)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: read columns of %s: %w", id, err)
	}
	if len(t.cols) == 0 {
		return nil, fmt.Errorf("mysql: table %s has no columns (does it exist and may the user read it?)", id)
	}
	if len(keys) > 0 {
		if err := t.setKeys(keys); err != nil {
			return nil, err
		}
		return t, nil
	}
	krows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
		ORDER BY ORDINAL_POSITION`, dbName, name)
	if err != nil {
		return nil, fmt.Errorf("mysql: read primary key of %s: %w", id, err)
	}
	defer krows.Close()
	for krows.Next() {
		var k string
		if err := krows.Scan(&k); err != nil {
			return nil, fmt.Errorf("mysql: read primary key of %s: %w", id, err)
		}
		i := t.schema.ColumnIndex(k)
		if i < 0 {
			return nil, fmt.Errorf("mysql: table %s: primary key column %q not among its columns", id, k)
		}
		t.schema.Key = append(t.schema.Key, i)
	}
	if err := krows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: read primary key of %s: %w", id, err)
	}
	if len(t.schema.Key) == 0 {
		return nil, fmt.Errorf("mysql: table %s has no primary key: sluice needs one to apply updates and deletes and to read the table in chunks; add a PRIMARY KEY, name unique columns under %s.keys[\"%s\"], or leave the table out of %[2]s.tables", id, prefix, id)
	}
	return t, nil
}

// mapColumn maps a MySQL column type to a pipeline column.
func mapColumn(name, dataType, colType string, prec, scale, octets int) (pipeline.Column, colInfo, error) {
	dt := strings.ToLower(dataType)
	ct := strings.ToLower(colType)
	ci := colInfo{dataType: dt, unsigned: strings.Contains(ct, "unsigned")}
	c := pipeline.Column{Name: name}
	switch dt {
	case "tinyint":
		c.Type, ci.bits = pipeline.TypeInt32, 8
	case "smallint":
		c.Type, ci.bits = pipeline.TypeInt32, 16
	case "mediumint":
		c.Type, ci.bits = pipeline.TypeInt32, 24
	case "int", "integer":
		c.Type, ci.bits = pipeline.TypeInt32, 32
		if ci.unsigned {
			c.Type = pipeline.TypeInt64
		}
	case "bigint":
		c.Type, ci.bits = pipeline.TypeInt64, 64
		if ci.unsigned {
			// pipeline.Decimal holds 18 digits; 2^64-1 has 20.
			c.Type, c.Precision = pipeline.TypeString, 20
		}
	case "decimal", "numeric", "fixed":
		c.Precision, c.Scale = prec, scale
		c.Type = pipeline.TypeDecimal
		if prec > 18 {
			c.Type = pipeline.TypeString
		}
	case "float":
		c.Type = pipeline.TypeFloat32
	case "double", "real", "double precision":
		c.Type = pipeline.TypeFloat64
	case "date":
		c.Type = pipeline.TypeDate
	case "datetime":
		c.Type = pipeline.TypeTimestamp
	case "timestamp":
		c.Type = pipeline.TypeTimestampTZ
	case "time":
		c.Type = pipeline.TypeTime
	case "year":
		c.Type = pipeline.TypeInt32
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json":
		c.Type = pipeline.TypeString
	case "enum", "set":
		c.Type = pipeline.TypeString
		vals, err := parseMembers(colType)
		if err != nil {
			return c, ci, fmt.Errorf("column %s: %w", name, err)
		}
		ci.values = vals
	case "binary":
		c.Type, ci.padTo = pipeline.TypeBinary, octets
	case "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.Type = pipeline.TypeBinary
	case "bit":
		c.Type = pipeline.TypeInt64
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		// WKB: the stored value without its 4-byte SRID prefix.
		c.Type, ci.spatial = pipeline.TypeBinary, true
	default:
		return c, ci, fmt.Errorf("column %s: type %s is not supported yet", name, colType)
	}
	return c, ci, nil
}

// parseMembers parses the members of "enum('a','b')" or "set('a','b')" as
// information_schema.COLUMNS.COLUMN_TYPE shows them (a doubled single quote stands for one).
func parseMembers(colType string) ([]string, error) {
	open, end := strings.IndexByte(colType, '('), strings.LastIndexByte(colType, ')')
	if open < 0 || end < open {
		return nil, fmt.Errorf("cannot parse members of %s", colType)
	}
	s := colType[open+1 : end]
	var out []string
	for i := 0; i < len(s); {
		if s[i] != '\'' {
			return nil, fmt.Errorf("cannot parse members of %s", colType)
		}
		var b strings.Builder
		i++
		for {
			if i >= len(s) {
				return nil, fmt.Errorf("cannot parse members of %s", colType)
			}
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				i++
				break
			}
			b.WriteByte(s[i])
			i++
		}
		out = append(out, b.String())
		if i < len(s) {
			if s[i] != ',' {
				return nil, fmt.Errorf("cannot parse members of %s", colType)
			}
			i++
		}
	}
	return out, nil
}

// convertRow converts one go-mysql row image to pipeline values.
func (t *table) convertRow(row []any) ([]any, error) {
	if len(row) != len(t.cols) {
		return nil, fmt.Errorf("mysql: table %s: binlog row has %d columns, the table's schema %d: the table changed shape unnoticed (set binlog_row_metadata=FULL)",
			t.schema.Table, len(row), len(t.cols))
	}
	out := make([]any, len(row))
	for i, v := range row {
		c := &t.schema.Columns[i]
		x, err := convert(c, &t.cols[i], v)
		if err != nil {
			return nil, fmt.Errorf("mysql: table %s column %s (%s): %w", t.schema.Table, c.Name, t.cols[i].dataType, err)
		}
		out[i] = x
	}
	return out, nil
}

var errType = errors.New("unexpected value")

func badValue(v any) error { return fmt.Errorf("%w %T(%v)", errType, v, v) }

// toInt64 returns an integer value of any width as int64; uint64 values
// above MaxInt64 wrap (callers of unsigned columns undo that).
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case uint:
		return int64(x), true
	}
	return 0, false
}

func convert(c *pipeline.Column, ci *colInfo, v any) (any, error) {
	if v == nil || ci.null {
		return nil, nil
	}
	switch ci.dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		x, ok := toInt64(v)
		if !ok {
			return nil, badValue(v)
		}
		if ci.unsigned && ci.bits < 64 && x < 0 {
			// Decoded as signed (no signedness metadata in the table map).
			x += 1 << ci.bits
		}
		switch c.Type {
		case pipeline.TypeInt32:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, fmt.Errorf("value %d out of int32 range", x)
			}
			return int32(x), nil
		case pipeline.TypeInt64:
			return x, nil
		default: // bigint unsigned
			return strconv.FormatUint(uint64(x), 10), nil
		}
	case "year":
		x, ok := toInt64(v)
		if !ok {
			return nil, badValue(v)
		}
		return int32(x), nil
	case "bit":
		x, ok := toInt64(v)
		if !ok {
			return nil, badValue(v)
		}
		return x, nil
	case "decimal", "numeric", "fixed":
		var d decimal.Decimal
		switch x := v.(type) {
		case decimal.Decimal:
			d = x
		case string:
			if c.Type != pipeline.TypeString {
				if u, ok := parseUnscaled(x, c.Scale); ok {
					return pipeline.Decimal{Unscaled: u, Scale: int32(c.Scale)}, nil
				}
			}
			var err error
			if d, err = decimal.NewFromString(x); err != nil {
				return nil, err
			}
		default:
			return nil, badValue(v)
		}
		if c.Type == pipeline.TypeString {
			return d.StringFixed(int32(c.Scale)), nil
		}
		u := d.Shift(int32(c.Scale))
		if !u.IsInteger() {
			return nil, fmt.Errorf("value %s has more than %d decimals", d, c.Scale)
		}
		bi := u.BigInt()
		if !bi.IsInt64() {
			return nil, fmt.Errorf("value %s does not fit decimal(%d,%d)", d, c.Precision, c.Scale)
		}
		return pipeline.Decimal{Unscaled: bi.Int64(), Scale: int32(c.Scale)}, nil
	case "float":
		var f float32
		switch x := v.(type) {
		case float32:
			f = x
		case float64:
			f = float32(x)
		default:
			return nil, badValue(v)
		}
		if c.Type == pipeline.TypeFloat64 {
			// A DOUBLE column narrowed to FLOAT: the lake keeps double.
			return float64(f), nil
		}
		return f, nil
	case "double", "real", "double precision":
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		}
		return nil, badValue(v)
	case "date":
		s, ok := v.(string)
		if !ok {
			if t, ok := v.(time.Time); ok {
				y, m, d := t.Date()
				return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
			}
			return nil, badValue(v)
		}
		if isZeroDate(s) {
			return nil, nil
		}
		t, err := time.ParseInLocation("2006-01-02", s, time.UTC)
		if err != nil {
			return nil, err
		}
		return t, nil
	case "datetime", "timestamp":
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Truncate(time.Microsecond), nil
		case string:
			// Zero dates, and datetimes before 1970, which go-mysql leaves
			// as text.
			if isZeroDate(x) {
				return nil, nil
			}
			if t, ok := parseDatetime(x); ok {
				return t, nil
			}
			t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", x, time.UTC)
			if err != nil {
				return nil, err
			}
			return t.Truncate(time.Microsecond), nil
		}
		return nil, badValue(v)
	case "time":
		switch x := v.(type) {
		case string:
			return parseTime(x)
		case time.Duration:
			return x, nil
		}
		return nil, badValue(v)
	case "enum":
		x, ok := toInt64(v)
		if !ok {
			return nil, badValue(v)
		}
		if x == 0 {
			return "", nil // the "invalid value" index of non-strict mode
		}
		if x < 0 || int(x) > len(ci.values) {
			return nil, fmt.Errorf("enum index %d out of %d members", x, len(ci.values))
		}
		return ci.values[x-1], nil
	case "set":
		x, ok := toInt64(v)
		if !ok {
			return nil, badValue(v)
		}
		var parts []string
		for i, m := range ci.values {
			if uint64(x)&(1<<uint(i)) != 0 {
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, ","), nil
	}
	switch c.Type {
	case pipeline.TypeString:
		switch x := v.(type) {
		case string:
			return strings.Clone(x), nil
		case []byte:
			return string(x), nil
		}
		return nil, badValue(v)
	case pipeline.TypeBinary:
		var b []byte
		switch x := v.(type) {
		case string:
			b = []byte(x)
		case []byte:
			b = append([]byte(nil), x...)
		default:
			return nil, badValue(v)
		}
		if ci.spatial {
			if len(b) < 4 {
				return nil, fmt.Errorf("geometry value of %d bytes has no SRID prefix", len(b))
			}
			return b[4:], nil
		}
		if ci.padTo > len(b) {
			b = append(b, make([]byte, ci.padTo-len(b))...)
		}
		return b, nil
	}
	return nil, badValue(v)
}

func isZeroDate(s string) bool { return strings.HasPrefix(s, "0000-00-00") }

// parseUnscaled reads a DECIMAL's text ([-]digits[.digits], as the server
// writes it) as an integer scaled by 10^scale, without the arbitrary
// precision detour; ok is false for anything else, or when it does not fit
// in 18 digits, and the caller takes the slow path.
func parseUnscaled(s string, scale int) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	var u int64
	digits, frac, dot := 0, 0, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '.' && !dot:
			dot = true
			continue
		case ch < '0' || ch > '9':
			return 0, false
		}
		if dot {
			frac++
		}
		u = u*10 + int64(ch-'0')
		digits++
	}
	if digits == 0 || frac > scale {
		return 0, false
	}
	for ; frac < scale; frac++ {
		u *= 10
		digits++
	}
	if digits > 18 {
		return 0, false
	}
	if neg {
		u = -u
	}
	return u, true
}

// parseDatetime reads "YYYY-MM-DD HH:MM:SS[.f...]" (the server's text for
// DATETIME and TIMESTAMP in a UTC session) as a UTC time, microseconds
// kept; ok is false for any other shape, and the caller takes
// time.ParseInLocation's path.
func parseDatetime(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(s string) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	h, ok4 := num(s[11:13])
	mi, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	us := 0
	if len(s) > 19 {
		f := s[20:]
		if s[19] != '.' || len(f) == 0 || len(f) > 9 {
			return time.Time{}, false
		}
		n, ok := num(f)
		if !ok {
			return time.Time{}, false
		}
		for i := len(f); i < 6; i++ {
			n *= 10
		}
		for i := len(f); i > 6; i-- {
			n /= 10
		}
		us = n
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC)
	if t.Day() != d {
		return time.Time{}, false // 31 February and such: let the slow path say why
	}
	return t, true
}

// parseTime parses [-]HHH:MM:SS[.ffffff] into a duration.
func parseTime(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("cannot parse TIME %q", s)
	}
	var n [3]int64
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil || x < 0 {
			return 0, fmt.Errorf("cannot parse TIME %q", s)
		}
		n[i] = x
	}
	d := time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		us, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse TIME %q", s)
		}
		d += time.Duration(us) * time.Microsecond
	}
	if neg {
		d = -d
	}
	return d, nil
}
