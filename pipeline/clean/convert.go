package clean

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-cdc/sluice/pipeline"
)

// maxPrecision is the widest decimal a pipeline.Decimal (an int64) holds
// for every value of the precision.
const maxPrecision = 18

var pow10 = [...]int64{
	1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000,
	1_000_000_000, 10_000_000_000, 100_000_000_000, 1_000_000_000_000,
	10_000_000_000_000, 100_000_000_000_000, 1_000_000_000_000_000,
	10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000,
}

var (
	errOverflow   = errors.New("out of range")
	errFraction   = errors.New("not a whole number (round it first, e.g. round(x) or to_int(x))")
	errNotANumber = errors.New("not a number")
)

// roundMode says what happens to digits that do not fit a target scale.
type roundMode uint8

const (
	roundHalfAway roundMode = iota // 2.345 -> 2.35, -2.345 -> -2.35
	roundTrunc                     // toward zero, as Go's int(f)
	roundExact                     // a dropped non-zero digit is an error
)

func isInteger(t pipeline.Type) bool {
	return t == pipeline.TypeInt32 || t == pipeline.TypeInt64
}

func isNumeric(t pipeline.Type) bool {
	switch t {
	case pipeline.TypeInt32, pipeline.TypeInt64, pipeline.TypeFloat32, pipeline.TypeFloat64, pipeline.TypeDecimal:
		return true
	}
	return false
}

func isTimeLike(t pipeline.Type) bool {
	return t == pipeline.TypeDate || t == pipeline.TypeTimestamp || t == pipeline.TypeTimestampTZ
}

// castable reports the casts that can succeed for some value. Anything
// converts from and to a string; numbers convert among themselves; the
// rest only to near relatives. Integers are not read as epoch times: the
// unit would be a guess.
func castable(from, to pipeline.Type) bool {
	switch {
	case from == to, from == pipeline.TypeString, to == pipeline.TypeString:
		return true
	case isNumeric(from) && isNumeric(to):
		return true
	case from == pipeline.TypeBool && isInteger(to), isInteger(from) && to == pipeline.TypeBool:
		return true
	case isTimeLike(from) && isTimeLike(to):
		return true
	case (from == pipeline.TypeTimestamp || from == pipeline.TypeTimestampTZ) && to == pipeline.TypeTime:
		return true
	}
	return false
}

// convert returns v as a value of column to's type: the Go type that
// pipeline uses for it, with a decimal at the column's scale. A number
// with more digits than a decimal keeps is rounded half away from zero.
// A fraction bound for an integer is truncated when trunc is set (casts,
// as SQL engines and Go do) and is an error otherwise (expression
// results: silently losing it would hide a mistake in the expression).
// from is the logical type v came from, when known, to format times as
// a string.
func convert(v any, to *pipeline.Column, from pipeline.Type, trunc bool) (any, error) {
	if v == nil {
		return nil, nil
	}
	mode := roundExact
	if trunc {
		mode = roundTrunc
	}
	switch to.Type {
	case pipeline.TypeBool:
		return toBool(v)
	case pipeline.TypeInt32:
		i, err := toInt64(v, mode)
		if err != nil {
			return nil, err
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			return nil, fmt.Errorf("%w for int", errOverflow)
		}
		return int32(i), nil
	case pipeline.TypeInt64:
		i, err := toInt64(v, mode)
		if err != nil {
			return nil, err
		}
		return i, nil
	case pipeline.TypeFloat32:
		f, err := toFloat64(v)
		if err != nil {
			return nil, err
		}
		if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w for float", errOverflow)
		}
		return float32(f), nil
	case pipeline.TypeFloat64:
		f, err := toFloat64(v)
		if err != nil {
			return nil, err
		}
		return f, nil
	case pipeline.TypeDecimal:
		d, err := toDecimal(v, to.Scale, roundHalfAway)
		if err != nil {
			return nil, err
		}
		p := to.Precision
		if p <= 0 || p > maxPrecision {
			p = maxPrecision
		}
		if abs64(d.Unscaled) >= pow10[p] {
			return nil, fmt.Errorf("%w for decimal(%d,%d)", errOverflow, to.Precision, to.Scale)
		}
		return d, nil
	case pipeline.TypeString:
		return toString(v, from)
	case pipeline.TypeBinary:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case pipeline.TypeDate:
		t, err := toTime(v)
		if err != nil {
			return nil, err
		}
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
	case pipeline.TypeTimestamp, pipeline.TypeTimestampTZ:
		t, err := toTime(v)
		if err != nil {
			return nil, err
		}
		return t.UTC(), nil
	case pipeline.TypeTime:
		switch x := v.(type) {
		case time.Duration:
			if x < 0 || x >= 24*time.Hour {
				return nil, fmt.Errorf("%w for time (00:00:00 to 23:59:59.999999999)", errOverflow)
			}
			return x, nil
		case time.Time:
			h, m, s := x.Clock()
			return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(x.Nanosecond()), nil
		case string:
			return parseClock(x)
		}
	}
	return nil, fmt.Errorf("cannot convert %s to %s", goTypeName(v), typeString(to))
}

func abs64(i int64) int64 {
	if i < 0 {
		return -i
	}
	return i
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "1", "yes", "y", "on":
			return true, nil
		case "false", "f", "0", "no", "n", "off":
			return false, nil
		}
		return nil, errors.New("not a boolean (expected true/false, t/f, 1/0, yes/no, y/n or on/off)")
	}
	if isIntValue(v) {
		i, err := toInt64(v, roundExact)
		if err != nil {
			return nil, err
		}
		return i != 0, nil
	}
	return nil, fmt.Errorf("cannot convert %s to bool", goTypeName(v))
}

func isIntValue(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

func toInt64(v any, mode roundMode) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, errOverflow
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, errOverflow
		}
		return int64(x), nil
	case float64:
		return floatToInt(x, mode)
	case float32:
		return floatToInt(float64(x), mode)
	case pipeline.Decimal:
		return decimalToInt(x, mode)
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		s := strings.TrimSpace(x)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		// "12.0" or "1e3" are integers written as decimals.
		u, err := parseDecimal(s, 0, mode)
		if err != nil {
			return 0, err
		}
		return u, nil
	}
	return 0, fmt.Errorf("cannot convert %s to an integer", goTypeName(v))
}

func floatToInt(f float64, mode roundMode) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errNotANumber
	}
	t := math.Trunc(f)
	if t != f {
		switch mode {
		case roundExact:
			return 0, errFraction
		case roundHalfAway:
			t = math.Round(f)
		}
	}
	if t < -9223372036854775808.0 || t >= 9223372036854775808.0 {
		return 0, errOverflow
	}
	return int64(t), nil
}

func decimalToInt(d pipeline.Decimal, mode roundMode) (int64, error) {
	if d.Scale <= 0 {
		return mulPow10(d.Unscaled, int(-d.Scale))
	}
	if mode == roundExact {
		if d.Scale <= maxPrecision && d.Unscaled%pow10[d.Scale] != 0 || d.Scale > maxPrecision && d.Unscaled != 0 {
			return 0, errFraction
		}
	}
	if mode == roundHalfAway {
		return divRound(d.Unscaled, int(d.Scale)), nil
	}
	if d.Scale > maxPrecision {
		return 0, nil
	}
	return d.Unscaled / pow10[d.Scale], nil
}

// mulPow10 is u * 10^n with overflow checks.
func mulPow10(u int64, n int) (int64, error) {
	if u == 0 || n == 0 {
		return u, nil
	}
	if n > maxPrecision || abs64(u) > math.MaxInt64/pow10[n] {
		return 0, errOverflow
	}
	return u * pow10[n], nil
}

// divRound is u / 10^n rounded half away from zero.
func divRound(u int64, n int) int64 {
	if n == 0 {
		return u
	}
	if n > maxPrecision {
		return 0 // |u| < 9.3e18 < 0.5e19
	}
	p := pow10[n]
	q, r := u/p, u%p
	if 2*abs64(r) >= p {
		if u < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

var pow10f = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decimalToFloat is exact to the nearest float64: both operands of the
// division are exact below 2^53 and 10^22, and IEEE division rounds once.
func decimalToFloat(d pipeline.Decimal) float64 {
	if d.Scale >= 0 && int(d.Scale) < len(pow10f) && abs64(d.Unscaled) < 1<<53 {
		return float64(d.Unscaled) / pow10f[d.Scale]
	}
	f, _ := strconv.ParseFloat(d.String(), 64)
	return f
}

func toFloat64(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case pipeline.Decimal:
		return decimalToFloat(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return 0, errOverflow
			}
			return 0, errNotANumber
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	if isIntValue(v) {
		i, err := toInt64(v, roundExact)
		return float64(i), err
	}
	return 0, fmt.Errorf("cannot convert %s to a number", goTypeName(v))
}

// toDecimal returns v at scale with the precision unchecked. Floats go
// through their shortest decimal form, so that 1.005 rounds to 1.01 as it
// reads, not to 1.00 as its binary value (1.00499999...) would.
func toDecimal(v any, scale int, mode roundMode) (pipeline.Decimal, error) {
	var u int64
	var err error
	switch x := v.(type) {
	case pipeline.Decimal:
		diff := scale - int(x.Scale)
		if diff >= 0 {
			u, err = mulPow10(x.Unscaled, diff)
		} else {
			if mode == roundExact && x.Unscaled%pow10[min(-diff, maxPrecision)] != 0 {
				return pipeline.Decimal{}, fmt.Errorf("has more than %d decimal places", scale)
			}
			u = divRound(x.Unscaled, -diff)
		}
	case float64:
		u, err = floatToDecimal(x, 64, scale, mode)
	case float32:
		u, err = floatToDecimal(float64(x), 32, scale, mode)
	case string:
		u, err = parseDecimal(strings.TrimSpace(x), scale, mode)
	default:
		if !isIntValue(v) {
			return pipeline.Decimal{}, fmt.Errorf("cannot convert %s to decimal", goTypeName(v))
		}
		var i int64
		if i, err = toInt64(v, roundExact); err == nil {
			u, err = mulPow10(i, scale)
		}
	}
	if err != nil {
		return pipeline.Decimal{}, err
	}
	return pipeline.Decimal{Unscaled: u, Scale: int32(scale)}, nil
}

// floatToDecimal rounds the shortest decimal that reads back as f (what
// f prints as, not its binary value) to scale places.
func floatToDecimal(f float64, bits, scale int, mode roundMode) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errNotANumber
	}
	if mode == roundHalfAway && bits == 64 && scale >= 0 && scale < len(pow10f) {
		if u, ok := roundFloatScaled(f * pow10f[scale]); ok {
			return u, nil
		}
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'g', -1, bits)
	return parseDecimal(string(s), scale, mode)
}

// roundFloatScaled is floatToDecimal's fast path, without formatting: x
// is f*10^scale, and the result is x rounded to the nearest integer. The
// shortest decimal of f lies within half an ulp of f, and the product's
// rounding adds half an ulp of x, so that decimal times 10^scale lies
// within about 2.5 ulp(x) of x: below 2^32 that is under 3e-6. Unless x is
// within 1e-4 of a half (where the two could round apart), both round to
// the same integer. ok is false otherwise, and the caller formats.
// TestRoundFloatScaled checks it against formatting.
func roundFloatScaled(x float64) (int64, bool) {
	a := math.Abs(x)
	if !(a < 1<<32) {
		return 0, false
	}
	if h := a - math.Floor(a) - 0.5; h > -1e-4 && h < 1e-4 {
		return 0, false
	}
	return int64(math.Round(x)), true
}

// parseDecimal reads [+-]digits[.digits][e[+-]digits] as an integer
// number of 10^-scale units, exactly: a float would lose digits of wide
// decimals.
func parseDecimal(s string, scale int, mode roundMode) (int64, error) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fs:i]
	}
	if intPart == "" && frac == "" {
		return 0, errNotANumber
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if exp < 10_000 {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == es {
			return 0, errNotANumber
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return 0, errNotANumber
	}
	// The value is digits * 10^(exp - len(frac)); we want it * 10^scale.
	shift := exp - len(frac) + scale
	digits := strings.TrimLeft(intPart+frac, "0")
	var u int64
	if shift >= 0 {
		if digits == "" {
			return 0, nil
		}
		if len(digits)+shift > maxPrecision+1 {
			return 0, errOverflow
		}
		v, err := parseDigits(digits)
		if err != nil {
			return 0, err
		}
		if u, err = mulPow10(v, shift); err != nil {
			return 0, err
		}
	} else {
		cut := -shift
		keep, dropped := "", digits
		if cut < len(digits) {
			keep, dropped = digits[:len(digits)-cut], digits[len(digits)-cut:]
		}
		var err error
		if u, err = parseDigits(keep); err != nil {
			return 0, err
		}
		if strings.Trim(dropped, "0") != "" {
			switch mode {
			case roundExact:
				if scale == 0 {
					return 0, errFraction
				}
				return 0, fmt.Errorf("has more than %d decimal places", scale)
			case roundHalfAway:
				// Only the first dropped digit decides, and only when
				// it is the digit right after the kept ones.
				if cut <= len(digits) && dropped[0] >= '5' {
					u++
				}
			}
		}
	}
	if neg {
		u = -u
	}
	return u, nil
}

func parseDigits(d string) (int64, error) {
	if len(d) > maxPrecision+1 {
		return 0, errOverflow
	}
	var u uint64
	for i := 0; i < len(d); i++ {
		u = u*10 + uint64(d[i]-'0')
	}
	if u > math.MaxInt64 {
		return 0, errOverflow
	}
	return int64(u), nil
}

// toString formats v the way a reader of the row expects: decimals
// exactly, floats without an exponent unless huge, times in ISO 8601.
func toString(v any, from pipeline.Type) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		if !utf8.Valid(x) {
			return nil, errors.New("binary value is not valid UTF-8")
		}
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return formatFloat(x, 64), nil
	case float32:
		return formatFloat(float64(x), 32), nil
	case pipeline.Decimal:
		return x.String(), nil
	case time.Time:
		switch from {
		case pipeline.TypeDate:
			return x.Format(time.DateOnly), nil
		case pipeline.TypeTimestamp:
			return x.Format("2006-01-02T15:04:05.999999999"), nil
		}
		return x.Format(time.RFC3339Nano), nil
	case time.Duration:
		if x >= 0 && x < 24*time.Hour {
			return formatClock(x), nil
		}
		return x.String(), nil
	}
	if isIntValue(v) {
		i, err := toInt64(v, roundExact)
		if err != nil {
			if u, ok := v.(uint64); ok {
				return strconv.FormatUint(u, 10), nil
			}
			return nil, err
		}
		return strconv.FormatInt(i, 10), nil
	}
	return nil, fmt.Errorf("cannot convert %s to string", goTypeName(v))
}

func formatFloat(f float64, bits int) string {
	if math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, bits)
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func formatClock(d time.Duration) string {
	h := d / time.Hour
	m := d % time.Hour / time.Minute
	s := d % time.Minute / time.Second
	ns := d % time.Second
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if ns != 0 {
		out += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
	}
	return out
}

// timeLayouts are tried in order. Go's parser accepts fractional seconds
// after the seconds field even when a layout does not show them.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	time.DateOnly,
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, errors.New("not a date or time (expected 2006-01-02, 2006-01-02 15:04:05[.fff] or RFC 3339)")
	}
	return time.Time{}, fmt.Errorf("cannot convert %s to a time", goTypeName(v))
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse(time.TimeOnly, strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("not a time of day (expected 15:04:05[.fff])")
	}
	h, m, sec := t.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(t.Nanosecond()), nil
}

// goTypeName names a value's type in errors the way a user sees it.
func goTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case string:
		return "string"
	case pipeline.Decimal:
		return "decimal"
	case []byte:
		return "binary"
	case time.Time:
		return "time"
	case time.Duration:
		return "duration"
	case []any:
		return "array"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// fmtValue renders a value for a dead-letter reason, short enough to read.
func fmtValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		if len(x) > 64 {
			x = x[:61] + "..."
		}
		return strconv.Quote(x)
	case []byte:
		if len(x) > 32 {
			return fmt.Sprintf("0x%x...", x[:29])
		}
		return fmt.Sprintf("0x%x", x)
	case pipeline.Decimal:
		s = x.String()
	case time.Time:
		s = x.Format(time.RFC3339Nano)
	case time.Duration:
		s = x.String()
	default:
		s = fmt.Sprintf("%v", x)
	}
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return s
}
