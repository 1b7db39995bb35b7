package datagen

import (
	"fmt"
	"math"
	"slices"

	"github.com/sluice-cdc/sluice/pipeline"
)

// kind selects how a column's value is derived from its hash.
type kind uint8

const (
	kBool kind = iota
	kInt32
	kInt64
	kFloat32
	kFloat64
	kDecimal
	kString // built in the row's string arena
	kEnum   // one of a few pre-boxed strings: no allocation
	kBinary
	kDate
	kTime
	kTimestamp
	kEventTime // the record's EventTime, like an updated_at column
)

// colGen is one column's generator. Integer-like kinds draw lo + [0, span)
// from the hash; span 0 means the full 64-bit range.
type colGen struct {
	kind     kind
	key      bool
	keyMod   uint64 // non-last key columns carry key % keyMod
	nullable bool
	pad      int // string length to pad to
	lo       int64
	span     uint64
	flo, fw  float64
	scale    int32
	prefix   string
	enum     []any
}

// table is the static description of one configured table.
type table struct {
	schema     *pipeline.Schema
	cols       []colGen
	keys       uint64
	delThr     uint64 // a present key is deleted when the op hash < delThr
	allDelete  bool
	fixedBytes int // estimate of an image's size without string contents
	padLen     int
	strCols    []int // arena string columns, in column order
}

const (
	daysTo2000   = 10957 // 2000-01-01
	microsTo2000 = daysTo2000 * 86400 * 1_000_000
	fiftyYears   = 18262 // days
	microsPerDay = 86400 * 1_000_000
)

// preset is a named schema whose columns get realistic value ranges.
type preset struct {
	cols []ColumnConfig
	gens map[string]func(*colGen)
}

var presets = map[string]preset{
	"orders": {
		cols: []ColumnConfig{
			{Name: "id", Type: "long"},
			{Name: "customer_id", Type: "long"},
			{Name: "status", Type: "string"},
			{Name: "quantity", Type: "int"},
			{Name: "amount", Type: "decimal", Precision: 12, Scale: 2},
			{Name: "discount", Type: "double", Nullable: true},
			{Name: "paid", Type: "bool"},
			{Name: "order_date", Type: "date"},
			{Name: "note", Type: "string", Nullable: true},
			{Name: "updated_at", Type: "timestamptz"},
		},
		gens: map[string]func(*colGen){
			"customer_id": func(g *colGen) { g.lo, g.span = 1, 100_000 },
			"status": func(g *colGen) {
				g.kind = kEnum
				for _, s := range []string{"pending", "paid", "shipped", "delivered", "cancelled", "refunded"} {
					g.enum = append(g.enum, s)
				}
			},
			"quantity":   func(g *colGen) { g.lo, g.span = 1, 20 },
			"amount":     func(g *colGen) { g.lo, g.span = 100, 1_000_000 }, // 1.00 .. 10000.00
			"discount":   func(g *colGen) { g.flo, g.fw = 0, 0.5 },
			"order_date": func(g *colGen) { g.lo, g.span = daysTo2000+8766, 730 }, // 2024-01-01 + 2 years
			"updated_at": func(g *colGen) { g.kind = kEventTime },
		},
	},
	"bench10": {
		cols: []ColumnConfig{
			{Name: "id", Type: "long"},
			{Name: "i1", Type: "int"},
			{Name: "i2", Type: "int"},
			{Name: "l1", Type: "long"},
			{Name: "d1", Type: "double"},
			{Name: "d2", Type: "double"},
			{Name: "s1", Type: "string"},
			{Name: "s2", Type: "string"},
			{Name: "s3", Type: "string"},
			{Name: "ts", Type: "timestamp"},
		},
	},
}

// buildTable validates one table's config (already defaulted) and builds
// its schema and generators. p is the YAML path used in errors.
func buildTable(tc *TableConfig, p string) (*table, error) {
	id, ok := parseTableName(tc.Name)
	if !ok {
		return nil, fmt.Errorf("%s.name must be \"namespace.table\", got %q", p, tc.Name)
	}
	var (
		ccs  = tc.Columns
		gens map[string]func(*colGen)
	)
	switch {
	case tc.Preset != "" && len(tc.Columns) > 0:
		return nil, fmt.Errorf("%s: preset and columns are mutually exclusive", p)
	case tc.Preset != "":
		pr, ok := presets[tc.Preset]
		if !ok {
			return nil, fmt.Errorf("%s.preset must be \"orders\" or \"bench10\", got %q", p, tc.Preset)
		}
		ccs, gens = pr.cols, pr.gens
	case len(tc.Columns) == 0:
		return nil, fmt.Errorf("%s needs a preset or columns", p)
	}
	switch {
	case tc.Keys <= 0:
		return nil, fmt.Errorf("%s.keys must be positive, got %d", p, tc.Keys)
	case tc.Keys > maxKeys:
		return nil, fmt.Errorf("%s.keys must be at most %d, got %d", p, int64(maxKeys), tc.Keys)
	case math.IsNaN(tc.Weight) || math.IsInf(tc.Weight, 0) || tc.Weight <= 0:
		return nil, fmt.Errorf("%s.weight must be a positive number, got %v", p, tc.Weight)
	case tc.RowSize < 0 || tc.RowSize > maxRowSize:
		return nil, fmt.Errorf("%s.row_size must be between 0 and %d, got %d", p, maxRowSize, tc.RowSize)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"insert", tc.Mix.Insert}, {"update", tc.Mix.Update}, {"delete", tc.Mix.Delete}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return nil, fmt.Errorf("%s.mix.%s must be a non-negative number, got %v", p, f.name, f.v)
		}
	}
	sum := tc.Mix.Insert + tc.Mix.Update + tc.Mix.Delete
	if sum == 0 {
		return nil, fmt.Errorf("%s.mix must give update or delete a positive weight", p)
	}

	t := &table{
		schema: &pipeline.Schema{Table: id, Version: 1},
		keys:   uint64(tc.Keys),
	}
	switch pd := tc.Mix.Delete / sum; {
	case pd >= 1:
		t.allDelete = true
	default:
		t.delThr = uint64(pd * (1 << 64))
	}

	for i, cc := range ccs {
		cp := fmt.Sprintf("%s.columns[%d]", p, i)
		if cc.Name == "" {
			return nil, fmt.Errorf("%s.name must not be empty", cp)
		}
		if t.schema.ColumnIndex(cc.Name) >= 0 {
			return nil, fmt.Errorf("%s.name %q is used twice", cp, cc.Name)
		}
		col, err := parseColumnType(cc)
		if err != nil {
			return nil, fmt.Errorf("%s.type: %w", cp, err)
		}
		t.schema.Columns = append(t.schema.Columns, col)
		g := defaultGen(col)
		if f := gens[cc.Name]; f != nil {
			f(&g)
		}
		t.cols = append(t.cols, g)
	}

	for i, name := range tc.Key {
		kp := fmt.Sprintf("%s.key[%d]", p, i)
		ci := t.schema.ColumnIndex(name)
		switch {
		case ci < 0:
			return nil, fmt.Errorf("%s: no column named %q", kp, name)
		case slices.Contains(t.schema.Key, ci):
			return nil, fmt.Errorf("%s: column %q is listed twice", kp, name)
		case t.schema.Columns[ci].Nullable:
			return nil, fmt.Errorf("%s: key column %q must not be nullable", kp, name)
		}
		g := &t.cols[ci]
		last := i == len(tc.Key)-1
		g.key = true
		if !last {
			g.keyMod = 100
		}
		span := tc.Keys
		if !last {
			span = min(span, 100)
		}
		col := t.schema.Columns[ci]
		switch col.Type {
		case pipeline.TypeInt32:
			g.kind = kInt32
			if span > math.MaxInt32+1 {
				return nil, fmt.Errorf("%s: int key column %q cannot hold %d keys; use long", kp, name, tc.Keys)
			}
		case pipeline.TypeInt64:
			g.kind = kInt64
		case pipeline.TypeDecimal:
			g.kind = kDecimal
			if float64(span) > math.Pow10(col.Precision) {
				return nil, fmt.Errorf("%s: decimal(%d,%d) key column %q cannot hold %d keys", kp, col.Precision, col.Scale, name, tc.Keys)
			}
		case pipeline.TypeString:
			g.kind = kString
		case pipeline.TypeBinary:
			g.kind = kBinary
		default:
			return nil, fmt.Errorf("%s: key column %q has type %s; datagen keys must be int, long, decimal, string or binary", kp, name, col.Type)
		}
		g.enum, g.pad = nil, 0
		t.schema.Key = append(t.schema.Key, ci)
	}
	if len(t.schema.Key) == 0 {
		return nil, fmt.Errorf("%s.key must name at least one column", p)
	}

	if tc.RowSize > 0 {
		pc := -1
		for i := range t.cols {
			if t.cols[i].kind == kString && !t.cols[i].key {
				pc = i
			}
		}
		if pc < 0 {
			return nil, fmt.Errorf("%s.row_size needs a non-key string column to pad", p)
		}
		t.cols[pc].pad = tc.RowSize
		t.padLen = tc.RowSize
	}

	for i, g := range t.cols {
		t.fixedBytes += 16 // the interface value
		switch g.kind {
		case kString:
			t.strCols = append(t.strCols, i)
			t.fixedBytes += 16
		case kEnum:
		case kBinary:
			t.fixedBytes += 24 + 16
		case kDecimal:
			t.fixedBytes += 16
		case kDate, kTimestamp, kEventTime:
			t.fixedBytes += 24
		default:
			t.fixedBytes += 8
		}
	}
	return t, nil
}

// defaultGen gives a column of an explicit schema values over its type's
// whole useful range, so that sinks see negative numbers, extreme dates and
// the like.
func defaultGen(col pipeline.Column) colGen {
	g := colGen{nullable: col.Nullable}
	switch col.Type {
	case pipeline.TypeBool:
		g.kind = kBool
	case pipeline.TypeInt32:
		g.kind, g.lo, g.span = kInt32, math.MinInt32, 1<<32
	case pipeline.TypeInt64:
		g.kind = kInt64
	case pipeline.TypeFloat32:
		g.kind, g.flo, g.fw = kFloat32, -1e6, 2e6
	case pipeline.TypeFloat64:
		g.kind, g.flo, g.fw = kFloat64, -1e9, 2e9
	case pipeline.TypeDecimal:
		m := int64(math.Pow10(col.Precision)) // exact up to 10^18
		g.kind, g.lo, g.span, g.scale = kDecimal, -(m - 1), uint64(2*m-1), int32(col.Scale)
	case pipeline.TypeString:
		g.kind, g.prefix = kString, col.Name+"-"
	case pipeline.TypeBinary:
		g.kind = kBinary
	case pipeline.TypeDate:
		g.kind, g.lo, g.span = kDate, daysTo2000, fiftyYears
	case pipeline.TypeTime:
		g.kind, g.span = kTime, microsPerDay
	case pipeline.TypeTimestamp, pipeline.TypeTimestampTZ:
		g.kind, g.lo, g.span = kTimestamp, microsTo2000, fiftyYears*microsPerDay
	}
	return g
}
