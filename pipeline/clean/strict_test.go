package clean

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/sluice-cdc/sluice/pipeline"
)

// nullStrict lets a tolerant evaluation skip an expression with a NULL
// input on the promise that expr would fail it anyway. This holds expr to
// that promise: every arithmetic expression the checker accepts over
// columns of every type, with any one input NULL, fails in the VM.
func TestNullStrictFails(t *testing.T) {
	types := map[string]pipeline.Type{
		"i": pipeline.TypeInt32, "l": pipeline.TypeInt64, "f": pipeline.TypeFloat32,
		"d": pipeline.TypeFloat64, "m": pipeline.TypeDecimal, "s": pipeline.TypeString,
		"b": pipeline.TypeBool, "ts": pipeline.TypeTimestampTZ, "dt": pipeline.TypeDate,
		"tm": pipeline.TypeTime, "by": pipeline.TypeBinary,
	}
	sample := map[string]any{
		"i": int32(3), "l": int64(7), "f": float32(1.5), "d": 2.25, "m": 4.5, "s": "x",
		"b": true, "ts": time.Unix(100, 0), "dt": time.Unix(86400, 0), "tm": time.Second, "by": []byte("y"),
	}
	env := map[string]any{}
	for n, ty := range types {
		env[n] = envZero(ty)
	}
	var exprs []string
	operands := []string{"1", "2.5", `"k"`}
	for n := range types {
		operands = append(operands, n)
	}
	for _, a := range operands {
		exprs = append(exprs, "-"+a)
		for _, b := range operands {
			for _, op := range []string{"+", "-", "*", "/", "%", "**"} {
				exprs = append(exprs, fmt.Sprintf("%s %s %s", a, op, b), fmt.Sprintf("(%s %s %s) * 2", a, op, b))
			}
		}
	}
	machine := &vm.VM{}
	checked := 0
	for _, src := range exprs {
		p, err := compileExpr("test", src, env, newFuncs(), false)
		if err != nil {
			continue // the checker refuses it: it never runs
		}
		if !nullStrict(p.prog.Node()) {
			t.Errorf("%s: not classified null-strict", src)
			continue
		}
		for n := range types {
			if !regexp.MustCompile(`\b` + n + `\b`).MatchString(src) {
				continue
			}
			run := map[string]any{}
			for k, v := range sample {
				run[k] = v
			}
			run[n] = nil
			if out, err := machine.Run(p.prog, run); err == nil {
				t.Errorf("%s with %s NULL gave %v, not an error", src, n, out)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d expression/NULL pairs ran; the matrix is broken", checked)
	}
	t.Logf("%d expression/NULL pairs fail as promised", checked)

	// Anything else may handle a NULL, and is not classified strict.
	for _, src := range []string{"l ?? 0", "l > 0 ? l : 0", "l == 1", "s + upper(s)", "d * (l ?? 1)", "len(s) + 1", "$env.l + 1", "-(l ?? 1)", "not b"} {
		p, err := compileExpr("test", src, env, newFuncs(), false)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if nullStrict(p.prog.Node()) {
			t.Errorf("%s: classified null-strict", src)
		}
	}
}
