package clean

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/sluice-cdc/sluice/pipeline"
)

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in    string
		scale int
		mode  roundMode
		want  int64
		err   string
	}{
		{"12.345", 2, roundHalfAway, 1235, ""},
		{"-12.345", 2, roundHalfAway, -1235, ""},
		{"12.344", 2, roundHalfAway, 1234, ""},
		{"0.005", 2, roundHalfAway, 1, ""},
		{"0.0049", 2, roundHalfAway, 0, ""},
		{"0.0005", 2, roundHalfAway, 0, ""},
		{".5", 0, roundHalfAway, 1, ""},
		{"5.", 1, roundHalfAway, 50, ""},
		{"+1e3", 2, roundHalfAway, 100000, ""},
		{"1.5E-1", 2, roundHalfAway, 15, ""},
		{"000123", 0, roundExact, 123, ""},
		{"12.9", 0, roundTrunc, 12, ""},
		{"-12.9", 0, roundTrunc, -12, ""},
		{"12.50", 1, roundExact, 125, ""},
		{"12.51", 1, roundExact, 0, "has more than 1 decimal places"},
		{"12.5", 0, roundExact, 0, "not a whole number"},
		{"999999999999999999", 0, roundExact, 999999999999999999, ""},
		{"9999999999999999999", 0, roundExact, 0, "out of range"},
		{"1", 19, roundExact, 0, "out of range"},
		{"0", 30, roundExact, 0, ""},
		{"", 0, roundExact, 0, "not a number"},
		{"-", 0, roundExact, 0, "not a number"},
		{"1e", 0, roundExact, 0, "not a number"},
		{"1.2.3", 0, roundExact, 0, "not a number"},
		{"abc", 0, roundExact, 0, "not a number"},
	} {
		got, err := parseDecimal(tc.in, tc.scale, tc.mode)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseDecimal(%q, %d) error %v, want %q", tc.in, tc.scale, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseDecimal(%q, %d) = %d, %v; want %d", tc.in, tc.scale, got, err, tc.want)
		}
	}
}

func TestConvert(t *testing.T) {
	col := func(typ string) *pipeline.Column {
		c, err := parseColumnType(typ)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	day := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v     any
		to    string
		from  pipeline.Type
		trunc bool
		want  any
		err   string
	}{
		{"yes", "bool", 0, true, true, ""},
		{" OFF ", "bool", 0, true, false, ""},
		{int64(2), "bool", 0, true, true, ""},
		{"maybe", "bool", 0, true, nil, "not a boolean"},
		{"2147483648", "int", 0, true, nil, "out of range for int"},
		{float64(-2.9), "long", 0, true, int64(-2), ""},
		{float64(2.9), "long", 0, false, nil, "not a whole number"},
		{float64(3), "long", 0, false, int64(3), ""},
		{math.NaN(), "long", 0, true, nil, "not a number"},
		{dec(-1299, 2), "long", 0, true, int64(-12), ""},
		{dec(1200, 2), "int", 0, false, int32(12), ""},
		{dec(5, -2), "long", 0, false, int64(500), ""},
		{uint64(math.MaxUint64), "long", 0, true, nil, "out of range"},
		{true, "long", 0, true, int64(1), ""},
		{dec(12345, 3), "double", 0, true, 12.345, ""},
		{"1e400", "double", 0, true, nil, "out of range"},
		{1e300, "float", 0, true, nil, "out of range for float"},
		{int32(7), "float", 0, true, float32(7), ""},
		{1.005, "decimal(5,2)", 0, true, dec(101, 2), ""},
		{float32(0.1), "decimal(5,3)", 0, true, dec(100, 3), ""},
		{int64(12), "decimal(4,2)", 0, true, dec(1200, 2), ""},
		{int64(123), "decimal(4,2)", 0, true, nil, "out of range for decimal(4,2)"},
		{dec(-12345, 3), "decimal(6,2)", 0, true, dec(-1235, 2), ""},
		{dec(1, 0), "decimal(6,4)", 0, true, dec(10000, 4), ""},
		{"1,5", "decimal(6,2)", 0, true, nil, "not a number"},
		{1.5, "string", 0, true, "1.5", ""},
		{1e21, "string", 0, true, "1e+21", ""},
		{123456789.0, "string", 0, true, "123456789", ""},
		{float32(0.1), "string", 0, true, "0.1", ""},
		{dec(-5, 3), "string", 0, true, "-0.005", ""},
		{int32(-3), "string", 0, true, "-3", ""},
		{uint64(math.MaxUint64), "string", 0, true, "18446744073709551615", ""},
		{day, "string", pipeline.TypeDate, true, "2024-02-29", ""},
		{day.Add(90 * time.Minute), "string", pipeline.TypeTimestamp, true, "2024-02-29T01:30:00", ""},
		{day.Add(90 * time.Minute), "string", pipeline.TypeTimestampTZ, true, "2024-02-29T01:30:00Z", ""},
		{90*time.Minute + time.Millisecond, "string", pipeline.TypeTime, true, "01:30:00.001", ""},
		{[]byte("hé"), "string", 0, true, "hé", ""},
		{[]byte{0xff}, "string", 0, true, nil, "not valid UTF-8"},
		{"ab", "binary", 0, true, []byte("ab"), ""},
		{"2024-02-29 13:14:15", "date", 0, true, day, ""},
		{"2024-02-29T23:30:00-02:00", "timestamptz", 0, true, day.Add(25*time.Hour + 30*time.Minute), ""},
		{"2024-02-29 01:30", "timestamp", 0, true, day.Add(90 * time.Minute), ""},
		{"29/02/2024", "date", 0, true, nil, "not a date or time"},
		{"13:14:15.5", "time", 0, true, 13*time.Hour + 14*time.Minute + 15500*time.Millisecond, ""},
		{day.Add(time.Hour), "time", 0, true, time.Hour, ""},
		{25 * time.Hour, "time", 0, true, nil, "out of range for time"},
		{int64(1), "date", 0, true, nil, "cannot convert int64 to a time"},
		{[]any{1}, "string", 0, true, nil, "cannot convert array to string"},
		{nil, "long", 0, true, nil, ""},
	} {
		got, err := convert(tc.v, col(tc.to), tc.from, tc.trunc)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("convert(%#v, %s) error %v, want %q", tc.v, tc.to, err, tc.err)
		case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("convert(%#v, %s) = %#v, %v; want %#v", tc.v, tc.to, got, err, tc.want)
		}
	}
}

func TestCastable(t *testing.T) {
	yes := [][2]pipeline.Type{
		{pipeline.TypeString, pipeline.TypeDate}, {pipeline.TypeTimestamp, pipeline.TypeString},
		{pipeline.TypeDecimal, pipeline.TypeInt32}, {pipeline.TypeBool, pipeline.TypeInt64},
		{pipeline.TypeTimestampTZ, pipeline.TypeDate}, {pipeline.TypeTimestamp, pipeline.TypeTime},
	}
	no := [][2]pipeline.Type{
		{pipeline.TypeInt64, pipeline.TypeTimestamp}, {pipeline.TypeFloat64, pipeline.TypeBool},
		{pipeline.TypeBinary, pipeline.TypeInt64}, {pipeline.TypeTime, pipeline.TypeDate},
	}
	for _, p := range yes {
		if !castable(p[0], p[1]) {
			t.Errorf("%s -> %s should be castable", p[0], p[1])
		}
	}
	for _, p := range no {
		if castable(p[0], p[1]) {
			t.Errorf("%s -> %s should not be castable", p[0], p[1])
		}
	}
}

func TestFunctions(t *testing.T) {
	env := map[string]any{"s": "", "n": int64(0), "f": 0.0, "b": false, "t": time.Time{}}
	fns := newFuncs()
	fns.batchNow = testNow
	eval := func(src string, vars map[string]any) (any, error) {
		p, err := compileExpr("x", src, env, fns, false)
		if err != nil {
			return nil, err
		}
		return expr.Run(p.prog, vars)
	}
	null := map[string]any{"s": nil, "n": nil, "f": nil, "b": nil, "t": nil}
	for _, tc := range []struct {
		src  string
		vars map[string]any
		want any
		err  string
	}{
		{"round(f, 2)", map[string]any{"f": 1.005}, 1.01, ""},
		{"round(f, 2)", map[string]any{"f": -1.005}, -1.01, ""},
		{"round(f)", map[string]any{"f": 2.5}, 3.0, ""},
		{"round(n, -2)", map[string]any{"n": int64(1250)}, 1300.0, ""},
		{"round(f, 2)", map[string]any{"f": 1e300}, 1e300, ""},
		{"round(f, 2)", null, nil, ""},
		{"to_int(s)", map[string]any{"s": " 42 "}, 42, ""},
		{"to_int(f)", map[string]any{"f": -2.7}, -2, ""},
		{"to_int(s)", map[string]any{"s": "x"}, nil, `to_int("x"): not a number`},
		{"to_int(s)", null, nil, ""},
		{"to_float(s) * 2", map[string]any{"s": "1.25"}, 2.5, ""},
		{"to_string(n) + '!'", map[string]any{"n": int64(5)}, "5!", ""},
		{"to_string(t)", map[string]any{"t": testNow}, "2025-03-04T05:06:07Z", ""},
		{"to_decimal(s, 2)", map[string]any{"s": "3.14159"}, dec(314, 2), ""},
		{"to_decimal(f, 1)", map[string]any{"f": 0.25}, dec(3, 1), ""},
		{"to_decimal(s, 40)", map[string]any{"s": "1"}, nil, "scale must be 0 to 18"},
		{`parse_time("02.01.2006", s)`, map[string]any{"s": "04.03.2025"}, time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC), ""},
		{`parse_time("2006", s)`, map[string]any{"s": "x"}, nil, "parse_time: parsing time"},
		{`parse_time("2006", s)`, null, nil, ""},
		{`regex_replace(s, "(\\d+)", "<$1>")`, map[string]any{"s": "a12b3"}, "a<12>b<3>", ""},
		{`regex_replace(s, s, "")`, map[string]any{"s": "("}, nil, "regex_replace: error parsing regexp"},
		{`regex_replace(s, "x", "y")`, null, nil, ""},
		{"coalesce(s, 'd')", null, "d", ""},
		{"coalesce(s, 'd')", map[string]any{"s": "v"}, "v", ""},
		{"coalesce(s, n, f)", null, nil, ""},
		{"now()", nil, testNow, ""},
		{"trim(s) + upper(s) + lower(s)", null, nil, "invalid operation"},
		{"trim(s)", null, nil, ""},
		{"len(s) ?? -1", null, -1, ""},
		{"hasPrefix(s, 'a')", null, nil, ""},
		{"abs(n)", map[string]any{"n": int64(-3)}, int64(3), ""},
		{"s == 'x' || n == 1", null, false, ""},
		{"s != 'x'", null, true, ""},
	} {
		got, err := eval(tc.src, tc.vars)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s with %v: error %v, want %q", tc.src, tc.vars, err, tc.err)
		case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s with %v = %#v, %v; want %#v", tc.src, tc.vars, got, err, tc.want)
		}
	}
}

func TestRegexCacheIsBounded(t *testing.T) {
	f := newFuncs()
	for i := range 3 * regexCacheSize {
		if _, err := f.regexp(strings.Repeat("a", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.regex) > regexCacheSize {
		t.Errorf("cache holds %d patterns", len(f.regex))
	}
}

// The fast path of floatToDecimal gives what formatting the float and
// parsing the text gives, whenever it answers: random values at every
// scale, values that print as exact halves and their neighbours, and
// products of two decimals (the derived-column case).
func TestRoundFloatScaled(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	slow := func(f float64, scale int) int64 {
		s := strconv.FormatFloat(f, 'g', -1, 64)
		u, err := parseDecimal(s, scale, roundHalfAway)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		return u
	}
	answered, checked := 0, 0
	check := func(f float64, scale int) bool {
		checked++
		u, ok := roundFloatScaled(f * pow10f[scale])
		if !ok {
			return false
		}
		answered++
		if want := slow(f, scale); u != want {
			t.Fatalf("%v at scale %d: fast path %d, formatting %d", f, scale, u, want)
		}
		return true
	}
	products, productsFast := 0, 0
	for range 200_000 {
		scale := r.IntN(10)
		var f float64
		product := false
		switch r.IntN(4) {
		case 0:
			f = (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(12)))
		case 1:
			// prints as an exact half at this scale: 12.345 at scale 2
			f = (float64(r.Int64N(1_000_000)) + 0.5) / pow10f[scale]
		case 2:
			f = math.Nextafter((float64(r.Int64N(1_000_000))+0.5)/pow10f[scale], math.Inf(2*r.IntN(2)-1))
		default:
			f = float64(r.Int64N(1_000_000)) / 100 * 0.92
			scale = 2
			product = true
			products++
		}
		if r.IntN(2) == 0 {
			f = -f
		}
		if check(f, scale) && product {
			productsFast++
		}
	}
	for _, f := range []float64{0, 0.5, 1.005, 2.675, 1e-9, 0.125, 4294967.2955, 42949672.95} {
		for scale := range 10 {
			check(f, scale)
			check(-f, scale)
		}
	}
	t.Logf("fast path answered %d of %d", answered, checked)
	if productsFast < products*9/10 {
		t.Fatalf("the fast path answered only %d of %d products at scale 2", productsFast, products)
	}
}
