package main

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// This file checks the parsed YAML against the Go types of JobConfig
// before goccy decodes it. goccy alone reports unknown keys without the
// allowed ones, truncates 1.5 into an int without a word, and loses the
// position of a bad duration; the check below knows the expected shape of
// every key and where it is, so each error can say both.

var (
	typeOfJobConfig    = reflect.TypeFor[JobConfig]()
	typeOfSourceConfig = reflect.TypeFor[SourceConfig]()
	typeOfDuration     = reflect.TypeFor[time.Duration]()
)

// maxDepth bounds recursion through aliases; a job file is shallow.
const maxDepth = 64

// yamlField is a struct field as goccy names it; index is its path
// through inlined embedded structs (reflect.Type.FieldByIndex).
type yamlField struct {
	name  string
	index []int
}

// yamlFields lists the decodable fields of struct type t with goccy's
// naming rules: the yaml tag, else the json tag, else the lowercased name;
// the fields of an embedded struct tagged ",inline" count as t's own.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && strings.Contains(opts, "inline") {
			for _, in := range yamlFields(f.Type) {
				out = append(out, yamlField{name: in.name, index: append([]int{i}, in.index...)})
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{name: name, index: []int{i}})
	}
	return out
}

func yamlKeys(t reflect.Type) []string {
	var out []string
	for _, f := range yamlFields(t) {
		out = append(out, f.name)
	}
	return out
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for _, f := range yamlFields(t) {
		if f.name == key {
			return t.FieldByIndex(f.index), true
		}
	}
	return reflect.StructField{}, false
}

// decodesItself reports types that goccy hands to their own unmarshaler;
// their shape is theirs to check.
func decodesItself(t reflect.Type) bool {
	if t == typeOfDuration {
		return false
	}
	pt := reflect.PointerTo(t)
	for _, it := range []reflect.Type{
		reflect.TypeFor[yaml.BytesUnmarshaler](),
		reflect.TypeFor[yaml.InterfaceUnmarshaler](),
		reflect.TypeFor[yaml.BytesUnmarshalerContext](),
		reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
		reflect.TypeFor[yaml.NodeUnmarshaler](),
		reflect.TypeFor[yaml.NodeUnmarshalerContext](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	} {
		if pt.Implements(it) {
			return true
		}
	}
	return t == reflect.TypeFor[time.Time]()
}

// check verifies that node n can decode into type t; path is the YAML path
// of n for messages ("" for the document root).
func (l *loader) check(n ast.Node, t reflect.Type, path string, depth int) error {
	if depth > maxDepth {
		return l.errAt(n, "%s: nested too deeply (an alias that refers to itself?)", displayPath(path))
	}
	n = l.resolve(n, depth)
	if n == nil || n.Type() == ast.NullType {
		return nil // an empty value leaves the field at its default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if decodesItself(t) {
		return nil
	}
	if t == typeOfDuration {
		s, ok := n.(*ast.StringNode)
		if ok {
			if _, err := time.ParseDuration(s.Value); err == nil {
				return nil
			}
		}
		return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		return l.eachEntry(m, t, path, depth, func(mv *ast.MappingValueNode, key string) error {
			f, ok := fieldByKey(t, key)
			if !ok {
				return l.errAt(mv.Key, "%s", unknownField(t, path, key))
			}
			return l.check(mv.Value, f.Type, joinPath(path, key), depth+1)
		})
	case reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		return l.eachEntry(m, t, path, depth, func(mv *ast.MappingValueNode, key string) error {
			return l.check(mv.Value, t.Elem(), joinPath(path, key), depth+1)
		})
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return l.checkScalar(n, path, t)
		}
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		for i, v := range s.Values {
			if err := l.check(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		return l.checkScalar(n, path, t)
	case reflect.Bool:
		if n.Type() != ast.BoolType {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		in, ok := n.(*ast.IntegerNode)
		if !ok {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		// goccy parses non-negative integers as uint64, negative ones as
		// int64.
		var overflow bool
		switch v := in.Value.(type) {
		case int64:
			overflow = reflect.New(t).Elem().OverflowInt(v)
		case uint64:
			overflow = v > math.MaxInt64 || reflect.New(t).Elem().OverflowInt(int64(v))
		default:
			overflow = true
		}
		if overflow {
			return l.errAt(n, "%s: %s is out of range for %s", displayPath(path), in.Token.Value, t.Kind())
		}
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		in, ok := n.(*ast.IntegerNode)
		if !ok {
			return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
		}
		var u uint64
		switch v := in.Value.(type) {
		case int64:
			if v < 0 {
				return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
			}
			u = uint64(v)
		case uint64:
			u = v
		}
		if reflect.New(t).Elem().OverflowUint(u) {
			return l.errAt(n, "%s: %s is out of range for %s", displayPath(path), in.Token.Value, t.Kind())
		}
		return nil
	case reflect.Float32, reflect.Float64:
		switch n.Type() {
		case ast.IntegerType, ast.FloatType, ast.InfinityType, ast.NanType:
			return nil
		}
		// goccy reads 1e3 as a plain string but decodes it into a float;
		// a quoted "1e3" is meant as a string, though.
		if sn, ok := n.(*ast.StringNode); ok && sn.Token.Type == token.StringType {
			if _, err := strconv.ParseFloat(sn.Value, 64); err == nil {
				return nil
			}
		}
		return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
	}
	return nil // interfaces and anything else: goccy decides
}

// checkScalar accepts any scalar for a string: YAML's 123 or true are fine
// as strings, a mapping or a list is not.
func (l *loader) checkScalar(n ast.Node, path string, t reflect.Type) error {
	switch n.Type() {
	case ast.MappingType, ast.SequenceType:
		return l.errAt(n, "%s: expected %s, got %s", displayPath(path), describe(t), gotNode(n))
	}
	return nil
}

// resolve strips tags and anchors and follows aliases.
func (l *loader) resolve(n ast.Node, depth int) ast.Node {
	for range maxDepth - depth + 1 {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			n = l.anchor(keyString(v.Value))
		default:
			return n
		}
	}
	return n
}

// anchor finds the value of anchor name in the document. Aliases are rare
// in job files, so a search per alias beats keeping an index.
func (l *loader) anchor(name string) ast.Node {
	var found ast.Node
	ast.Walk(visitFunc(func(n ast.Node) bool {
		if a, ok := n.(*ast.AnchorNode); ok && found == nil && keyString(a.Name) == name {
			found = a.Value
		}
		return found == nil
	}), l.body)
	return found
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

func keyString(n ast.Node) string {
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return n.String()
}

func unknownField(t reflect.Type, path, key string) string {
	allowed := strings.Join(yamlKeys(t), ", ")
	switch {
	case t == typeOfSourceConfig:
		return fmt.Sprintf("unknown source kind %q (expected one of: %s)", key, allowed)
	case path == "":
		return fmt.Sprintf("unknown field %q at top level (expected one of: %s)", key, allowed)
	}
	return fmt.Sprintf("unknown field %q in %s (expected one of: %s)", key, path, allowed)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func displayPath(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// describe names the shape a value of type t must have.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == typeOfDuration {
		return "a duration such as 500ms, 30s, 5m or 1h30m"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a mapping with keys " + strings.Join(yamlKeys(t), ", ")
	case reflect.Map:
		return "a mapping of names to " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string"
		}
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct && e != typeOfDuration {
			return "a list of mappings with keys " + strings.Join(yamlKeys(e), ", ")
		}
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describe(e), "a "), "an ") + "s"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a value"
}

// gotNode describes what the file has, quoting short scalars.
func gotNode(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType, ast.LiteralType:
		v := keyString(n)
		if s, ok := n.(*ast.StringNode); ok {
			v = s.Value
		}
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return "string " + strconv.Quote(v)
	case ast.IntegerType, ast.FloatType, ast.InfinityType, ast.NanType:
		return "number " + keyString(n)
	case ast.BoolType:
		return "boolean " + keyString(n)
	}
	return strings.ToLower(n.Type().String())
}

// nodePos returns the 1-based line and column where n starts, or 0, 0.
// A mapping's own token is the ":" of its first entry, so its first key
// stands for it.
func nodePos(n ast.Node) (line, col int) {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n == nil {
		return 0, 0
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// pathSegments splits "sink.tables[0].match" into "sink", "tables", 0,
// "match" (ints for indexes). It returns nil for a malformed path.
func pathSegments(path string) []any {
	var out []any
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name == "" {
			return nil
		}
		out = append(out, name)
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 0 {
				return nil
			}
			out = append(out, i)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

// typeHasPath reports whether path names a field reachable in type t.
func typeHasPath(t reflect.Type, path string) bool {
	segs := pathSegments(path)
	if segs == nil {
		return false
	}
	for _, s := range segs {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch s := s.(type) {
		case string:
			switch t.Kind() {
			case reflect.Struct:
				f, ok := fieldByKey(t, s)
				if !ok {
					return false
				}
				t = f.Type
			case reflect.Map:
				t = t.Elem()
			default:
				return false
			}
		case int:
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return false
			}
			t = t.Elem()
		}
	}
	return true
}

// lookup returns the node that stands for path in the file: the key of a
// mapping entry (its line is where a user looks) or a list item; nil when
// the path is not in the file.
func (l *loader) lookup(path string) ast.Node {
	segs := pathSegments(path)
	if segs == nil {
		return nil
	}
	n := l.body
	var at ast.Node
	for _, s := range segs {
		n = l.resolve(n, 0)
		switch s := s.(type) {
		case string:
			m, ok := n.(*ast.MappingNode)
			if !ok {
				return nil
			}
			var next ast.Node
			for _, mv := range m.Values {
				if keyString(mv.Key) == s {
					at, next = mv.Key, mv.Value
					break
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case int:
			sq, ok := n.(*ast.SequenceNode)
			if !ok || s >= len(sq.Values) {
				return nil
			}
			n = sq.Values[s]
			at = n
		}
	}
	return at
}

// lookupNearest is lookup, falling back to the closest enclosing path that
// is in the file, and to the document itself.
func (l *loader) lookupNearest(path string) ast.Node {
	for path != "" {
		if n := l.lookup(path); n != nil {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return l.body
}

// eachEntry calls fn for every key of a mapping checked against t. A merge
// key (<<: *anchor) brings in another mapping of the same shape, which is
// checked against t as a whole instead.
func (l *loader) eachEntry(m *ast.MappingNode, t reflect.Type, path string, depth int, fn func(mv *ast.MappingValueNode, key string) error) error {
	for _, mv := range m.Values {
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			if err := l.check(mv.Value, t, path, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := fn(mv, keyString(mv.Key)); err != nil {
			return err
		}
	}
	return nil
}
