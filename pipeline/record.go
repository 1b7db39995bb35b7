package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of change a Record carries.
type Op uint8

const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	// OpRead is a row read by a snapshot or backfill rather than a change
	// captured from a log. Sinks treat it like an insert that may overwrite.
	OpRead
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Type is a column's logical type. Values carried in Record.Before/After use
// one Go type per logical type (see ValueKinds in doc.go) so that operators
// and sinks can type-switch without reflection.
type Type uint8

const (
	TypeBool Type = iota + 1
	TypeInt32
	TypeInt64
	TypeFloat32
	TypeFloat64
	TypeDecimal // Decimal{Unscaled, Scale}; Column.Precision/Scale give the declared shape
	TypeString
	TypeBinary
	TypeDate        // time.Time at midnight UTC
	TypeTime        // time.Duration since midnight
	TypeTimestamp   // time.Time, wall clock without zone (stored as UTC)
	TypeTimestampTZ // time.Time, an instant
)

var typeNames = map[Type]string{
	TypeBool: "bool", TypeInt32: "int", TypeInt64: "long", TypeFloat32: "float",
	TypeFloat64: "double", TypeDecimal: "decimal", TypeString: "string", TypeBinary: "binary",
	TypeDate: "date", TypeTime: "time", TypeTimestamp: "timestamp", TypeTimestampTZ: "timestamptz",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of Type.String, used by configuration.
func ParseType(s string) (Type, error) {
	for t, n := range typeNames {
		if strings.EqualFold(n, s) {
			return t, nil
		}
	}
	names := make([]string, 0, len(typeNames))
	for t := TypeBool; t <= TypeTimestampTZ; t++ {
		names = append(names, typeNames[t])
	}
	return 0, fmt.Errorf("unknown type %q (expected one of %s)", s, strings.Join(names, ", "))
}

// Decimal is an exact decimal value: Unscaled * 10^-Scale. Unscaled fits
// precision up to 18 digits; wider decimals are carried as strings by the
// sources that produce them and cast by cleaning.
type Decimal struct {
	Unscaled int64
	Scale    int32
}

// Column describes one column of a table.
type Column struct {
	Name      string
	Type      Type
	Nullable  bool
	Precision int // decimals only
	Scale     int // decimals only
}

// TableID names a source table. Namespace is the database or schema.
type TableID struct {
	Namespace string
	Name      string
}

func (t TableID) String() string {
	if t.Namespace == "" {
		return t.Name
	}
	return t.Namespace + "." + t.Name
}

// Schema is a table's shape at one point of its stream. A source hands out
// the same *Schema for every batch until the table's shape changes, so
// consumers may cache per pointer; Version increases with every change.
type Schema struct {
	Table   TableID
	Columns []Column
	Key     []int // indexes into Columns of the primary key, in key order
	Version int
	// Renamed names the columns renamed since the previous Version, new
	// name -> old name; nil when none were. Without it a rename looks
	// like a dropped and an added column: consumers that keep data by
	// column name (the lake) use it to carry the values over.
	Renamed map[string]string
}

// ColumnIndex returns the index of the named column or -1.
func (s *Schema) ColumnIndex(name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Record is one change of one row. Before and After are indexed like
// Schema.Columns; Before is nil for inserts and reads, After is nil for
// deletes. Values are nil (SQL NULL) or the Go type of the column's Type.
type Record struct {
	Op     Op
	Before []any
	After  []any
	// Position is the source's own, human-readable position of this change
	// (for example "binlog.000003:1234" or "seq=42"). It is written to
	// changelog tables and error messages; resuming uses Source.Snapshot.
	Position  string
	EventTime time.Time
	// Seq orders the changes of one row: of two changes to the same key,
	// the one with the larger Seq happened later at the source. Zero means
	// the source cannot tell (dedupe then falls back to a configured
	// version column, or to arrival order). Sources set it from a log
	// sequence: a MariaDB GTID sequence number, a Kafka offset within a
	// partition keyed by the row key, a datagen change number.
	Seq uint64
}

// Row returns the image that identifies the record's row: After, or Before
// for deletes.
func (r *Record) Row() []any {
	if r.After != nil {
		return r.After
	}
	return r.Before
}

// Batch is a slice of records of one table sharing one schema. It is the
// unit of transfer and of backpressure between stages.
type Batch struct {
	Schema  *Schema
	Records []Record
	// Bytes is the producer's estimate of the batch's in-memory size, used
	// for byte-threshold checkpoints. Zero means unknown.
	Bytes int
	// Layer says which of the table's lake tables the batch is for; the
	// Runner sets it. Sources and operators leave it alone.
	Layer Layer
}

// Layer is the part of the lake a batch is written to.
type Layer uint8

const (
	// LayerAll: every table the source table routes to. Used when no
	// operator sits between source and sink.
	LayerAll Layer = iota
	// LayerRaw: the changelog (ODS) tables only; the batch is exactly as
	// the source read it.
	LayerRaw
	// LayerClean: the current-state (DWD) tables only; the batch is the
	// operator chain's output.
	LayerClean
)

// String renders the decimal exactly, e.g. "-12.30" for {-1230, 2}.
func (d Decimal) String() string {
	neg := d.Unscaled < 0
	digits := strconv.FormatInt(d.Unscaled, 10)
	if neg {
		digits = digits[1:]
	}
	if d.Scale < 0 {
		digits += strings.Repeat("0", int(-d.Scale))
	}
	if d.Scale > 0 {
		sc := int(d.Scale)
		if len(digits) <= sc {
			digits = strings.Repeat("0", sc-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-sc] + "." + digits[len(digits)-sc:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// Images counts the row images (before and after) the batch's records
// hold, for operators that allocate every output image at once.
func (b *Batch) Images() int {
	n := 0
	for i := range b.Records {
		if b.Records[i].Before != nil {
			n++
		}
		if b.Records[i].After != nil {
			n++
		}
	}
	return n
}
