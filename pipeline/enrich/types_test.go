package enrich

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// typeCase is one dimension column: its pipeline type and the value row 1
// holds (row 2 holds NULL everywhere).
type typeCase struct {
	col  string
	typ  pipeline.Type
	want any
}

// checkTypes enriches key 1 and 2 with every column of table prod and
// compares types and values.
func checkTypes(t *testing.T, be *backend, cases []typeCase) {
	t.Helper()
	add := map[string]string{}
	var cols []string
	for _, c := range cases {
		add["x_"+c.col] = c.col
		cols = append(cols, c.col)
	}
	op := open(t, map[string]Dimension{"prod": be.dim("prod", "id", cols...)},
		[]Rule{{Match: "shop.orders", Dim: "prod", On: "channel_id", Add: add}})
	out := process(t, op, batchOf(ordersSchema(), ins(1, int32(1)), ins(2, int32(2))))
	s := out[0].Schema
	for _, c := range cases {
		i := s.ColumnIndex("x_" + c.col)
		if i < 0 {
			t.Errorf("%s: not added", c.col)
			continue
		}
		if s.Columns[i].Type != c.typ || !s.Columns[i].Nullable {
			t.Errorf("%s: type %s nullable %v, want nullable %s", c.col, s.Columns[i].Type, s.Columns[i].Nullable, c.typ)
		}
		got := out[0].Records[0].After[i]
		if tm, ok := got.(time.Time); ok {
			if want, _ := c.want.(time.Time); !tm.Equal(want) || tm.Location() != time.UTC {
				t.Errorf("%s: %v, want %v in UTC", c.col, tm, want)
			}
		} else if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %#v, want %#v", c.col, got, c.want)
		}
		if v := out[0].Records[1].After[i]; v != nil {
			t.Errorf("%s: NULL came back as %#v", c.col, v)
		}
	}
}

func TestTypesMariaDB(t *testing.T) {
	be := mariaBackend(t)
	be.exec(t, `CREATE TABLE prod (id INT PRIMARY KEY,
		t TINYINT, i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED,
		d DECIMAL(10,2), dw DECIMAL(30,5), f FLOAT, db DOUBLE,
		s VARCHAR(20), tx TEXT, e ENUM('a','b'), j JSON,
		bin VARBINARY(8), bl BLOB, dt DATE, dtt DATETIME(3), ts TIMESTAMP(6) NULL, tm TIME,
		y YEAR, bt BIT(8))`)
	// FROM_UNIXTIME and the TIMESTAMP column convert with the same session
	// time zone, so the stored instant does not depend on it.
	be.exec(t, `INSERT INTO prod VALUES (1, -5, 123, 4000000000, 9000000000000, 18446744073709551615,
		-12.30, 12345678901234567890.12345, 1.5, 2.25, 'hé', 'text', 'b', '{"a":1}',
		x'0102', x'ff', '2024-02-29', '2024-02-29 13:14:15.123', FROM_UNIXTIME(1709212455.654321), '-01:02:03',
		2024, b'00110001')`)
	be.exec(t, `INSERT INTO prod (id) VALUES (2)`)
	checkTypes(t, be, []typeCase{
		{"t", pipeline.TypeInt32, int32(-5)},
		{"i", pipeline.TypeInt32, int32(123)},
		{"iu", pipeline.TypeInt64, int64(4000000000)},
		{"b", pipeline.TypeInt64, int64(9000000000000)},
		{"bu", pipeline.TypeString, "18446744073709551615"},
		{"d", pipeline.TypeDecimal, pipeline.Decimal{Unscaled: -1230, Scale: 2}},
		{"dw", pipeline.TypeString, "12345678901234567890.12345"},
		{"f", pipeline.TypeFloat32, float32(1.5)},
		{"db", pipeline.TypeFloat64, 2.25},
		{"s", pipeline.TypeString, "hé"},
		{"tx", pipeline.TypeString, "text"},
		{"e", pipeline.TypeString, "b"},
		{"j", pipeline.TypeString, `{"a":1}`},
		{"bin", pipeline.TypeBinary, []byte{1, 2}},
		{"bl", pipeline.TypeBinary, []byte{0xff}},
		{"dt", pipeline.TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"dtt", pipeline.TypeTimestamp, time.Date(2024, 2, 29, 13, 14, 15, 123e6, time.UTC)},
		{"ts", pipeline.TypeTimestampTZ, time.Unix(1709212455, 654321e3).UTC()},
		{"tm", pipeline.TypeTime, -(time.Hour + 2*time.Minute + 3*time.Second)},
		{"y", pipeline.TypeInt32, int32(2024)},
		{"bt", pipeline.TypeInt64, int64(0x31)},
	})
}

func TestTypesPostgreSQL(t *testing.T) {
	be := pgBackend(t)
	be.exec(t, `CREATE TABLE prod (id INT PRIMARY KEY,
		sm SMALLINT, i INT, b BIGINT, d NUMERIC(10,2), dn NUMERIC, f REAL, db DOUBLE PRECISION, bo BOOLEAN,
		s VARCHAR(20), tx TEXT, c CHAR(3), u UUID, j JSONB, by BYTEA,
		dt DATE, ts TIMESTAMP(3), tz TIMESTAMPTZ, tm TIME, iv INTERVAL)`)
	be.exec(t, `INSERT INTO prod VALUES (1, -5, 123, 9000000000000, -12.30, 3.14159265358979323846, 1.5, 2.25, true,
		'hé', 'text', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '\x0102',
		'2024-02-29', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.654321+02', '13:14:15.5', '1 day')`)
	be.exec(t, `INSERT INTO prod (id) VALUES (2)`)
	checkTypes(t, be, []typeCase{
		{"sm", pipeline.TypeInt32, int32(-5)},
		{"i", pipeline.TypeInt32, int32(123)},
		{"b", pipeline.TypeInt64, int64(9000000000000)},
		{"d", pipeline.TypeDecimal, pipeline.Decimal{Unscaled: -1230, Scale: 2}},
		{"dn", pipeline.TypeString, "3.14159265358979323846"},
		{"f", pipeline.TypeFloat32, float32(1.5)},
		{"db", pipeline.TypeFloat64, 2.25},
		{"bo", pipeline.TypeBool, true},
		{"s", pipeline.TypeString, "hé"},
		{"tx", pipeline.TypeString, "text"},
		{"c", pipeline.TypeString, "ab "},
		{"u", pipeline.TypeString, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"j", pipeline.TypeString, `{"a": 1}`},
		{"by", pipeline.TypeBinary, []byte{1, 2}},
		{"dt", pipeline.TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"ts", pipeline.TypeTimestamp, time.Date(2024, 2, 29, 13, 14, 15, 123e6, time.UTC)},
		{"tz", pipeline.TypeTimestampTZ, time.Date(2024, 2, 29, 11, 14, 15, 654321e3, time.UTC)},
		{"tm", pipeline.TypeTime, 13*time.Hour + 14*time.Minute + 15*time.Second + 500*time.Millisecond},
		{"iv", pipeline.TypeString, "1 day"},
	})
}

func TestParseDecimal(t *testing.T) {
	cases := []struct {
		in    string
		scale int
		want  pipeline.Decimal
		ok    bool
	}{
		{"-12.30", 2, pipeline.Decimal{Unscaled: -1230, Scale: 2}, true},
		{"12.3", 2, pipeline.Decimal{Unscaled: 1230, Scale: 2}, true},
		{"7", 3, pipeline.Decimal{Unscaled: 7000, Scale: 3}, true},
		{"0.000", 0, pipeline.Decimal{Unscaled: 0, Scale: 0}, true},
		{"999999999999999999", 0, pipeline.Decimal{Unscaled: 999999999999999999, Scale: 0}, true},
		{"1.234", 2, pipeline.Decimal{}, false},
		{"NaN", 2, pipeline.Decimal{}, false},
		{"1e5", 0, pipeline.Decimal{}, false},
		{"9999999999999999999", 0, pipeline.Decimal{}, false},
	}
	for _, c := range cases {
		got, err := parseDecimal(c.in, c.scale)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("parseDecimal(%q, %d) = %v, %v", c.in, c.scale, got, err)
		}
	}
	if d, err := parseClock("838:59:59.5"); err != nil || d != 838*time.Hour+59*time.Minute+59*time.Second+500*time.Millisecond {
		t.Errorf("parseClock: %v, %v", d, err)
	}
}
