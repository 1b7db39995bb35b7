// Package clean is the declarative ODS→DWD cleaning operator: per table,
// it projects, renames and drops columns, casts types, trims and
// normalises strings, replaces NULLs with defaults, filters and rejects
// rows by predicates and derives columns from expressions
// (github.com/expr-lang/expr).
//
// # Rules
//
// A job lists rules; the first whose match globs a table's
// "namespace.table" (path.Match) applies to it, and tables no rule
// matches pass through untouched:
//
//	transforms:
//	  - match: shop.orders
//	    trim: ["*"]                    # every string column
//	    lower: [email]
//	    null_if: {email: ["", "n/a"], channel_id: ["0"]}
//	    cast: {amount: "decimal(12,2)", created: timestamptz}
//	    defaults: {status: new}
//	    columns:                       # in this order; later ones see earlier ones
//	      amount: round(amount, 2)
//	      email_domain: split(email, "@")?.[1]   # ?. : NULL for a NULL email
//	      total: {expr: "amount * qty", type: "decimal(14,2)"}
//	    where: status != "test"
//	    reject: amount < 0
//	    drop: [internal_note]          # or select: [id, email, ...] (not both)
//	    rename: {created: created_at}
//
// # Order of the steps
//
// Each key names columns as they are before renaming; the steps apply in
// this order, whatever the order of the keys in the file:
//
//  1. trim, normalize (Unicode NFC), lower, upper: input string columns;
//  2. null_if: values that mean NULL, compared after step 1, so that a
//     trimmed "  " matches "";
//  3. cast: to bool, int, long, float, double, decimal(P,S), string,
//     binary, date, time, timestamp or timestamptz;
//  4. defaults: the value for NULL, read as the column's type after
//     casting;
//  5. columns: expressions, in file order, each replacing a column or
//     adding one at the end;
//  6. where (false or NULL: the row is dropped and counted), then reject
//     (true: the row goes to the dead letters, "rejected by <reject>");
//  7. select or drop: the output columns and their order (a key column
//     may not be left out);
//  8. rename.
//
// Casts truncate a fraction bound for an integer (as Go and most SQL
// engines do), round decimals half away from zero to their scale, read
// strings leniently (surrounding spaces, "1e3", "yes", RFC 3339 or
// "2006-01-02 15:04:05" times, zone-less times as UTC) and refuse casts
// that only a guess could make (a number to a timestamp). A value that
// does not cast sends its record to the dead letters.
//
// # Compile time
//
// Rule.Validate checks what needs no schema, including the syntax of
// every expression; Compile (or Rule.Compile) type-checks every
// expression against a table's schema and computes the output schema.
// Errors are *Error: their message starts with the YAML path relative to
// the rule ("columns.amount: unknown name amont (line 1, column 7 of the
// expression)"), their Rule field says which rule, and Line/Column locate
// the error inside the expression, so that the CLI can prefix
// "transforms[i]." and point at the line of the job file. The operator
// compiles each table's rule when the table's first batch (or first
// batch of a new shape) arrives; a rule that does not compile then
// fails the run with ErrIncompatibleSchema, naming the table and the
// expression.
//
// The type of a column that an expression adds is the type the checker
// infers (integers long, floats double, strings, bools, times
// timestamptz, durations time); when it cannot (the result is any, or a
// decimal whose scale is the user's choice), declare one:
// {expr: ..., type: ...}. A replaced column keeps its type when the result
// fits it (a number into a decimal or double, a string into a string), and
// otherwise takes the inferred one: `id: to_int(id)` makes a string id a
// long. A declared type converts as a cast does (and so truncates into an
// integer); without one, a fraction never silently becomes an integer:
// the row is dead-lettered instead.
//
// # Expressions
//
// An expression sees the row (after the steps before it) as variables
// named like the columns; a name that is not an identifier is read as
// $env["odd name"]. Values are Go values: bool, int32/int64,
// float32/float64, string, []byte, time.Time, time.Duration (time of
// day), and nil for NULL. Decimals are float64 inside expressions (exact
// to 15 significant digits, enough for money and ratios; a result bound
// for a decimal column is rounded back to its scale); use to_decimal to
// build an exact decimal from a string.
//
// Functions: expr's builtins (len, upper, lower, trim, trimPrefix,
// split, replace, hasPrefix, abs, ceil, floor, max, min, date, duration,
// the ?? operator and more; see expr's documentation), where the string
// and number ones return NULL for a NULL argument instead of failing, and
//
//	coalesce(a, b, ...)         the first argument that is not NULL
//	round(x), round(x, n)       half away from zero, on the decimal digits x reads as
//	now()                       the processing time, one instant per batch, UTC
//	to_int(x), to_float(x), to_string(x)
//	to_decimal(x, scale)        an exact decimal from a string or number
//	parse_time(layout, s)       Go layout: parse_time("2006-01-02", d); UTC unless s has a zone
//	regex_replace(s, re, repl)  RE2 syntax, $1 in repl
//
// NULL follows expr's rules, not SQL's: nil == x, nil in [...],
// nil contains/startsWith/matches x are false and nil != x is true (so
// `where: status != "test"` keeps NULL statuses), while an operator that
// needs a value (arithmetic, <, >, !, the condition of ?:) fails on nil,
// which dead-letters the row. Guard nullable columns: `amount ?? 0`,
// `coalesce(amount, 0)`, `amount != nil && amount > 0`.
// A where or reject that yields NULL counts as false; one that yields
// anything else that is not a boolean dead-letters the row.
//
// # Deletes and before images
//
// Deletes go through steps 1–5, 7 and 8 on their before image, so that
// the key they delete by is cleaned, cast and renamed exactly as it was
// when the row was written; they are never filtered or rejected: a DWD
// row must stay deletable whatever the rule says about its values. A
// step that fails on a column outside the key leaves it NULL in a before
// image (of a delete or an update) instead of dead-lettering the record.
//
// An update whose new image fails where becomes a delete of its row
// (counted as Retracted): its key may hold a row that passed the filter
// before, and keeping it would leave a row the filter excludes. Inserts
// and snapshot reads that fail where are dropped. A table without a key
// drops filtered updates too.
//
// # Output and errors
//
// The operator emits, per input batch, one batch of the output schema
// (one stable *Schema per input *Schema, with the key following renames)
// holding fresh records, then, if any record failed, one batch of
// pipeline.DeadLetterSchema with pipeline.DeadLetter records (stage
// "clean", the input record as raw, and a reason naming the step, the
// column or expression, the values read and the error). Batches of
// pipeline.DeadLetterTable pass through. Stats counts records filtered,
// retracted, rejected and dead-lettered.
//
// The operator is stateless: Snapshot returns nil and Open ignores its
// state. Like every operator it is driven by one goroutine; only Stats
// may be called from others.
package clean
