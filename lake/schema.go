package lake

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Metadata columns of append (changelog) tables.
const (
	colOp        = "_op"
	colPos       = "_pos"
	colEventTime = "_event_time"
)

func icebergType(c pipeline.Column) (iceberg.Type, error) {
	switch c.Type {
	case pipeline.TypeBool:
		return iceberg.PrimitiveTypes.Bool, nil
	case pipeline.TypeInt32:
		return iceberg.PrimitiveTypes.Int32, nil
	case pipeline.TypeInt64:
		return iceberg.PrimitiveTypes.Int64, nil
	case pipeline.TypeFloat32:
		return iceberg.PrimitiveTypes.Float32, nil
	case pipeline.TypeFloat64:
		return iceberg.PrimitiveTypes.Float64, nil
	case pipeline.TypeDecimal:
		p, s := c.Precision, c.Scale
		if p == 0 {
			p = 18
		}
		if p > 38 || s > p || s < 0 {
			return nil, fmt.Errorf("column %s: decimal(%d,%d) is not representable", c.Name, p, s)
		}
		return iceberg.DecimalTypeOf(p, s), nil
	case pipeline.TypeString:
		return iceberg.PrimitiveTypes.String, nil
	case pipeline.TypeBinary:
		return iceberg.PrimitiveTypes.Binary, nil
	case pipeline.TypeDate:
		return iceberg.PrimitiveTypes.Date, nil
	case pipeline.TypeTime:
		return iceberg.PrimitiveTypes.Time, nil
	case pipeline.TypeTimestamp:
		return iceberg.PrimitiveTypes.Timestamp, nil
	case pipeline.TypeTimestampTZ:
		return iceberg.PrimitiveTypes.TimestampTz, nil
	}
	return nil, fmt.Errorf("column %s: unsupported type %s", c.Name, c.Type)
}

// icebergSchema maps a source schema to the schema of a target table. Upsert
// tables declare the primary key as identifier fields (required columns);
// append tables make every data column optional, because a changelog row of
// a delete may carry only the key, and add the metadata columns.
func icebergSchema(ps *pipeline.Schema, mode Mode) (*iceberg.Schema, error) {
	isKey := make(map[int]bool, len(ps.Key))
	for _, k := range ps.Key {
		isKey[k] = true
	}
	if mode == ModeUpsert && len(ps.Key) == 0 {
		return nil, fmt.Errorf("table %s has no primary key: an upsert (dwd) table needs one; configure a key or write it as ods only", ps.Table)
	}
	fields := make([]iceberg.NestedField, 0, len(ps.Columns)+3)
	var ids []int
	for i, c := range ps.Columns {
		t, err := icebergType(c)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", ps.Table, err)
		}
		required := false
		if mode == ModeUpsert {
			required = isKey[i] || !c.Nullable
			if isKey[i] {
				ids = append(ids, i+1)
			}
		}
		fields = append(fields, iceberg.NestedField{ID: i + 1, Name: c.Name, Type: t, Required: required})
	}
	if mode == ModeAppend {
		n := len(ps.Columns)
		fields = append(fields,
			iceberg.NestedField{ID: n + 1, Name: colOp, Type: iceberg.PrimitiveTypes.String, Required: true},
			iceberg.NestedField{ID: n + 2, Name: colPos, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: n + 3, Name: colEventTime, Type: iceberg.PrimitiveTypes.TimestampTz},
		)
	}
	return iceberg.NewSchemaWithIdentifiers(0, ids, fields...), nil
}

var partitionRe = regexp.MustCompile(`^\s*(?:([a-z]+)\s*\(\s*(?:(\d+)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)|([A-Za-z_][A-Za-z0-9_]*))\s*$`)

type partitionField struct {
	source    string
	transform iceberg.Transform
	name      string
}

// parsePartitionField parses "col", "bucket(16, col)", "truncate(4, col)",
// "day(col)", "hour(col)", "month(col)", "year(col)" or "identity(col)".
func parsePartitionField(s string) (partitionField, error) {
	m := partitionRe.FindStringSubmatch(s)
	if m == nil {
		return partitionField{}, fmt.Errorf("%q: expected COLUMN or TRANSFORM(COLUMN) or bucket(N, COLUMN) / truncate(N, COLUMN)", s)
	}
	if m[4] != "" {
		return partitionField{source: m[4], transform: iceberg.IdentityTransform{}, name: m[4]}, nil
	}
	fn, nStr, col := m[1], m[2], m[3]
	n := 0
	if nStr != "" {
		n, _ = strconv.Atoi(nStr)
	}
	needN := fn == "bucket" || fn == "truncate"
	if needN != (nStr != "") || (needN && n <= 0) {
		if needN {
			return partitionField{}, fmt.Errorf("%q: %s needs a positive width: %s(N, %s)", s, fn, fn, col)
		}
		return partitionField{}, fmt.Errorf("%q: %s takes only a column: %s(%s)", s, fn, fn, col)
	}
	var tr iceberg.Transform
	switch fn {
	case "identity":
		tr = iceberg.IdentityTransform{}
	case "bucket":
		tr = iceberg.BucketTransform{NumBuckets: n}
	case "truncate":
		tr = iceberg.TruncateTransform{Width: n}
	case "year":
		tr = iceberg.YearTransform{}
	case "month":
		tr = iceberg.MonthTransform{}
	case "day":
		tr = iceberg.DayTransform{}
	case "hour":
		tr = iceberg.HourTransform{}
	default:
		return partitionField{}, fmt.Errorf("%q: unknown transform %s (expected identity, bucket, truncate, year, month, day or hour)", s, fn)
	}
	name := col
	if fn != "identity" {
		name = col + "_" + fn
	}
	return partitionField{source: col, transform: tr, name: name}, nil
}

// partitionSpec builds the spec for a new table. An upsert table may only be
// partitioned by key columns: its equality deletes carry the key alone, and
// a delete file must land in the partition of the rows it deletes.
func partitionSpec(exprs []string, sc *iceberg.Schema, ps *pipeline.Schema, mode Mode) (iceberg.PartitionSpec, error) {
	var opts []iceberg.PartitionOption
	for _, e := range exprs {
		pf, err := parsePartitionField(e)
		if err != nil {
			return iceberg.PartitionSpec{}, err
		}
		idx := ps.ColumnIndex(pf.source)
		if idx < 0 {
			return iceberg.PartitionSpec{}, fmt.Errorf("partition %q: table %s has no column %s", e, ps.Table, pf.source)
		}
		if mode == ModeUpsert && !isKeyIndex(ps, idx) {
			return iceberg.PartitionSpec{}, fmt.Errorf("partition %q: upsert table of %s can only be partitioned by primary-key columns (for example bucket(16, %s))", e, ps.Table, ps.Columns[ps.Key[0]].Name)
		}
		opts = append(opts, iceberg.AddPartitionFieldByName(pf.source, pf.name, pf.transform, sc, nil))
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return iceberg.PartitionSpec{}, fmt.Errorf("partition %v: %w", exprs, err)
	}
	return spec, nil
}

func isKeyIndex(ps *pipeline.Schema, idx int) bool {
	for _, k := range ps.Key {
		if k == idx {
			return true
		}
	}
	return false
}

// appender appends one pipeline value to an arrow builder.
type appender func(b array.Builder, v any) error

var errType = errors.New("value does not match the column type")

func typeErr(want string, v any) error {
	return fmt.Errorf("%w: want %s, got %T", errType, want, v)
}

// appenderFor returns the appender for a column's arrow type. Values arrive
// typed by the pipeline's conventions (see pipeline.Type); the few lossless
// widenings a source may hand over (int32 for a long column, float32 for a
// double) are accepted, anything else is an error, never a silent null.
func appenderFor(dt arrow.DataType) (appender, error) {
	switch dt.ID() {
	case arrow.BOOL:
		return func(b array.Builder, v any) error {
			x, ok := v.(bool)
			if !ok {
				return typeErr("bool", v)
			}
			b.(*array.BooleanBuilder).Append(x)
			return nil
		}, nil
	case arrow.INT32:
		return func(b array.Builder, v any) error {
			x, ok := v.(int32)
			if !ok {
				return typeErr("int32", v)
			}
			b.(*array.Int32Builder).Append(x)
			return nil
		}, nil
	case arrow.INT64:
		return func(b array.Builder, v any) error {
			switch x := v.(type) {
			case int64:
				b.(*array.Int64Builder).Append(x)
			case int32:
				b.(*array.Int64Builder).Append(int64(x))
			case int:
				b.(*array.Int64Builder).Append(int64(x))
			default:
				return typeErr("int64", v)
			}
			return nil
		}, nil
	case arrow.FLOAT32:
		return func(b array.Builder, v any) error {
			x, ok := v.(float32)
			if !ok {
				return typeErr("float32", v)
			}
			b.(*array.Float32Builder).Append(x)
			return nil
		}, nil
	case arrow.FLOAT64:
		return func(b array.Builder, v any) error {
			switch x := v.(type) {
			case float64:
				b.(*array.Float64Builder).Append(x)
			case float32:
				b.(*array.Float64Builder).Append(float64(x))
			default:
				return typeErr("float64", v)
			}
			return nil
		}, nil
	case arrow.DECIMAL128:
		scale := dt.(*arrow.Decimal128Type).Scale
		return func(b array.Builder, v any) error {
			x, ok := v.(pipeline.Decimal)
			if !ok {
				return typeErr("pipeline.Decimal", v)
			}
			n := decimal128.FromI64(x.Unscaled)
			if x.Scale != scale {
				var err error
				if n, err = rescale(n, x.Scale, scale); err != nil {
					return err
				}
			}
			b.(*array.Decimal128Builder).Append(n)
			return nil
		}, nil
	case arrow.STRING:
		return func(b array.Builder, v any) error {
			switch x := v.(type) {
			case string:
				b.(*array.StringBuilder).Append(x)
			case []byte:
				b.(*array.StringBuilder).BinaryBuilder.Append(x)
			default:
				return typeErr("string", v)
			}
			return nil
		}, nil
	case arrow.LARGE_STRING:
		return func(b array.Builder, v any) error {
			x, ok := v.(string)
			if !ok {
				return typeErr("string", v)
			}
			b.(*array.LargeStringBuilder).Append(x)
			return nil
		}, nil
	case arrow.BINARY:
		return func(b array.Builder, v any) error {
			switch x := v.(type) {
			case []byte:
				b.(*array.BinaryBuilder).Append(x)
			case string:
				b.(*array.BinaryBuilder).AppendString(x)
			default:
				return typeErr("[]byte", v)
			}
			return nil
		}, nil
	case arrow.DATE32:
		return func(b array.Builder, v any) error {
			x, ok := v.(time.Time)
			if !ok {
				return typeErr("time.Time (date)", v)
			}
			b.(*array.Date32Builder).Append(arrow.Date32FromTime(x))
			return nil
		}, nil
	case arrow.TIME64:
		return func(b array.Builder, v any) error {
			x, ok := v.(time.Duration)
			if !ok {
				return typeErr("time.Duration (time of day)", v)
			}
			b.(*array.Time64Builder).Append(arrow.Time64(x.Microseconds()))
			return nil
		}, nil
	case arrow.TIMESTAMP:
		return func(b array.Builder, v any) error {
			x, ok := v.(time.Time)
			if !ok {
				return typeErr("time.Time", v)
			}
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(x.UnixMicro()))
			return nil
		}, nil
	}
	return nil, fmt.Errorf("no appender for arrow type %s", dt)
}

func rescale(n decimal128.Num, from, to int32) (decimal128.Num, error) {
	out, err := n.Rescale(from, to)
	if err != nil {
		return n, fmt.Errorf("decimal scale %d to %d: %w", from, to, err)
	}
	return out, nil
}

// valueOf converts an arrow value back to the pipeline's Go representation;
// used by ScanTable and by tests that compare tables with their sources.
func valueOf(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Boolean:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Decimal128:
		dt := a.DataType().(*arrow.Decimal128Type)
		return pipeline.Decimal{Unscaled: int64(a.Value(i).LowBits()), Scale: dt.Scale}
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return append([]byte(nil), a.Value(i)...)
	case *array.LargeBinary:
		return append([]byte(nil), a.Value(i)...)
	case *array.Date32:
		return a.Value(i).ToTime().UTC()
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		return time.Duration(a.Value(i)) * unit.Multiplier()
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC()
	}
	return arr.ValueStr(i)
}

// FormatValue renders a value for people (sluice scan).
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case pipeline.Decimal:
		return x.String()
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []byte:
		return fmt.Sprintf("0x%x", x)
	}
	return fmt.Sprint(v)
}
