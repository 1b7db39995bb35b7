package mysql

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/sluice-cdc/sluice/pipeline"
)

// fullTableMap is a table map event as binlog_row_metadata=FULL writes it
// for a table of many types.
func fullTableMap() *replication.TableMapEvent {
	cols := []struct {
		name string
		typ  byte
		meta uint16
	}{
		{"id", gomysql.MYSQL_TYPE_LONGLONG, 0},
		{"n", gomysql.MYSQL_TYPE_LONG, 0}, // unsigned
		{"d", gomysql.MYSQL_TYPE_NEWDECIMAL, 12<<8 | 3},
		{"f", gomysql.MYSQL_TYPE_FLOAT, 4},
		{"s", gomysql.MYSQL_TYPE_VARCHAR, 40},
		{"b", gomysql.MYSQL_TYPE_VARCHAR, 8}, // binary
		{"bn", gomysql.MYSQL_TYPE_STRING, uint16(gomysql.MYSQL_TYPE_STRING)<<8 | 4},
		{"tx", gomysql.MYSQL_TYPE_BLOB, 2},
		{"bl", gomysql.MYSQL_TYPE_BLOB, 4}, // binary
		{"e", gomysql.MYSQL_TYPE_STRING, uint16(gomysql.MYSQL_TYPE_ENUM)<<8 | 1},
		{"st", gomysql.MYSQL_TYPE_STRING, uint16(gomysql.MYSQL_TYPE_SET)<<8 | 1},
		{"ts", gomysql.MYSQL_TYPE_TIMESTAMP2, 6},
		{"dt", gomysql.MYSQL_TYPE_DATETIME2, 0},
		{"tm", gomysql.MYSQL_TYPE_TIME2, 3},
		{"y", gomysql.MYSQL_TYPE_YEAR, 0},
		{"j", gomysql.MYSQL_TYPE_JSON, 4},
		{"bt", gomysql.MYSQL_TYPE_BIT, 1},
		{"g", gomysql.MYSQL_TYPE_GEOMETRY, 4},
		{"da", gomysql.MYSQL_TYPE_DATE, 0},
	}
	tm := &replication.TableMapEvent{TableID: 7, Schema: []byte("db"), Table: []byte("t"), ColumnCount: uint64(len(cols))}
	for _, c := range cols {
		tm.ColumnName = append(tm.ColumnName, []byte(c.name))
		tm.ColumnType = append(tm.ColumnType, c.typ)
		tm.ColumnMeta = append(tm.ColumnMeta, c.meta)
	}
	// All nullable but id.
	tm.NullBitmap = make([]byte, (len(cols)+7)/8)
	for i := 1; i < len(cols); i++ {
		tm.NullBitmap[i/8] |= 1 << (i % 8)
	}
	// Numeric columns in order: id, n, d, f, y; n is unsigned.
	tm.SignednessBitmap = []byte{0x40}
	// Character columns in order: s, b, bn, tx, bl; b, bn and bl binary.
	tm.DefaultCharset = []uint64{45, 1, binaryCollation, 2, binaryCollation, 4, binaryCollation}
	tm.EnumStrValue = [][][]byte{{[]byte("x"), []byte("it's")}}
	tm.SetStrValue = [][][]byte{{[]byte("a"), []byte("b")}}
	tm.PrimaryKey = []uint64{0}
	return tm
}

func TestTableFromMap(t *testing.T) {
	tm := fullTableMap()
	tb, err := tableFromMap(pipeline.TableID{Namespace: "db", Name: "t"}, tm, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, c := range tb.schema.Columns {
		ci := tb.cols[i]
		s := fmt.Sprintf("%s %s/%s", c.Name, ci.dataType, typeName(c))
		if ci.unsigned {
			s += " unsigned"
		}
		if ci.padTo > 0 {
			s += fmt.Sprintf(" pad%d", ci.padTo)
		}
		if ci.values != nil {
			s += fmt.Sprintf(" %q", ci.values)
		}
		if ci.spatial {
			s += " spatial"
		}
		if !c.Nullable {
			s += " not null"
		}
		got = append(got, s)
	}
	want := []string{
		"id bigint/long not null",
		"n int/long unsigned",
		"d decimal/decimal(12,3)",
		"f float/float",
		"s varchar/string",
		"b varbinary/binary",
		"bn binary/binary pad4",
		"tx text/string",
		"bl longblob/binary",
		`e enum/string ["x" "it's"]`,
		`st set/string ["a" "b"]`,
		"ts timestamp/timestamptz",
		"dt datetime/timestamp",
		"tm time/time",
		"y year/int",
		"j json/string",
		"bt bit/long",
		"g geometry/binary spatial",
		"da date/date",
	}
	if !slices.Equal(got, want) {
		t.Errorf("columns:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fmt.Sprint(tb.schema.Key) != "[0]" {
		t.Errorf("key %v", tb.schema.Key)
	}
	if !tb.sameLayout(tm) {
		t.Error("the table does not remember its table map")
	}
	other := fullTableMap()
	other.TableID = 8
	if tb.sameLayout(other) {
		t.Error("a table map of another table id has the same layout")
	}

	// Configured keys stand in for the primary key; no key at all is errNoKey.
	if tb, err := tableFromMap(pipeline.TableID{Namespace: "db", Name: "t"}, tm, []string{"s", "n"}); err != nil || fmt.Sprint(tb.schema.Key) != "[4 1]" {
		t.Errorf("configured key: %v, %v", err, tb)
	}
	tm.PrimaryKey = nil
	if _, err := tableFromMap(pipeline.TableID{Namespace: "db", Name: "t"}, tm, nil); err != errNoKey {
		t.Errorf("no key: err = %v", err)
	}
	// A type the source cannot map.
	tm.ColumnType[3] = gomysql.MYSQL_TYPE_NULL
	if _, err := tableFromMap(pipeline.TableID{Namespace: "db", Name: "t"}, tm, nil); err == nil || !strings.Contains(err.Error(), "column f") {
		t.Errorf("unsupported type: err = %v", err)
	}
}

// shape builds a table from "name type" pairs; "!" marks a NOT NULL
// column, "*" a key column.
func shape(version int, cols ...string) *table {
	tb := &table{schema: &pipeline.Schema{Table: pipeline.TableID{Namespace: "db", Name: "t"}, Version: version}}
	for i, c := range cols {
		name, typ, _ := strings.Cut(c, " ")
		notNull := strings.HasSuffix(typ, "!")
		key := strings.HasSuffix(strings.TrimSuffix(typ, "!"), "*")
		typ = strings.TrimSuffix(strings.TrimSuffix(typ, "!"), "*")
		dataType, prec, scale := typ, 0, 0
		if strings.HasPrefix(typ, "decimal(") {
			fmt.Sscanf(typ, "decimal(%d,%d)", &prec, &scale)
			dataType = "decimal"
		}
		col, ci, err := mapColumn(name, dataType, typ, prec, scale, 0)
		if err != nil {
			panic(err)
		}
		col.Nullable = !notNull && !key
		tb.schema.Columns = append(tb.schema.Columns, col)
		tb.cols = append(tb.cols, ci)
		if key {
			tb.schema.Key = append(tb.schema.Key, i)
		}
	}
	return tb
}

func describeShape(s *pipeline.Schema) string {
	var parts []string
	for i, c := range s.Columns {
		p := c.Name + " " + typeName(c)
		if slices.Contains(s.Key, i) {
			p += " key"
		}
		parts = append(parts, p)
	}
	out := strings.Join(parts, ", ")
	if s.Renamed != nil {
		out += fmt.Sprint(" renamed ", s.Renamed)
	}
	return out
}

func TestEvolveTable(t *testing.T) {
	old := func() *table { return shape(1, "id int*", "a int", "f float", "d decimal(10,2)", "s varchar") }
	for _, tc := range []struct {
		name    string
		nt      *table
		renames map[string]string
		skip    bool
		want    string // the new shape
		nulls   string // columns left NULL
		bad     string // what the lake cannot follow
	}{
		{name: "add and drop", nt: shape(0, "id int*", "a int", "x varchar", "f float", "d decimal(10,2)"),
			want: "id int key, a int, x string, f float, d decimal(10,2)"},
		{name: "rename", nt: shape(0, "id int*", "b int", "f float", "d decimal(10,2)", "s varchar"), renames: map[string]string{"b": "a"},
			want: "id int key, b int, f float, d decimal(10,2), s string renamed map[b:a]"},
		{name: "rename of a column not renamed here", nt: shape(0, "id int*", "a int", "f float", "d decimal(10,2)", "s varchar"), renames: map[string]string{"zz": "a"},
			want: "id int key, a int, f float, d decimal(10,2), s string"},
		{name: "widen", nt: shape(0, "id int*", "a bigint", "f double", "d decimal(14,2)", "s text"),
			want: "id int key, a long, f double, d decimal(14,2), s string"},
		{name: "narrow keeps the wider type", nt: shape(0, "id int*", "a smallint", "f float", "d decimal(8,2)", "s varchar"),
			want: "id int key, a int, f float, d decimal(10,2), s string"},
		{name: "int to varchar", nt: shape(0, "id int*", "a varchar", "f float", "d decimal(10,2)", "s varchar"),
			bad: "column a changes from int to string"},
		{name: "int to varchar, skipped", skip: true, nt: shape(0, "id int*", "a varchar", "f float", "d decimal(10,2)", "s varchar"),
			want: "id int key, a int, f float, d decimal(10,2), s string", nulls: "a", bad: "column a changes from int to string"},
		{name: "decimal scale", nt: shape(0, "id int*", "a int", "f float", "d decimal(10,3)", "s varchar"),
			bad: "column d changes from decimal(10,2) to decimal(10,3)"},
		{name: "decimal beyond 18 digits", nt: shape(0, "id int*", "a int", "f float", "d decimal(20,2)", "s varchar"),
			bad: "column d changes from decimal(10,2) to string"},
		{name: "key widens", nt: shape(0, "id bigint*", "a int", "f float", "d decimal(10,2)", "s varchar"),
			bad: "primary key column id changes from int to long"},
		{name: "key widens, skipped", skip: true, nt: shape(0, "id bigint*", "a int", "f float", "d decimal(10,2)", "s varchar"),
			want: "id int key, a int, f float, d decimal(10,2), s string", bad: "primary key column id changes from int to long"},
		{name: "key changes", nt: shape(0, "id int*", "a int*", "f float", "d decimal(10,2)", "s varchar"),
			bad: "the primary key changes from (id) to (id, a)"},
		{name: "key changes, skipped", skip: true, nt: shape(0, "id int*", "a int*", "f float", "d decimal(10,2)", "s varchar"),
			want: "id int key, a int, f float, d decimal(10,2), s string", bad: "the primary key changes from (id) to (id, a)"},
		{name: "key column renamed", nt: shape(0, "pk int*", "a int", "f float", "d decimal(10,2)", "s varchar"), renames: map[string]string{"pk": "id"},
			want: "pk int key, a int, f float, d decimal(10,2), s string renamed map[pk:id]"},
		{name: "key column dropped", nt: shape(0, "a int*", "f float", "d decimal(10,2)", "s varchar"),
			bad: "a column of the old key is gone"},
		{name: "swap", nt: shape(0, "id int*", "s int", "f float", "d decimal(10,2)", "a varchar"), renames: map[string]string{"a": "s", "s": "a"},
			bad: "columns a and s swap names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, bad := evolveTable(old(), tc.nt, tc.renames, tc.skip)
			var whats []string
			for _, b := range bad {
				whats = append(whats, b.what)
			}
			if tc.bad == "" && len(bad) > 0 || tc.bad != "" && !strings.Contains(strings.Join(whats, "; "), tc.bad) {
				t.Fatalf("inexpressible: %q, want %q", whats, tc.bad)
			}
			if tc.want == "" {
				return
			}
			if got := describeShape(ch.next.schema); got != tc.want {
				t.Errorf("shape %s, want %s", got, tc.want)
			}
			var nulls []string
			for i, ci := range ch.next.cols {
				if ci.null {
					nulls = append(nulls, ch.next.schema.Columns[i].Name)
				}
			}
			if strings.Join(nulls, ",") != tc.nulls {
				t.Errorf("NULL columns %v, want %s", nulls, tc.nulls)
			}
		})
	}
}

// Narrowed columns convert into the wider type the lake keeps; a column
// left out is NULL.
func TestConvertKeepsTheWiderType(t *testing.T) {
	old := shape(1, "id int*", "a bigint", "f double", "d decimal(12,2)", "s varchar")
	nt := shape(0, "id int*", "a int", "f float", "d decimal(8,2)", "s int")
	ch, _ := evolveTable(old, nt, nil, true)
	row, err := ch.next.convertRow([]any{int32(1), int32(-7), float32(1.5), "12.50", int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int32(1), int64(-7), float64(1.5), pipeline.Decimal{Unscaled: 1250, Scale: 2}, nil}
	if !equalRow(row, want) {
		t.Errorf("row %#v, want %#v", row, want)
	}
}
