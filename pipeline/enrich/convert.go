package enrich

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-cdc/sluice/pipeline"
)

// convert turns a value scanned into an `any` by go-sql-driver/mysql
// (binary protocol, parseTime) or lib/pq into the Go type of c.Type.
// Drivers hand out int64, uint64, float32/64, bool, time.Time and []byte
// (copied by database/sql), and text for what they do not decode, so each
// case accepts the text form as well.
func convert(c pipeline.Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case pipeline.TypeBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		return strconv.ParseBool(s)
	case pipeline.TypeInt32:
		n, err := toInt64(v)
		if err != nil {
			return nil, err
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("%d does not fit an int", n)
		}
		return int32(n), nil
	case pipeline.TypeInt64:
		return toInt64(v)
	case pipeline.TypeFloat32:
		f, err := toFloat(v, 32)
		return float32(f), err
	case pipeline.TypeFloat64:
		return toFloat(v, 64)
	case pipeline.TypeDecimal:
		switch x := v.(type) {
		case int64:
			return scaleInt(x, c.Scale)
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		return parseDecimal(s, c.Scale)
	case pipeline.TypeString:
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10), nil
		case uint64:
			return strconv.FormatUint(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		case time.Time:
			return x.Format(time.RFC3339Nano), nil
		}
		return text(v)
	case pipeline.TypeBinary:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
		return nil, fmt.Errorf("cannot read %T as binary", v)
	case pipeline.TypeDate:
		if t, ok := v.(time.Time); ok {
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		return time.Parse(time.DateOnly, s)
	case pipeline.TypeTimestamp:
		// A wall clock: keep the fields, whatever zone the driver attached.
		if t, ok := v.(time.Time); ok {
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		return time.Parse("2006-01-02 15:04:05.999999999", s)
	case pipeline.TypeTimestampTZ:
		if t, ok := v.(time.Time); ok {
			return t.UTC(), nil
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err
	case pipeline.TypeTime:
		if t, ok := v.(time.Time); ok {
			return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
				time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()), nil
		}
		s, err := text(v)
		if err != nil {
			return nil, err
		}
		return parseClock(s)
	}
	return nil, fmt.Errorf("unsupported type %s", c.Type)
}

func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("cannot read %T as text", v)
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d does not fit a long", x)
		}
		return int64(x), nil
	case []byte:
		// Lookups are prepared statements, whose results come in the
		// binary protocol: integers arrive as int64, and only MySQL's
		// BIT(n) as bytes, big-endian.
		if len(x) <= 8 {
			var buf [8]byte
			copy(buf[8-len(x):], x)
			return int64(binary.BigEndian.Uint64(buf[:])), nil
		}
		return 0, fmt.Errorf("cannot read %q as a long", x)
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("cannot read %T as an integer", v)
}

func toFloat(v any, bits int) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	}
	s, err := text(v)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, bits)
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

func scaleInt(n int64, scale int) (pipeline.Decimal, error) {
	if scale < 0 || scale >= len(pow10) {
		return pipeline.Decimal{}, fmt.Errorf("decimal scale %d out of range", scale)
	}
	u := n * pow10[scale]
	if n != 0 && u/pow10[scale] != n {
		return pipeline.Decimal{}, fmt.Errorf("%d with scale %d overflows 18 digits", n, scale)
	}
	return pipeline.Decimal{Unscaled: u, Scale: int32(scale)}, nil
}

// parseDecimal reads "-12.3" as the decimal of the given scale
// ({-1230, 2} for scale 2). More fractional digits than the scale, or more
// than 18 digits in all, are errors rather than silent rounding.
func parseDecimal(s string, scale int) (pipeline.Decimal, error) {
	bad := func() (pipeline.Decimal, error) {
		return pipeline.Decimal{}, fmt.Errorf("cannot read %q as a decimal of scale %d", s, scale)
	}
	if scale < 0 || scale > 18 {
		return bad()
	}
	str := strings.TrimSpace(s)
	neg := false
	if str != "" && (str[0] == '-' || str[0] == '+') {
		neg = str[0] == '-'
		str = str[1:]
	}
	intPart, frac, _ := strings.Cut(str, ".")
	if intPart == "" && frac == "" {
		return bad()
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return bad()
	}
	digits := intPart + frac + strings.Repeat("0", scale-len(frac))
	digits = strings.TrimLeft(digits, "0")
	if len(digits) > 18 {
		return bad()
	}
	var u int64
	for _, r := range digits {
		if r < '0' || r > '9' {
			return bad()
		}
		u = u*10 + int64(r-'0')
	}
	if neg {
		u = -u
	}
	return pipeline.Decimal{Unscaled: u, Scale: int32(scale)}, nil
}

// decimalToInt is the integer a decimal equals, if it is one.
func decimalToInt(d pipeline.Decimal) (int64, bool) {
	switch {
	case d.Scale == 0:
		return d.Unscaled, true
	case d.Scale > 0 && int(d.Scale) < len(pow10):
		p := pow10[d.Scale]
		if d.Unscaled%p != 0 {
			return 0, false
		}
		return d.Unscaled / p, true
	}
	return 0, false
}

// parseClock reads a MySQL TIME ("-838:59:59.000000" .. "838:59:59") or a
// PostgreSQL time ("23:59:59.123456") as a duration.
func parseClock(s string) (time.Duration, error) {
	str := s
	neg := strings.HasPrefix(str, "-")
	str = strings.TrimPrefix(str, "-")
	hms, frac, _ := strings.Cut(str, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("cannot read %q as a time", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.ParseUint(parts[i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("cannot read %q as a time", s)
		}
		d += time.Duration(n) * unit
	}
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot read %q as a time", s)
		}
		d += time.Duration(n)
	}
	if neg {
		d = -d
	}
	return d, nil
}
