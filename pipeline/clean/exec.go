package clean

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/file"
	"golang.org/x/text/unicode/norm"

	"github.com/sluice-cdc/sluice/pipeline"
)

// result is what one batch became.
type result struct {
	out       []pipeline.Record
	dead      []pipeline.Record
	filtered  int
	retracted int
	rejected  int
	failed    int
}

// rowError is a step that failed for one row. Errors are rare, so the
// message is built when they happen and nothing is built otherwise.
type rowError struct {
	col int // work column the step writes
	msg string
}

// apply runs the plan over a batch. The output records and their images
// are fresh memory: the batch may be kept by the stages downstream after
// the input batch is gone.
func (p *Plan) apply(b *pipeline.Batch, now time.Time) result {
	p.fns.batchNow = now
	var res result
	width := len(p.project)
	slab := make([]any, b.Images()*width)
	alloc := func() []any {
		img := slab[:width:width]
		slab = slab[width:]
		return img
	}
	res.out = make([]pipeline.Record, 0, len(b.Records))
	dead := func(rec *pipeline.Record, reason string) {
		res.dead = append(res.dead, pipeline.DeadLetter(p.in, rec, "clean", reason, ""))
	}
	for i := range b.Records {
		rec := &b.Records[i]
		out := pipeline.Record{Op: rec.Op, Position: rec.Position, EventTime: rec.EventTime, Seq: rec.Seq}
		if rec.Op == pipeline.OpDelete {
			// A delete is never filtered or rejected: the DWD row it
			// removes must go whatever the rule says about its values.
			if rec.Before == nil {
				res.failed++
				dead(rec, "a delete without a before image")
				continue
			}
			if e := p.eval(rec.Before, true); e != nil {
				res.failed++
				dead(rec, e.msg)
				continue
			}
			out.Before = alloc()
			p.projectInto(out.Before)
			res.out = append(res.out, out)
			continue
		}
		if rec.After == nil {
			res.failed++
			dead(rec, fmt.Sprintf("%s record without an after image", rec.Op))
			continue
		}
		if e := p.eval(rec.After, false); e != nil {
			res.failed++
			dead(rec, e.msg)
			continue
		}
		if p.where != nil {
			keep, e := p.test(p.where)
			if e != nil {
				res.failed++
				dead(rec, e.msg)
				continue
			}
			if !keep {
				if rec.Op != pipeline.OpUpdate || len(p.out.Key) == 0 {
					res.filtered++
					continue
				}
				// The row was in the DWD table before this update (or
				// may have been); leaving it would keep a row the filter
				// now excludes. Delete it by its key instead.
				img := alloc()
				if rec.Before != nil {
					if e := p.eval(rec.Before, true); e != nil {
						res.failed++
						dead(rec, e.msg)
						continue
					}
				}
				p.projectInto(img)
				res.retracted++
				res.out = append(res.out, pipeline.Record{Op: pipeline.OpDelete, Before: img,
					Position: rec.Position, EventTime: rec.EventTime, Seq: rec.Seq})
				continue
			}
		}
		if p.reject != nil {
			bad, e := p.test(p.reject)
			if e != nil {
				res.failed++
				dead(rec, e.msg)
				continue
			}
			if bad {
				res.rejected++
				dead(rec, "rejected by "+p.reject.src)
				continue
			}
		}
		out.After = alloc()
		p.projectInto(out.After)
		if rec.Before != nil {
			if e := p.eval(rec.Before, true); e != nil {
				res.failed++
				dead(rec, "before image: "+e.msg)
				continue
			}
			out.Before = alloc()
			p.projectInto(out.Before)
		}
		res.out = append(res.out, out)
	}
	return res
}

// eval runs the value steps on img into p.row. For a before image
// (tolerant), a failing step on a column that is not part of the key
// leaves it NULL: the image only has to find its row by key, and a row
// that can no longer be cleaned must still be deletable.
func (p *Plan) eval(img []any, tolerant bool) *rowError {
	if len(img) != len(p.in.Columns) {
		return &rowError{col: -1, msg: fmt.Sprintf("the image has %d values but %s has %d columns", len(img), p.in.Table, len(p.in.Columns))}
	}
	row := p.row
	n := copy(row, img)
	clear(row[n:])
	p.tolerant = tolerant
	defer func() { p.tolerant = false }()
	for i := range p.steps {
		if e := p.steps[i].apply(p, row); e != nil {
			if tolerant && e.col >= 0 && !p.keyWork[e.col] {
				row[e.col] = nil
				continue
			}
			return e
		}
	}
	return nil
}

func (p *Plan) projectInto(dst []any) {
	for o, i := range p.project {
		dst[o] = p.row[i]
	}
}

func (s *step) apply(p *Plan, row []any) *rowError {
	switch s.kind {
	case stepString:
		v := row[s.col]
		if v == nil {
			return nil
		}
		str, ok := v.(string)
		if !ok {
			return s.fail(v, fmt.Errorf("expected a string value, got %s", goTypeName(v)))
		}
		t := str
		if s.trim {
			t = strings.TrimSpace(t)
		}
		if s.nfc {
			t = norm.NFC.String(t)
		}
		switch s.caseOp {
		case -1:
			t = strings.ToLower(t)
		case 1:
			t = strings.ToUpper(t)
		}
		if t != str {
			// Boxing a string allocates; an unchanged value keeps its box.
			row[s.col] = t
		}
	case stepNullIf:
		v := row[s.col]
		if v == nil {
			return nil
		}
		if s.nullStr != nil {
			if str, ok := v.(string); ok {
				for _, n := range s.nullStr {
					if str == n {
						row[s.col] = nil
						return nil
					}
				}
			}
			return nil
		}
		for _, n := range s.nulls {
			if equalValue(v, n) {
				row[s.col] = nil
				return nil
			}
		}
	case stepCast:
		v, err := convert(row[s.col], &s.to, s.from, true)
		if err != nil {
			return s.fail(row[s.col], fmt.Errorf("cannot cast to %s: %w", typeString(&s.to), err))
		}
		row[s.col] = v
	case stepDefault:
		if row[s.col] == nil {
			row[s.col] = s.def
		}
	case stepExpr:
		// A failure eval tolerates needs no message: building one (the
		// expression's error, the values it read) cost more than the
		// expression. Update before-images that carry only the key fail
		// every expression over other columns.
		quiet := p.tolerant && !p.keyWork[s.col]
		out, e := p.run(s.prog, row, quiet)
		if e != nil {
			e.col = s.col
			return e
		}
		v, err := out, error(nil)
		if !hasGoType(out, s.to.Type) {
			v, err = convert(out, &s.to, 0, s.declared)
		}
		if (err != nil || v == nil && !s.to.Nullable) && quiet {
			return &rowError{col: s.col}
		}
		if err != nil {
			return &rowError{col: s.col, msg: fmt.Sprintf("%s: %s yielded %s, which is not a valid %s: %v%s",
				s.path, s.prog.src, fmtValue(out), typeString(&s.to), err, p.refValues(s.prog, row))}
		}
		if v == nil && !s.to.Nullable {
			return &rowError{col: s.col, msg: fmt.Sprintf("%s: %s yielded NULL, but column %s is not nullable (give a fallback: x ?? default)%s",
				s.path, s.prog.src, s.to.Name, p.refValues(s.prog, row))}
		}
		row[s.col] = v
	}
	return nil
}

// hasGoType reports a value that is already what convert would make of
// it, so that it keeps its interface box instead of being boxed again.
func hasGoType(v any, t pipeline.Type) bool {
	switch v.(type) {
	case string:
		return t == pipeline.TypeString
	case float64:
		return t == pipeline.TypeFloat64
	case int64:
		return t == pipeline.TypeInt64
	case int32:
		return t == pipeline.TypeInt32
	case bool:
		return t == pipeline.TypeBool
	}
	return false
}

func (s *step) fail(v any, err error) *rowError {
	return &rowError{col: s.col, msg: fmt.Sprintf("%s: value %s: %v", s.path, fmtValue(v), err)}
}

func equalValue(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return a == b
}

// run evaluates an expression over the work row.
//
// quiet: the caller only needs to know that it failed (no message).
func (p *Plan) run(prog *program, row []any, quiet bool) (any, *rowError) {
	for _, r := range prog.refs {
		v := row[r.idx]
		if v == nil && quiet && prog.strict {
			// It would fail: skip expr's panic, recover and message
			// (update before-images that carry only the key reach here
			// for every expression over other columns).
			return nil, &rowError{col: -1}
		}
		p.env[r.name] = envValue(v)
	}
	out, err := p.vm.Run(prog.prog, p.env)
	if err != nil && quiet {
		return nil, &rowError{col: -1}
	}
	if err != nil {
		msg := err.Error()
		var fe *file.Error
		if errors.As(err, &fe) {
			msg = fe.Message
			if fe.Line > 0 {
				msg += fmt.Sprintf(" (line %d, column %d of the expression)", fe.Line, fe.Column+1)
			}
		}
		return nil, &rowError{col: -1, msg: fmt.Sprintf("%s: %s: %s%s", prog.path, prog.src, msg, p.refValues(prog, row))}
	}
	return out, nil
}

// test evaluates where or reject. NULL counts as false, as in SQL's
// WHERE: a row is kept (or rejected) only when the predicate holds.
func (p *Plan) test(prog *program) (bool, *rowError) {
	out, e := p.run(prog, p.row, false)
	if e != nil {
		return false, e
	}
	switch v := out.(type) {
	case bool:
		return v, nil
	case nil:
		return false, nil
	}
	return false, &rowError{col: -1, msg: fmt.Sprintf("%s: %s yielded %s (%s), not a boolean%s",
		prog.path, prog.src, fmtValue(out), goTypeName(out), p.refValues(prog, p.row))}
}

// refValues lists the values an expression read, for dead-letter reasons.
func (p *Plan) refValues(prog *program, row []any) string {
	if len(prog.refs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" [")
	for i, r := range prog.refs {
		if i == 8 {
			b.WriteString(", ...")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.name)
		b.WriteByte('=')
		b.WriteString(fmtValue(row[r.idx]))
	}
	b.WriteByte(']')
	return b.String()
}
