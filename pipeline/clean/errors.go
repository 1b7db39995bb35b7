package clean

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/file"
)

// ErrIncompatibleSchema marks a rule that does not compile against the
// schema a table's batches arrived with, typically because the table's
// shape changed while the job ran (a column the rule names was dropped
// or changed type). Restarting does not help: the job file must change.
var ErrIncompatibleSchema = errors.New("clean: rule does not compile against the table's schema")

// Error is a rule that does not validate or compile. Error() starts with
// the YAML path of the offending key relative to the rule ("where",
// "cast.price", "columns.amount"), so that a caller holding the rule's own
// path can prefix it ("transforms[3].") and find the line in the file.
type Error struct {
	// Rule is the index of the rule in the slice given to Validate,
	// Compile or New; -1 when the rule was checked on its own.
	Rule int
	// Path is the YAML path relative to the rule.
	Path string
	// Msg says what is wrong, without the path.
	Msg string
	// Expr is the expression's source when the error is in one.
	Expr string
	// Line and Column locate the error inside Expr, both 1-based; zero
	// when the error has no position (a type mismatch of the whole
	// expression, say). A caller that knows where the expression starts
	// in the file can add them up to point at the exact character.
	Line, Column int
	Err          error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d of the expression)", e.Line, e.Column)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func errf(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Rule: -1, Path: path, Msg: msg, Err: errors.New(msg)}
}

func wrapf(path string, err error, format string, args ...any) *Error {
	return &Error{Rule: -1, Path: path, Msg: fmt.Sprintf(format, args...), Err: err}
}

// exprError turns an expr-lang error into an Error at path, keeping the
// position inside the expression but not expr's multi-line snippet: the
// CLI draws its own from the job file.
func exprError(path, src string, err error) *Error {
	e := &Error{Rule: -1, Path: path, Expr: src, Msg: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Msg = fe.Message
		if fe.Line > 0 {
			// Bind counts Line from 1 and Column from 0.
			e.Line, e.Column = fe.Line, fe.Column+1
		}
	}
	return e
}

// atRule records which rule an error belongs to.
func atRule(err error, i int) error {
	var e *Error
	if errors.As(err, &e) {
		e.Rule = i
	}
	return err
}
