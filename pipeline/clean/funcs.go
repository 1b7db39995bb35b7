package clean

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"

	"github.com/sluice-cdc/sluice/pipeline"
)

// nullSafeBuiltins are expr's own string and number functions that rows
// call on nullable columns all the time. Unwrapped, trim(nil) is a type
// assertion panic and the row would become a dead letter; wrapped, NULL
// in gives NULL out, as in SQL. The builtins' implementations and
// signatures are reused, not redefined.
var nullSafeBuiltins = []string{
	"trim", "trimPrefix", "trimSuffix", "upper", "lower", "replace", "repeat",
	"split", "splitAfter", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
	"len", "abs", "ceil", "floor",
}

// regexCacheSize bounds the compiled patterns kept per plan: a pattern
// built from row data would otherwise grow the cache without end.
const regexCacheSize = 64

// funcs holds the functions of one plan's expressions and the little
// state they need. A plan runs on one goroutine, so none is locked.
type funcs struct {
	// batchNow is what now() returns: one instant per batch, so that
	// every row of a batch gets the same processing time.
	batchNow time.Time
	regex    map[string]*regexp.Regexp
	opts     []expr.Option
}

func newFuncs() *funcs {
	f := &funcs{regex: map[string]*regexp.Regexp{}}
	f.opts = []expr.Option{
		expr.Function("now", func(...any) (any, error) {
			if f.batchNow.IsZero() {
				// Only when an expression runs outside a batch.
				return time.Now().UTC(), nil
			}
			return f.batchNow, nil
		}, new(func() time.Time)),
		expr.Function("round", fnRound,
			new(func(float64) float64), new(func(float64, int) float64)),
		expr.Function("to_int", func(args ...any) (any, error) {
			if args[0] == nil {
				return nil, nil
			}
			i, err := toInt64(args[0], roundTrunc)
			if err != nil {
				return nil, fmt.Errorf("to_int(%s): %w", fmtValue(args[0]), err)
			}
			return int(i), nil
		}, new(func(any) int)),
		expr.Function("to_float", func(args ...any) (any, error) {
			if args[0] == nil {
				return nil, nil
			}
			v, err := toFloat64(args[0])
			if err != nil {
				return nil, fmt.Errorf("to_float(%s): %w", fmtValue(args[0]), err)
			}
			return v, nil
		}, new(func(any) float64)),
		expr.Function("to_string", func(args ...any) (any, error) {
			if args[0] == nil {
				return nil, nil
			}
			v, err := toString(args[0], 0)
			if err != nil {
				return nil, fmt.Errorf("to_string: %w", err)
			}
			return v, nil
		}, new(func(any) string)),
		expr.Function("to_decimal", fnToDecimal, new(func(any, int) pipeline.Decimal)),
		expr.Function("parse_time", func(args ...any) (any, error) {
			if args[0] == nil || args[1] == nil {
				return nil, nil
			}
			layout, ok1 := args[0].(string)
			s, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("parse_time(%s, %s): expected two strings", fmtValue(args[0]), fmtValue(args[1]))
			}
			t, err := time.Parse(layout, s)
			if err != nil {
				return nil, fmt.Errorf("parse_time: %w", err)
			}
			return t, nil
		}, new(func(string, string) time.Time)),
		expr.Function("regex_replace", func(args ...any) (any, error) {
			if args[0] == nil || args[1] == nil || args[2] == nil {
				return nil, nil
			}
			s, ok1 := args[0].(string)
			pattern, ok2 := args[1].(string)
			repl, ok3 := args[2].(string)
			if !ok1 || !ok2 || !ok3 {
				return nil, fmt.Errorf("regex_replace(%s, %s, %s): expected three strings", fmtValue(args[0]), fmtValue(args[1]), fmtValue(args[2]))
			}
			re, err := f.regexp(pattern)
			if err != nil {
				return nil, err
			}
			return re.ReplaceAllString(s, repl), nil
		}, new(func(string, string, string) string)),
		addFunction(&builtin.Function{
			Name:     "coalesce",
			Func:     fnCoalesce,
			Validate: validateCoalesce,
		}),
	}
	for _, name := range nullSafeBuiltins {
		f.opts = append(f.opts, addFunction(nullSafe(builtin.Builtins[builtin.Index[name]])))
	}
	return f
}

// addFunction registers a function with a Validate hook, which
// expr.Function cannot express.
func addFunction(fn *builtin.Function) expr.Option {
	return func(c *conf.Config) { c.Functions[fn.Name] = fn }
}

func nullSafe(b *builtin.Function) *builtin.Function {
	w := *b
	w.Fast, w.Safe = nil, nil
	w.Func = func(args ...any) (any, error) {
		for _, a := range args {
			if a == nil {
				return nil, nil
			}
		}
		switch {
		case b.Func != nil:
			return b.Func(args...)
		case b.Fast != nil && len(args) == 1:
			return b.Fast(args[0]), nil
		case b.Safe != nil:
			out, _, err := b.Safe(args...)
			return out, err
		}
		return nil, fmt.Errorf("%s: unsupported call with %d arguments", b.Name, len(args))
	}
	return &w
}

func (f *funcs) regexp(pattern string) (*regexp.Regexp, error) {
	if re, ok := f.regex[pattern]; ok {
		return re, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regex_replace: %w", err)
	}
	if len(f.regex) >= regexCacheSize {
		clear(f.regex)
	}
	f.regex[pattern] = re
	return re, nil
}

// fnRound rounds half away from zero on the number as it reads:
// round(1.005, 2) is 1.01 although 1.005 is 1.00499999... in binary.
func fnRound(args ...any) (any, error) {
	if args[0] == nil {
		return nil, nil
	}
	x, err := toFloat64(args[0])
	if err != nil {
		return nil, fmt.Errorf("round(%s): %w", fmtValue(args[0]), err)
	}
	n := 0
	if len(args) > 1 {
		if args[1] == nil {
			return nil, nil
		}
		i, err := toInt64(args[1], roundExact)
		if err != nil {
			return nil, fmt.Errorf("round: places: %w", err)
		}
		n = int(i)
	}
	return roundFloat(x, n), nil
}

func roundFloat(x float64, n int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	if n < 0 {
		p := math.Pow10(-n)
		return math.Round(x/p) * p
	}
	if n <= maxPrecision {
		if u, err := floatToDecimal(x, 64, n, roundHalfAway); err == nil {
			return decimalToFloat(pipeline.Decimal{Unscaled: u, Scale: int32(n)})
		}
	}
	// Too wide for an int64 of units: the float has no digits to drop
	// at that scale anyway, or rounding by scaling is as good as it gets.
	p := math.Pow10(n)
	if r := math.Round(x*p) / p; !math.IsInf(r, 0) && !math.IsNaN(r) {
		return r
	}
	return x
}

func fnToDecimal(args ...any) (any, error) {
	if args[0] == nil || args[1] == nil {
		return nil, nil
	}
	scale, err := toInt64(args[1], roundExact)
	if err != nil || scale < 0 || scale > maxPrecision {
		return nil, fmt.Errorf("to_decimal: scale must be 0 to %d, got %s", maxPrecision, fmtValue(args[1]))
	}
	d, err := toDecimal(args[0], int(scale), roundHalfAway)
	if err != nil {
		return nil, fmt.Errorf("to_decimal(%s, %d): %w", fmtValue(args[0]), scale, err)
	}
	return d, nil
}

func fnCoalesce(args ...any) (any, error) {
	for _, a := range args {
		if a != nil {
			return a, nil
		}
	}
	return nil, nil
}

var anyType = reflect.TypeFor[any]()

// validateCoalesce gives coalesce(a, b, ...) the arguments' type when
// they agree, so that the result's column type can be inferred.
func validateCoalesce(args []reflect.Type) (reflect.Type, error) {
	if len(args) == 0 {
		return nil, errors.New("coalesce needs at least one argument")
	}
	var t reflect.Type
	for _, a := range args {
		switch {
		case a == nil:
			continue // a nil literal
		case a == anyType:
			return anyType, nil
		case t == nil:
			t = a
		case t != a:
			return anyType, nil
		}
	}
	if t == nil {
		return anyType, nil
	}
	return t, nil
}
