package mysql

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/sluice-cdc/sluice/pipeline"
)

// A table's shape at a point of the binlog is the shape of the table map
// event in front of its rows. With binlog_row_metadata=FULL the event
// names the columns and carries what their types need (signedness,
// character sets, ENUM and SET members, the primary key), so the source
// reads every shape change from the stream itself, at the right point,
// whatever information_schema says now.

// binaryCollation is the collation id of the binary character set.
const binaryCollation = 63

// hasNames reports whether a table map event carries column names
// (binlog_row_metadata=FULL).
func hasNames(tm *replication.TableMapEvent) bool {
	return len(tm.ColumnName) == int(tm.ColumnCount) && tm.ColumnCount > 0
}

// sameLayout reports whether tm has the column types, metadata and
// nullability t was last checked against. A DDL reopens the table, which
// gives it a new table id, so an unchanged id and layout is an unchanged
// shape.
func (t *table) sameLayout(tm *replication.TableMapEvent) bool {
	return t.tmID == tm.TableID && t.tmID != 0 && bytes.Equal(t.tmTypes, tm.ColumnType) &&
		slices.Equal(t.tmMeta, tm.ColumnMeta) && bytes.Equal(t.tmNull, tm.NullBitmap)
}

// remember records tm as the event t's shape was checked against.
func (t *table) remember(tm *replication.TableMapEvent) {
	t.tmID = tm.TableID
	t.tmTypes = bytes.Clone(tm.ColumnType)
	t.tmMeta = slices.Clone(tm.ColumnMeta)
	t.tmNull = bytes.Clone(tm.NullBitmap)
}

// binlogType describes a table map column as information_schema would:
// DATA_TYPE, a COLUMN_TYPE good enough for mapColumn, the numeric
// precision and scale, and the octet length of BINARY(n).
func binlogType(tm *replication.TableMapEvent, i int, unsigned map[int]bool, collation map[int]uint64, enums, sets map[int][]string) (dataType, colType string, prec, scale, octets int, err error) {
	typ, meta := tm.ColumnType[i], tm.ColumnMeta[i]
	bin := collation[i] == binaryCollation
	unsignedSuffix := ""
	if unsigned[i] {
		unsignedSuffix = " unsigned"
	}
	switch typ {
	case gomysql.MYSQL_TYPE_TINY:
		dataType = "tinyint"
	case gomysql.MYSQL_TYPE_SHORT:
		dataType = "smallint"
	case gomysql.MYSQL_TYPE_INT24:
		dataType = "mediumint"
	case gomysql.MYSQL_TYPE_LONG:
		dataType = "int"
	case gomysql.MYSQL_TYPE_LONGLONG:
		dataType = "bigint"
	case gomysql.MYSQL_TYPE_YEAR:
		// Numeric to the binlog (and flagged unsigned), never to
		// information_schema.
		return "year", "year", 0, 0, 0, nil
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		dataType, prec, scale = "decimal", int(meta>>8), int(meta&0xff)
		return dataType, fmt.Sprintf("decimal(%d,%d)%s", prec, scale, unsignedSuffix), prec, scale, 0, nil
	case gomysql.MYSQL_TYPE_FLOAT:
		dataType = "float"
	case gomysql.MYSQL_TYPE_DOUBLE:
		dataType = "double"
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		dataType = "date"
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
		dataType = "datetime"
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		dataType = "timestamp"
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		dataType = "time"
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
		dataType = "varchar"
		if bin {
			dataType = "varbinary"
		}
	case gomysql.MYSQL_TYPE_STRING:
		switch real := byte(meta >> 8); real {
		case gomysql.MYSQL_TYPE_ENUM, gomysql.MYSQL_TYPE_SET:
			members, kind := enums[i], "enum"
			if real == gomysql.MYSQL_TYPE_SET {
				members, kind = sets[i], "set"
			}
			if members == nil {
				return "", "", 0, 0, 0, fmt.Errorf("the table map event lacks the members of %s column %d", kind, i)
			}
			quoted := make([]string, len(members))
			for j, m := range members {
				quoted[j] = "'" + strings.ReplaceAll(m, "'", "''") + "'"
			}
			return kind, kind + "(" + strings.Join(quoted, ",") + ")", 0, 0, 0, nil
		default:
			// CHAR(n)/BINARY(n): the length in bytes, with its high bits
			// folded into the real type's byte for n > 255.
			b0, b1 := int(meta>>8), int(meta&0xff)
			length := b1
			if b0&0x30 != 0x30 {
				length = b1 | (((b0 & 0x30) ^ 0x30) << 4)
			}
			dataType = "char"
			if bin {
				dataType, octets = "binary", length
			}
		}
	case gomysql.MYSQL_TYPE_BLOB:
		prefix := map[uint16]string{1: "tiny", 2: "", 3: "medium", 4: "long"}[meta]
		dataType = prefix + "text"
		if bin {
			dataType = prefix + "blob"
		}
	case gomysql.MYSQL_TYPE_JSON:
		dataType = "json"
	case gomysql.MYSQL_TYPE_BIT:
		dataType = "bit"
	case gomysql.MYSQL_TYPE_GEOMETRY:
		dataType = "geometry"
	default:
		return "", "", 0, 0, 0, fmt.Errorf("binlog column type %d is not supported yet", typ)
	}
	return dataType, dataType + unsignedSuffix, 0, 0, octets, nil
}

// errNoKey is a table map event without primary key metadata.
var errNoKey = errors.New("no primary key")

// tableFromMap builds a table from a table map event with column names.
// keys, when set, stand in for the primary key. A table without a primary
// key in the event has a nil Key and errNoKey.
func tableFromMap(id pipeline.TableID, tm *replication.TableMapEvent, keys []string) (*table, error) {
	names := tm.ColumnNameString()
	unsigned := tm.UnsignedMap()
	collation := tm.CollationMap()
	enums, sets := tm.EnumStrValueMap(), tm.SetStrValueMap()
	t := &table{schema: &pipeline.Schema{Table: id}}
	for i := 0; i < int(tm.ColumnCount); i++ {
		dataType, colType, prec, scale, octets, err := binlogType(tm, i, unsigned, collation, enums, sets)
		if err != nil {
			return nil, fmt.Errorf("mysql: table %s column %s: %w", id, names[i], err)
		}
		col, ci, err := mapColumn(names[i], dataType, colType, prec, scale, octets)
		if err != nil {
			return nil, fmt.Errorf("mysql: table %s: %w", id, err)
		}
		if ok, null := tm.Nullable(i); ok {
			col.Nullable = null
		} else {
			col.Nullable = true
		}
		t.schema.Columns = append(t.schema.Columns, col)
		t.cols = append(t.cols, ci)
	}
	if len(keys) > 0 {
		if err := t.setKeys(keys); err != nil {
			return nil, err
		}
	} else {
		for _, k := range tm.PrimaryKey {
			if int(k) >= len(t.schema.Columns) {
				return nil, fmt.Errorf("mysql: table %s: primary key column %d out of %d", id, k, len(t.schema.Columns))
			}
			t.schema.Key = append(t.schema.Key, int(k))
		}
	}
	t.remember(tm)
	if len(t.schema.Key) == 0 {
		return t, errNoKey
	}
	return t, nil
}

// sameColumns reports whether two tables convert rows alike.
func sameColumns(a, b *table) bool {
	return slices.Equal(a.schema.Columns, b.schema.Columns) && slices.Equal(a.schema.Key, b.schema.Key) &&
		slices.EqualFunc(a.cols, b.cols, func(x, y colInfo) bool {
			return x.dataType == y.dataType && x.unsigned == y.unsigned && x.bits == y.bits &&
				slices.Equal(x.values, y.values) && x.padTo == y.padTo && x.spatial == y.spatial && x.null == y.null
		})
}

// binlogMatches reports whether a column of type typ in a table map event
// can be the column ci describes: without column names, the shape of the
// rows can only be checked by their types.
func binlogMatches(ci *colInfo, typ byte) bool {
	switch typ {
	case gomysql.MYSQL_TYPE_TINY:
		return ci.dataType == "tinyint"
	case gomysql.MYSQL_TYPE_SHORT:
		return ci.dataType == "smallint"
	case gomysql.MYSQL_TYPE_INT24:
		return ci.dataType == "mediumint"
	case gomysql.MYSQL_TYPE_LONG:
		return ci.dataType == "int" || ci.dataType == "integer"
	case gomysql.MYSQL_TYPE_LONGLONG:
		return ci.dataType == "bigint"
	case gomysql.MYSQL_TYPE_YEAR:
		return ci.dataType == "year"
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		return ci.dataType == "decimal" || ci.dataType == "numeric" || ci.dataType == "fixed"
	case gomysql.MYSQL_TYPE_FLOAT:
		return ci.dataType == "float"
	case gomysql.MYSQL_TYPE_DOUBLE:
		return ci.dataType == "double" || ci.dataType == "real" || ci.dataType == "double precision"
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		return ci.dataType == "date"
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
		return ci.dataType == "datetime"
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		return ci.dataType == "timestamp"
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		return ci.dataType == "time"
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
		return ci.dataType == "varchar" || ci.dataType == "varbinary"
	case gomysql.MYSQL_TYPE_STRING:
		return ci.dataType == "char" || ci.dataType == "binary" || ci.dataType == "enum" || ci.dataType == "set"
	case gomysql.MYSQL_TYPE_BLOB:
		return strings.HasSuffix(ci.dataType, "text") || strings.HasSuffix(ci.dataType, "blob") || ci.dataType == "json"
	case gomysql.MYSQL_TYPE_JSON:
		return ci.dataType == "json"
	case gomysql.MYSQL_TYPE_BIT:
		return ci.dataType == "bit"
	case gomysql.MYSQL_TYPE_GEOMETRY:
		return ci.spatial
	}
	return false
}

// checkLayout verifies, without column names, that tm's columns are the
// ones t converts.
func (t *table) checkLayout(tm *replication.TableMapEvent) error {
	if len(tm.ColumnType) != len(t.cols) {
		return fmt.Errorf("mysql: table %s: the binlog's rows have %d columns, the schema sluice read has %d: the table changed shape, and the binlog does not name its columns; set binlog_row_metadata=FULL so that sluice reads each shape from the binlog",
			t.schema.Table, len(tm.ColumnType), len(t.cols))
	}
	for i, typ := range tm.ColumnType {
		if !binlogMatches(&t.cols[i], typ) {
			return fmt.Errorf("mysql: table %s: column %d (%s) is %s in the schema sluice read but binlog type %d in the rows: the table changed shape, and the binlog does not name its columns; set binlog_row_metadata=FULL so that sluice reads each shape from the binlog",
				t.schema.Table, i+1, t.schema.Columns[i].Name, t.cols[i].dataType, typ)
		}
	}
	t.remember(tm)
	return nil
}

// change is a table's change of shape, as the lake will see it.
type change struct {
	// next is the table to convert rows with from here on: the new shape,
	// adjusted to what the lake can follow (see evolveTable).
	next *table
	// notes are adjustments made under ddl: skip, or to keep a wider type,
	// for the log.
	notes []string
}

// errInexpressible is a change of a table's shape that its lake tables
// cannot follow.
var errInexpressible = errors.New("the lake tables cannot follow the change")

// inexpressible describes one part of a change the lake cannot follow.
type inexpressible struct {
	column string // empty for the key
	what   string
	skip   string // what ddl: skip does instead, empty if it cannot
}

// evolveTable compares the old and new shapes of a table and returns the
// table to convert rows with. renames are the column renames the DDL since
// the old shape announced (new name -> old name). Under policy skip, the
// parts of the change the lake cannot follow are left out: a column whose
// type changes beyond widening keeps its type and is NULL from here on, a
// changed primary key stays the old one while its columns exist. Narrower
// types keep the wider one whatever the policy: their values fit.
func evolveTable(old, nt *table, renames map[string]string, skip bool) (*change, []inexpressible) {
	ch := &change{next: nt}
	ns := nt.schema
	ren, swapped := completedRenames(old.schema, ns, renames)
	var bad []inexpressible
	for _, sw := range swapped {
		if sw[0] > sw[1] {
			continue // the same swap, seen from its other column
		}
		bad = append(bad, inexpressible{column: sw[1],
			what: fmt.Sprintf("columns %s and %s swap names, which a lake table cannot follow (its columns are renamed one at a time)", sw[0], sw[1]),
			skip: "the columns keep their names, so their values land under each other's"})
	}
	if len(ren) > 0 {
		ns.Renamed = ren
	}
	oldIndex := func(name string) int {
		if o, ok := ren[name]; ok {
			return old.schema.ColumnIndex(o)
		}
		return old.schema.ColumnIndex(name)
	}

	// The primary key: the same columns, in the same order.
	var oldKey, newKey []string
	for _, k := range old.schema.Key {
		oldKey = append(oldKey, old.schema.Columns[k].Name)
	}
	sameKey := len(ns.Key) == len(old.schema.Key)
	for j, k := range ns.Key {
		newKey = append(newKey, ns.Columns[k].Name)
		if sameKey && oldIndex(ns.Columns[k].Name) != old.schema.Key[j] {
			sameKey = false
		}
	}
	if !sameKey {
		// Under skip the old key stays, if its columns are still there.
		var kept []int
		for _, k := range old.schema.Key {
			name := old.schema.Columns[k].Name
			for nw, o := range ren {
				if o == name {
					name = nw
				}
			}
			if i := ns.ColumnIndex(name); i >= 0 {
				kept = append(kept, i)
			}
		}
		what := fmt.Sprintf("the primary key changes from (%s) to (%s), and an upsert table's key cannot change", strings.Join(oldKey, ", "), strings.Join(newKey, ", "))
		if len(kept) == len(old.schema.Key) {
			bad = append(bad, inexpressible{what: what, skip: "the old key stays the lake's key"})
			if skip {
				ns.Key = kept
			}
		} else {
			bad = append(bad, inexpressible{what: what + " (a column of the old key is gone)"})
		}
	}
	isKey := func(i int) bool { return slices.Contains(ns.Key, i) }

	for i := range ns.Columns {
		c := &ns.Columns[i]
		oi := oldIndex(c.Name)
		if oi < 0 {
			continue // added
		}
		oc, oci := old.schema.Columns[oi], &old.cols[oi]
		if oci.null {
			// Left out under skip before: it stays NULL.
			*c = pipeline.Column{Name: c.Name, Type: oc.Type, Nullable: true, Precision: oc.Precision, Scale: oc.Scale}
			nt.cols[i].null = true
			continue
		}
		switch joinTypes(oc, oci, *c) {
		case joinSame, joinWider:
			if isKey(i) && c.Type != oc.Type {
				bad = append(bad, inexpressible{column: c.Name,
					what: fmt.Sprintf("primary key column %s changes from %s to %s, and an upsert table's key cannot change type", c.Name, typeName(oc), typeName(*c)),
					skip: "the column keeps its type; a value that does not fit it fails the run"})
				if skip {
					c.Type, c.Precision, c.Scale = oc.Type, oc.Precision, oc.Scale
				}
			}
		case joinKeepOld:
			ch.notes = append(ch.notes, fmt.Sprintf("column %s narrows from %s to %s: the lake keeps %s", c.Name, typeName(oc), typeName(*c), typeName(oc)))
			c.Type, c.Precision, c.Scale = oc.Type, oc.Precision, oc.Scale
		default:
			if isKey(i) {
				bad = append(bad, inexpressible{column: c.Name,
					what: fmt.Sprintf("primary key column %s changes from %s to %s, and an upsert table's key cannot change type", c.Name, typeName(oc), typeName(*c))})
				continue
			}
			bad = append(bad, inexpressible{column: c.Name,
				what: fmt.Sprintf("column %s changes from %s to %s, and Iceberg only widens int to long, float to double and a decimal's precision (up to 18 digits here)", c.Name, typeName(oc), typeName(*c)),
				skip: "the column keeps its type and is NULL from here on"})
			if skip {
				*c = pipeline.Column{Name: c.Name, Type: oc.Type, Nullable: true, Precision: oc.Precision, Scale: oc.Scale}
				nt.cols[i].null = true
			}
		}
	}
	return ch, bad
}

// completedRenames returns the renames (new name -> old name) that the
// change from old to ns completes: the new name is a column now, the old
// one is not. Renames between two columns that both stay (a swap) are
// returned apart, as pairs of names.
func completedRenames(old, ns *pipeline.Schema, renames map[string]string) (map[string]string, [][2]string) {
	var ren map[string]string
	var swapped [][2]string
	for _, nw := range slices.Sorted(maps.Keys(renames)) {
		o := renames[nw]
		ni := columnIndexFold(ns, nw)
		if ni < 0 {
			continue
		}
		oi := columnIndexFold(old, o)
		oldName := o
		if oi >= 0 {
			oldName = old.Columns[oi].Name
		}
		if columnIndexFold(ns, o) >= 0 {
			if oi >= 0 && columnIndexFold(old, nw) >= 0 {
				swapped = append(swapped, [2]string{oldName, ns.Columns[ni].Name})
			}
			continue
		}
		if ren == nil {
			ren = map[string]string{}
		}
		ren[ns.Columns[ni].Name] = oldName
	}
	return ren, swapped
}

func columnIndexFold(s *pipeline.Schema, name string) int {
	if i := s.ColumnIndex(name); i >= 0 {
		return i
	}
	for i, c := range s.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

type join uint8

const (
	joinNone    join = iota
	joinSame         // the same type
	joinWider        // the new type widens the old: the lake column widens
	joinKeepOld      // the new type's values fit the old type: the lake keeps it
)

// joinTypes says how a column's pipeline type may go from o to n.
func joinTypes(o pipeline.Column, oci *colInfo, n pipeline.Column) join {
	switch {
	case o.Type == n.Type && o.Type == pipeline.TypeDecimal:
		switch {
		case o.Scale != n.Scale:
			return joinNone
		case n.Precision > o.Precision:
			return joinWider
		case n.Precision < o.Precision:
			return joinKeepOld
		}
		return joinSame
	case o.Type == n.Type:
		return joinSame
	case o.Type == pipeline.TypeInt32 && n.Type == pipeline.TypeInt64,
		o.Type == pipeline.TypeFloat32 && n.Type == pipeline.TypeFloat64:
		return joinWider
	case o.Type == pipeline.TypeInt64 && n.Type == pipeline.TypeInt32,
		o.Type == pipeline.TypeFloat64 && n.Type == pipeline.TypeFloat32:
		return joinKeepOld
	case o.Type == pipeline.TypeString && n.Type == pipeline.TypeDecimal && isDecimal(oci.dataType) && o.Scale == n.Scale:
		// decimal(p > 18) carried as text, now decimal(p <= 18): the
		// text form of the same scale holds its values.
		return joinKeepOld
	}
	return joinNone
}

func isDecimal(dataType string) bool {
	return dataType == "decimal" || dataType == "numeric" || dataType == "fixed"
}

func typeName(c pipeline.Column) string {
	if c.Type == pipeline.TypeDecimal {
		return "decimal(" + strconv.Itoa(c.Precision) + "," + strconv.Itoa(c.Scale) + ")"
	}
	return c.Type.String()
}
