package clean

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Plan is one rule compiled against one input schema. It is not safe for
// concurrent use: it carries the expression VM, environment and scratch
// row it runs with, so that rows reuse them instead of allocating.
type Plan struct {
	ruleIdx int
	in, out *pipeline.Schema

	// Steps work on the work row: the input columns followed by the
	// columns that Rule.Columns adds. The projection then picks the
	// output columns from it.
	steps   []step
	where   *program
	reject  *program
	project []int  // output column i is work column project[i]
	keyWork []bool // work column is a key column of the output

	fns *funcs
	env map[string]any
	vm  vm.VM
	row []any
	// tolerant is eval's mode: a failing step on a non-key column is
	// then only recorded as NULL, and its message is never read.
	tolerant bool
}

// Input and Output are the schemas the plan reads and writes.
func (p *Plan) Input() *pipeline.Schema  { return p.in }
func (p *Plan) Output() *pipeline.Schema { return p.out }

// Rule is the index of the plan's rule in the slice it was compiled from.
func (p *Plan) Rule() int { return p.ruleIdx }

type stepKind uint8

const (
	stepString stepKind = iota // trim, normalize, lower, upper
	stepNullIf
	stepCast
	stepDefault
	stepExpr
)

type step struct {
	kind stepKind
	col  int
	path string

	// stepString
	trim, nfc bool
	caseOp    int8 // -1 lower, +1 upper

	// stepNullIf: nullStr for string columns, nulls for the others
	nullStr []string
	nulls   []any

	// stepCast and stepExpr: the type the value becomes; from is the
	// type it had, for formatting times as strings.
	to   pipeline.Column
	from pipeline.Type
	// stepExpr: a declared type converts as a cast does.
	declared bool
	prog     *program

	// stepDefault
	def any
}

// program is a compiled expression and the columns it reads.
type program struct {
	path, src string
	prog      *vm.Program
	refs      []ref
	// strict: the expression fails whenever one of refs is NULL (see
	// nullStrict), so a tolerant evaluation can skip running it.
	strict bool
}

type ref struct {
	name string
	idx  int
}

// Compile compiles the first rule that matches s's table against s. It
// returns nil, nil when no rule matches. Errors are *Error, with Rule set
// to the index of the failing rule.
func Compile(rules []Rule, s *pipeline.Schema) (*Plan, error) {
	for i := range rules {
		if rules[i].Matches(s.Table) {
			if err := rules[i].Validate(); err != nil {
				return nil, atRule(err, i)
			}
			p, err := rules[i].compile(s, i)
			if err != nil {
				return nil, atRule(err, i)
			}
			return p, nil
		}
	}
	return nil, nil
}

// Compile compiles the rule against s whether or not it matches s's
// table, for `sluice validate` and tests.
func (r *Rule) Compile(s *pipeline.Schema) (*Plan, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r.compile(s, -1)
}

// compiler carries one compilation.
type compiler struct {
	r     *Rule
	s     *pipeline.Schema
	work  []pipeline.Column
	index map[string]int
	fns   *funcs
}

func (r *Rule) compile(s *pipeline.Schema, ruleIdx int) (*Plan, error) {
	c := &compiler{r: r, s: s, work: slices.Clone(s.Columns), index: map[string]int{}, fns: newFuncs()}
	for i, col := range c.work {
		c.index[col.Name] = i
	}
	p := &Plan{ruleIdx: ruleIdx, in: s, fns: c.fns}
	var err error
	if p.steps, err = c.valueSteps(); err != nil {
		return nil, err
	}
	if r.Where != "" {
		if p.where, err = c.compile("where", r.Where, true); err != nil {
			return nil, err
		}
	}
	if r.Reject != "" {
		if p.reject, err = c.compile("reject", r.Reject, true); err != nil {
			return nil, err
		}
	}
	if err := c.output(p); err != nil {
		return nil, err
	}
	p.row = make([]any, len(c.work))
	p.env = make(map[string]any, len(c.work))
	return p, nil
}

// valueSteps builds the steps that change values, in the documented
// order: string clean-up, null_if, cast, defaults, columns.
func (c *compiler) valueSteps() ([]step, error) {
	var steps []step
	r := c.r

	// String clean-up, one fused step per column.
	str := map[int]*step{}
	strStep := func(key string, names []string, set func(*step)) error {
		idxs, err := c.stringColumns(key, names)
		if err != nil {
			return err
		}
		for _, i := range idxs {
			st := str[i]
			if st == nil {
				st = &step{kind: stepString, col: i, path: key + "." + c.work[i].Name}
				str[i] = st
			}
			set(st)
		}
		return nil
	}
	if err := strStep("trim", r.Trim, func(s *step) { s.trim = true }); err != nil {
		return nil, err
	}
	if len(r.Normalize) > 0 {
		if err := strStep("normalize", r.Normalize, func(s *step) { s.nfc = true }); err != nil {
			return nil, err
		}
	}
	if err := strStep("lower", r.Lower, func(s *step) { s.caseOp = -1 }); err != nil {
		return nil, err
	}
	if err := strStep("upper", r.Upper, func(s *step) { s.caseOp = 1 }); err != nil {
		return nil, err
	}
	for i := range c.work {
		if st := str[i]; st != nil {
			steps = append(steps, *st)
		}
	}

	// null_if compares with the values after the string clean-up, so
	// that "  " trimmed matches "".
	for _, name := range sortedKeys(r.NullIf) {
		i, err := c.column("null_if."+name, name)
		if err != nil {
			return nil, err
		}
		st := step{kind: stepNullIf, col: i, path: "null_if." + name}
		col := &c.work[i]
		for j, v := range r.NullIf[name] {
			if col.Type == pipeline.TypeString {
				st.nullStr = append(st.nullStr, v)
				continue
			}
			nv, err := convert(v, col, pipeline.TypeString, false)
			if err != nil {
				return nil, wrapf(fmt.Sprintf("null_if.%s[%d]", name, j), err, "%q is not a valid %s: %v", v, typeString(col), err)
			}
			st.nulls = append(st.nulls, nv)
		}
		if _, def := r.Defaults[name]; !def {
			col.Nullable = true
		}
		steps = append(steps, st)
	}

	for _, name := range sortedKeys(r.Cast) {
		path := "cast." + name
		i, err := c.column(path, name)
		if err != nil {
			return nil, err
		}
		to, err := parseColumnType(r.Cast[name])
		if err != nil {
			return nil, wrapf(path, err, "%v", err)
		}
		col := &c.work[i]
		if !castable(col.Type, to.Type) {
			return nil, errf(path, "cannot cast %s to %s", typeString(col), typeString(&to))
		}
		from := col.Type
		if from == to.Type && (from != pipeline.TypeDecimal || col.Precision == to.Precision && col.Scale == to.Scale) {
			continue // already of that type
		}
		col.Type, col.Precision, col.Scale = to.Type, to.Precision, to.Scale
		steps = append(steps, step{kind: stepCast, col: i, path: path, to: *col, from: from})
	}

	for _, name := range sortedKeys(r.Defaults) {
		path := "defaults." + name
		i, err := c.column(path, name)
		if err != nil {
			return nil, err
		}
		col := &c.work[i]
		v, err := literal(r.Defaults[name], col)
		if err != nil {
			return nil, wrapf(path, err, "%s is not a valid %s: %v", fmtValue(r.Defaults[name]), typeString(col), err)
		}
		steps = append(steps, step{kind: stepDefault, col: i, path: path, def: v})
	}

	for _, dc := range r.Columns {
		st, err := c.columnStep(dc)
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// literal reads a YAML scalar as a value of col's type. YAML gives
// integers as uint64 or int64, which convert reads like any integer.
func literal(v any, col *pipeline.Column) (any, error) {
	if s, ok := v.(string); ok {
		return convert(s, col, pipeline.TypeString, false)
	}
	switch col.Type {
	case pipeline.TypeString:
		switch v.(type) {
		case bool, int, int64, uint64, float64:
			// `defaults: {code: 0}` means the string "0".
			return fmt.Sprint(v), nil
		}
	}
	return convert(v, col, 0, false)
}

func (c *compiler) columnStep(dc Column) (step, error) {
	path := "columns." + dc.Name
	prog, err := c.compile(path, dc.Expr, false)
	if err != nil {
		return step{}, err
	}
	static := prog.prog.Node().Type()
	if static == anyType {
		static = nil
	}
	i, exists := c.index[dc.Name]
	var to pipeline.Column
	declared := dc.Type != ""
	switch {
	case declared:
		if to, err = parseColumnType(dc.Type); err != nil {
			return step{}, wrapf(path+".type", err, "%v", err)
		}
		if inf, ok := inferType(static); ok && !castable(inf.Type, to.Type) {
			e := errf(path, "the expression yields %s, which cannot become %s", goName(static), typeString(&to))
			e.Expr = dc.Expr
			return step{}, e
		}
		to.Nullable = true
		if exists {
			to.Nullable = c.work[i].Nullable
		}
	case exists && (static == nil || fits(static, &c.work[i])):
		to = c.work[i]
	default:
		inf, ok := inferType(static)
		if !ok {
			what := "any"
			if static != nil {
				what = goName(static)
			}
			hint := "string"
			if static == decimalType {
				hint = "decimal(18,2)"
			}
			e := errf(path, "cannot infer a column type from the expression (it yields %s); declare one: {expr: ..., type: %s}", what, hint)
			e.Expr = dc.Expr
			return step{}, e
		}
		to = inf
		to.Nullable = true
		if exists {
			to.Nullable = c.work[i].Nullable
		}
	}
	to.Name = dc.Name
	if exists {
		c.work[i] = to
	} else {
		i = len(c.work)
		c.work = append(c.work, to)
		c.index[dc.Name] = i
	}
	return step{kind: stepExpr, col: i, path: path, to: to, declared: declared, prog: prog}, nil
}

var (
	decimalType  = reflect.TypeFor[pipeline.Decimal]()
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	bytesType    = reflect.TypeFor[[]byte]()
)

func goName(t reflect.Type) string {
	switch t {
	case decimalType:
		return "decimal"
	case timeType:
		return "time"
	case durationType:
		return "duration"
	case bytesType:
		return "binary"
	}
	return t.String()
}

// fits reports whether a result of static type t goes into col without
// choosing a new type: numbers widen, decimals round to their scale, but
// a fraction never silently becomes an integer and a number never
// silently becomes a string.
func fits(t reflect.Type, col *pipeline.Column) bool {
	switch t {
	case decimalType:
		return col.Type == pipeline.TypeDecimal || col.Type == pipeline.TypeFloat32 || col.Type == pipeline.TypeFloat64
	case timeType:
		return isTimeLike(col.Type)
	case durationType:
		return col.Type == pipeline.TypeTime
	case bytesType:
		return col.Type == pipeline.TypeBinary
	}
	switch t.Kind() {
	case reflect.Bool:
		return col.Type == pipeline.TypeBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return isNumeric(col.Type)
	case reflect.Float32, reflect.Float64:
		return col.Type == pipeline.TypeFloat32 || col.Type == pipeline.TypeFloat64 || col.Type == pipeline.TypeDecimal
	case reflect.String:
		return col.Type == pipeline.TypeString || col.Type == pipeline.TypeBinary
	}
	return false
}

// inferType maps an expression's static type to a column type. Decimals
// are left out: their scale is the user's to choose.
func inferType(t reflect.Type) (pipeline.Column, bool) {
	if t == nil {
		return pipeline.Column{}, false
	}
	switch t {
	case timeType:
		return pipeline.Column{Type: pipeline.TypeTimestampTZ}, true
	case durationType:
		return pipeline.Column{Type: pipeline.TypeTime}, true
	case bytesType:
		return pipeline.Column{Type: pipeline.TypeBinary}, true
	case decimalType:
		return pipeline.Column{}, false
	}
	switch t.Kind() {
	case reflect.Bool:
		return pipeline.Column{Type: pipeline.TypeBool}, true
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return pipeline.Column{Type: pipeline.TypeInt32}, true
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return pipeline.Column{Type: pipeline.TypeInt64}, true
	case reflect.Float32:
		return pipeline.Column{Type: pipeline.TypeFloat32}, true
	case reflect.Float64:
		return pipeline.Column{Type: pipeline.TypeFloat64}, true
	case reflect.String:
		return pipeline.Column{Type: pipeline.TypeString}, true
	}
	return pipeline.Column{}, false
}

// envZero is the value that stands for a column of type t when an
// expression is type-checked. Decimals enter expressions as float64.
func envZero(t pipeline.Type) any {
	switch t {
	case pipeline.TypeBool:
		return false
	case pipeline.TypeInt32:
		return int32(0)
	case pipeline.TypeInt64:
		return int64(0)
	case pipeline.TypeFloat32:
		return float32(0)
	case pipeline.TypeFloat64, pipeline.TypeDecimal:
		return float64(0)
	case pipeline.TypeString:
		return ""
	case pipeline.TypeBinary:
		return []byte(nil)
	case pipeline.TypeDate, pipeline.TypeTimestamp, pipeline.TypeTimestampTZ:
		return time.Time{}
	case pipeline.TypeTime:
		return time.Duration(0)
	}
	return nil
}

// envValue is a row value as expressions see it.
func envValue(v any) any {
	if d, ok := v.(pipeline.Decimal); ok {
		return decimalToFloat(d)
	}
	return v
}

// compile type-checks an expression against the work row as it is at
// this point of the rule.
func (c *compiler) compile(path, src string, asBool bool) (*program, error) {
	env := make(map[string]any, len(c.work))
	for _, col := range c.work {
		env[col.Name] = envZero(col.Type)
	}
	p, err := compileExpr(path, src, env, c.fns, asBool)
	if err != nil {
		return nil, err
	}
	all := false
	seen := map[string]bool{}
	walk(p.prog.Node(), func(n ast.Node) {
		switch n := n.(type) {
		case *ast.IdentifierNode:
			if n.Value == "$env" {
				all = true
			}
			if i, ok := c.index[n.Value]; ok && !seen[n.Value] {
				seen[n.Value] = true
				p.refs = append(p.refs, ref{name: n.Value, idx: i})
			}
		}
	})
	p.strict = !all && len(p.refs) > 0 && nullStrict(p.prog.Node())
	if all {
		// $env["odd name"] may read any column.
		p.refs = p.refs[:0]
		for i, col := range c.work {
			p.refs = append(p.refs, ref{name: col.Name, idx: i})
		}
	}
	return p, nil
}

// compileExpr compiles src with the plan's functions; env nil checks
// syntax and functions only (any name is accepted).
func compileExpr(path, src string, env map[string]any, fns *funcs, asBool bool) (*program, error) {
	opts := make([]expr.Option, 0, len(fns.opts)+2)
	if env != nil {
		opts = append(opts, expr.Env(env))
	}
	opts = append(opts, fns.opts...)
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, exprError(path, src, err)
	}
	// The checker types a nullable column as its value type, so the
	// compiler may pick equality opcodes that assert both operands are
	// int or string; with a NULL operand those panic. The generic opcode
	// compares nil like any value (nil == "x" is false).
	for i, op := range prog.Bytecode {
		if op == vm.OpEqualInt || op == vm.OpEqualString {
			prog.Bytecode[i] = vm.OpEqual
		}
	}
	// A constant regex_replace pattern is checked now rather than on the
	// first row.
	var reErr *Error
	walk(prog.Node(), func(n ast.Node) {
		call, ok := n.(*ast.CallNode)
		if !ok || reErr != nil || len(call.Arguments) != 3 {
			return
		}
		if id, ok := call.Callee.(*ast.IdentifierNode); !ok || id.Value != "regex_replace" {
			return
		}
		if s, ok := call.Arguments[1].(*ast.StringNode); ok {
			if _, err := regexp.Compile(s.Value); err != nil {
				fe := (&file.Error{Location: s.Location(), Message: "regex_replace: " + err.Error()}).Bind(prog.Source())
				reErr = exprError(path, src, fe)
			}
		}
	})
	if reErr != nil {
		return nil, reErr
	}
	return &program{path: path, src: src, prog: prog}, nil
}

// nullStrict reports an expression that fails whenever a column it reads
// is NULL: arithmetic (+ - * / % **, unary minus) over columns and
// literals only. expr's arithmetic refuses a nil operand, and with nothing
// else in the tree (no ??, conditionals, comparisons or calls, which may
// handle or skip a NULL) every operand is evaluated.
// TestNullStrictFails holds expr to that.
func nullStrict(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IdentifierNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return n.Operator == "-" && nullStrict(n.Node)
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/", "%", "**":
			return nullStrict(n.Left) && nullStrict(n.Right)
		}
	}
	return false
}

type visitFunc func(ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(*n) }

func walk(n ast.Node, f func(ast.Node)) {
	if n == nil {
		return
	}
	ast.Walk(&n, visitFunc(f))
}

// column resolves a name that a step before Rule.Columns uses: an input
// column.
func (c *compiler) column(path, name string) (int, error) {
	if i, ok := c.index[name]; ok && i < len(c.s.Columns) {
		return i, nil
	}
	return 0, errf(path, "no column %s in %s (%s)", name, c.s.Table, columnList(c.s.Columns))
}

func (c *compiler) stringColumns(key string, names []string) ([]int, error) {
	if len(names) == 1 && names[0] == "*" {
		var out []int
		for i, col := range c.s.Columns {
			if col.Type == pipeline.TypeString {
				out = append(out, i)
			}
		}
		return out, nil
	}
	out := make([]int, 0, len(names))
	for j, n := range names {
		path := key + "[" + strconv.Itoa(j) + "]"
		i, err := c.column(path, n)
		if err != nil {
			return nil, err
		}
		if t := c.s.Columns[i].Type; t != pipeline.TypeString {
			return nil, errf(path, "column %s is %s, not a string", n, typeString(&c.s.Columns[i]))
		}
		out = append(out, i)
	}
	return out, nil
}

func columnList(cols []pipeline.Column) string {
	const max = 20
	var b strings.Builder
	b.WriteString("columns: ")
	for i, c := range cols {
		if i == max {
			fmt.Fprintf(&b, ", and %d more", len(cols)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
	}
	return b.String()
}

// output builds the projection, renames and the output schema, with the
// key following both.
func (c *compiler) output(p *Plan) error {
	r := c.r
	var project []int
	switch {
	case len(r.Select) > 0:
		for j, name := range r.Select {
			i, ok := c.index[name]
			if !ok {
				return errf(fmt.Sprintf("select[%d]", j), "no column %s in %s (%s)", name, c.s.Table, columnList(c.work))
			}
			project = append(project, i)
		}
		for _, k := range c.s.Key {
			if !slices.Contains(project, k) {
				return errf("select", "must keep key column %s of %s: without it rows cannot be updated or deleted by key", c.s.Columns[k].Name, c.s.Table)
			}
		}
	default:
		drop := map[int]bool{}
		for j, name := range r.Drop {
			path := fmt.Sprintf("drop[%d]", j)
			i, ok := c.index[name]
			if !ok {
				return errf(path, "no column %s in %s (%s)", name, c.s.Table, columnList(c.work))
			}
			if slices.Contains(c.s.Key, i) {
				return errf(path, "cannot drop key column %s of %s: without it rows cannot be updated or deleted by key", name, c.s.Table)
			}
			drop[i] = true
		}
		for i := range c.work {
			if !drop[i] {
				project = append(project, i)
			}
		}
	}
	cols := make([]pipeline.Column, len(project))
	outIdx := map[string]int{}
	for o, i := range project {
		cols[o] = c.work[i]
		outIdx[cols[o].Name] = o
	}
	renamed := map[string]string{} // new name -> old name
	for _, old := range sortedKeys(r.Rename) {
		path := "rename." + old
		o, ok := outIdx[old]
		if !ok {
			if _, inWork := c.index[old]; inWork {
				return errf(path, "column %s is not in the output (select or drop removes it)", old)
			}
			return errf(path, "no column %s in %s (%s)", old, c.s.Table, columnList(c.work))
		}
		to := r.Rename[old]
		if j, clash := outIdx[to]; clash && j != o {
			if _, moving := r.Rename[to]; !moving {
				return errf(path, "renames to %s, which is already a column of the output", to)
			}
		}
		if prev, dup := renamed[to]; dup {
			return errf(path, "renames to %s, as rename.%s does", to, prev)
		}
		renamed[to] = old
		cols[o].Name = to
	}
	p.project = project
	p.keyWork = make([]bool, len(c.work))
	key := make([]int, 0, len(c.s.Key))
	for _, k := range c.s.Key {
		p.keyWork[k] = true
		key = append(key, slices.Index(project, k))
	}
	p.out = &pipeline.Schema{Table: c.s.Table, Columns: cols, Key: key, Version: c.s.Version}
	return nil
}
