package mysql

import (
	"strings"
	"unicode/utf8"
)

// A small reader of the DDL statements that matter to a binlog source:
// which tables a statement creates, alters, renames, truncates or drops,
// and which columns an ALTER TABLE renames. Everything else about a
// statement (types, defaults, indexes) is left to the table map events
// that follow it, which describe the new shape exactly.

type ddlKind uint8

const (
	ddlNone ddlKind = iota
	ddlAlter
	ddlCreate
	ddlDrop
	ddlTruncate
	ddlRename
	ddlDropDatabase
)

func (k ddlKind) String() string {
	switch k {
	case ddlAlter:
		return "ALTER TABLE"
	case ddlCreate:
		return "CREATE TABLE"
	case ddlDrop:
		return "DROP TABLE"
	case ddlTruncate:
		return "TRUNCATE TABLE"
	case ddlRename:
		return "RENAME TABLE"
	case ddlDropDatabase:
		return "DROP DATABASE"
	}
	return "statement"
}

// tableRef names a table; db is empty when the statement leaves it to the
// session's current database.
type tableRef struct {
	db, name string
}

func (r tableRef) in(current string) tableRef {
	if r.db == "" {
		r.db = current
	}
	return r
}

// ddlStmt is what parseDDL understood of a statement.
type ddlStmt struct {
	kind ddlKind
	// tables are the tables the statement acts on: the altered, created,
	// truncated or dropped ones (RENAME TABLE: see renames).
	tables []tableRef
	// renames are table renames in statement order: RENAME TABLE a TO b,
	// c TO d, or ALTER TABLE a RENAME TO b.
	renames [][2]tableRef
	// columns are the column renames of an ALTER TABLE, new name -> old
	// name (RENAME COLUMN a TO b, CHANGE [COLUMN] a b ...).
	columns map[string]string
	// backfilled are columns an ALTER TABLE adds with a value for the
	// rows that exist (a DEFAULT, or NOT NULL's implicit one), which the
	// binlog does not carry.
	backfilled []string
	// temporary: CREATE/DROP TEMPORARY TABLE, which no binlog row event
	// of a captured table is about.
	temporary bool
	// replace: CREATE OR REPLACE TABLE.
	replace bool
	// db is the database of DROP DATABASE.
	db string
}

type tokKind uint8

const (
	tokWord   tokKind = iota + 1 // a bare word: keyword, name or number
	tokQuoted                    // a `quoted` name
	tokString                    // a 'string' or "string"
	tokPunct                     // one character of punctuation
)

type token struct {
	kind tokKind
	text string
}

// is reports whether t is the bare keyword kw (case-insensitive).
func (t token) is(kw string) bool { return t.kind == tokWord && strings.EqualFold(t.text, kw) }

func (t token) punct(c byte) bool { return t.kind == tokPunct && len(t.text) == 1 && t.text[0] == c }

// name reports whether t can be an identifier.
func (t token) name() bool { return t.kind == tokWord || t.kind == tokQuoted }

// tokenize splits a statement into tokens, dropping comments. The
// contents of versioned comments (/*!50100 ... */, /*M!100100 ... */)
// are code to the server, and so to the tokenizer.
func tokenize(q string) []token {
	var out []token
	inVersioned := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || (c == '-' && i+1 < len(q) && q[i+1] == '-' && (i+2 == len(q) || q[i+2] <= ' ')):
			if j := strings.IndexByte(q[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(q)
			}
		case strings.HasPrefix(q[i:], "/*!") || strings.HasPrefix(q[i:], "/*M!"):
			i += 3
			if q[i-1] == 'M' {
				i++
			}
			for i < len(q) && q[i] >= '0' && q[i] <= '9' {
				i++
			}
			inVersioned++
		case strings.HasPrefix(q[i:], "/*"):
			if j := strings.Index(q[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(q)
			}
		case inVersioned > 0 && strings.HasPrefix(q[i:], "*/"):
			inVersioned--
			i += 2
		case c == '`':
			var b strings.Builder
			i++
			for i < len(q) {
				if q[i] == '`' {
					if i+1 < len(q) && q[i+1] == '`' {
						b.WriteByte('`')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(q[i])
				i++
			}
			out = append(out, token{tokQuoted, b.String()})
		case c == '\'' || c == '"':
			var b strings.Builder
			i++
			for i < len(q) {
				if q[i] == '\\' && i+1 < len(q) {
					b.WriteByte(q[i+1])
					i += 2
					continue
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c {
						b.WriteByte(c)
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(q[i])
				i++
			}
			out = append(out, token{tokString, b.String()})
		case isWordByte(c):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				if q[j] >= utf8.RuneSelf {
					_, n := utf8.DecodeRuneInString(q[j:])
					j += n
					continue
				}
				j++
			}
			out = append(out, token{tokWord, q[i:j]})
			i = j
		default:
			out = append(out, token{tokPunct, q[i : i+1]})
			i++
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= utf8.RuneSelf
}

// parser walks the tokens of one statement.
type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

// accept consumes the keywords kws if they come next, all of them.
func (p *parser) accept(kws ...string) bool {
	for j, kw := range kws {
		if p.i+j >= len(p.toks) || !p.toks[p.i+j].is(kw) {
			return false
		}
	}
	p.i += len(kws)
	return true
}

// table reads [db.]name.
func (p *parser) table() (tableRef, bool) {
	t := p.next()
	if !t.name() {
		return tableRef{}, false
	}
	if p.peek().punct('.') {
		p.next()
		n := p.next()
		if !n.name() {
			return tableRef{}, false
		}
		return tableRef{db: t.text, name: n.text}, true
	}
	return tableRef{name: t.text}, true
}

// parseDDL reads the statement of a binlog query event. A statement it
// does not know, or cannot follow, is ddlNone.
func parseDDL(q string) ddlStmt {
	p := &parser{toks: tokenize(q)}
	switch {
	case p.accept("ALTER"):
		return p.alter()
	case p.accept("CREATE"):
		return p.create()
	case p.accept("DROP"):
		return p.drop()
	case p.accept("TRUNCATE"):
		p.accept("TABLE")
		if t, ok := p.table(); ok {
			return ddlStmt{kind: ddlTruncate, tables: []tableRef{t}}
		}
	case p.accept("RENAME"):
		if !p.accept("TABLE") && !p.accept("TABLES") {
			return ddlStmt{}
		}
		p.accept("IF", "EXISTS")
		st := ddlStmt{kind: ddlRename}
		for {
			from, ok := p.table()
			if !ok || !p.accept("TO") {
				return ddlStmt{}
			}
			to, ok := p.table()
			if !ok {
				return ddlStmt{}
			}
			st.renames = append(st.renames, [2]tableRef{from, to})
			if !p.peek().punct(',') {
				break
			}
			p.next()
		}
		return st
	}
	return ddlStmt{}
}

func (p *parser) alter() ddlStmt {
	p.accept("ONLINE")
	p.accept("IGNORE")
	if !p.accept("TABLE") {
		return ddlStmt{} // ALTER DATABASE, USER, VIEW, ...
	}
	p.accept("IF", "EXISTS")
	t, ok := p.table()
	if !ok {
		return ddlStmt{}
	}
	st := ddlStmt{kind: ddlAlter, tables: []tableRef{t}}
	if p.accept("WAIT") {
		p.next()
	} else {
		p.accept("NOWAIT")
	}
	// The alter specifications, split at top-level commas.
	for p.i < len(p.toks) {
		start, depth := p.i, 0
		for p.i < len(p.toks) {
			tk := p.toks[p.i]
			if tk.punct('(') {
				depth++
			} else if tk.punct(')') {
				depth--
			} else if depth == 0 && (tk.punct(',') || tk.punct(';')) {
				break
			}
			p.i++
		}
		spec := &parser{toks: p.toks[start:p.i]}
		p.i++ // the comma
		switch {
		case spec.accept("RENAME", "COLUMN"):
			spec.accept("IF", "EXISTS")
			old := spec.next()
			if old.name() && spec.accept("TO") {
				if nw := spec.next(); nw.name() {
					st.addColumnRename(old.text, nw.text)
				}
			}
		case spec.accept("RENAME", "INDEX"), spec.accept("RENAME", "KEY"):
		case spec.accept("RENAME"):
			if !spec.accept("TO") {
				spec.accept("AS")
			}
			if to, ok := spec.table(); ok {
				st.renames = append(st.renames, [2]tableRef{t, to})
			}
		case spec.accept("ADD"):
			if spec.peek().is("INDEX") || spec.peek().is("KEY") || spec.peek().is("PRIMARY") || spec.peek().is("UNIQUE") ||
				spec.peek().is("CONSTRAINT") || spec.peek().is("FOREIGN") || spec.peek().is("FULLTEXT") || spec.peek().is("SPATIAL") ||
				spec.peek().is("PARTITION") || spec.peek().is("CHECK") || spec.peek().is("PERIOD") || spec.peek().is("SYSTEM") {
				break
			}
			spec.accept("COLUMN")
			spec.accept("IF", "NOT", "EXISTS")
			if spec.peek().punct('(') {
				// ADD (a INT, b INT): the definitions, split at commas.
				spec.next()
				var defs [][]token
				depth, from := 0, spec.i
				for ; spec.i < len(spec.toks); spec.i++ {
					tk := spec.toks[spec.i]
					switch {
					case tk.punct('('):
						depth++
					case tk.punct(')') && depth == 0, tk.punct(',') && depth == 0:
						defs = append(defs, spec.toks[from:spec.i])
						from = spec.i + 1
					case tk.punct(')'):
						depth--
					}
				}
				for _, d := range defs {
					st.addColumnDef(d)
				}
			} else {
				st.addColumnDef(spec.toks[spec.i:])
			}
		case spec.accept("CHANGE"):
			spec.accept("COLUMN")
			spec.accept("IF", "EXISTS")
			old, nw := spec.next(), spec.next()
			if old.name() && nw.name() {
				st.addColumnRename(old.text, nw.text)
			}
		}
	}
	return st
}

// addColumnDef notes a column definition of ADD COLUMN that gives the
// existing rows a value: DEFAULT with something else than NULL, or NOT
// NULL (whose implicit default is 0 or the empty string).
func (st *ddlStmt) addColumnDef(def []token) {
	if len(def) == 0 || !def[0].name() {
		return
	}
	fill := false
	for i := 1; i < len(def); i++ {
		switch {
		case def[i].is("DEFAULT") && i+1 < len(def) && !def[i+1].is("NULL"):
			fill = true
		case def[i].is("NOT") && i+1 < len(def) && def[i+1].is("NULL"):
			fill = true
		case def[i].is("AS") || def[i].is("GENERATED"):
			fill = true // a generated column has values for every row
		}
	}
	if fill {
		st.backfilled = append(st.backfilled, def[0].text)
	}
}

func (st *ddlStmt) addColumnRename(old, nw string) {
	if strings.EqualFold(old, nw) {
		return
	}
	if st.columns == nil {
		st.columns = map[string]string{}
	}
	// The clauses of one statement name the columns as they were before
	// it (RENAME COLUMN a TO b, RENAME COLUMN b TO a swaps them).
	st.columns[nw] = old
}

func (p *parser) create() ddlStmt {
	st := ddlStmt{kind: ddlCreate}
	if p.accept("OR", "REPLACE") {
		st.replace = true
	}
	if p.accept("TEMPORARY") {
		st.temporary = true
	}
	if !p.accept("TABLE") {
		return ddlStmt{}
	}
	p.accept("IF", "NOT", "EXISTS")
	t, ok := p.table()
	if !ok {
		return ddlStmt{}
	}
	st.tables = []tableRef{t}
	return st
}

func (p *parser) drop() ddlStmt {
	if p.accept("DATABASE") || p.accept("SCHEMA") {
		p.accept("IF", "EXISTS")
		if t := p.next(); t.name() {
			return ddlStmt{kind: ddlDropDatabase, db: t.text}
		}
		return ddlStmt{}
	}
	st := ddlStmt{kind: ddlDrop}
	if p.accept("TEMPORARY") {
		st.temporary = true
	}
	if !p.accept("TABLE") && !p.accept("TABLES") {
		return ddlStmt{}
	}
	p.accept("IF", "EXISTS")
	for {
		t, ok := p.table()
		if !ok {
			break
		}
		st.tables = append(st.tables, t)
		if !p.peek().punct(',') {
			break
		}
		p.next()
	}
	if len(st.tables) == 0 {
		return ddlStmt{}
	}
	return st
}
