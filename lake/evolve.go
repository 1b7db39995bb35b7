package lake

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-cdc/sluice/pipeline"
)

// Schema evolution.
//
// A batch whose schema is a new version of its table's (a new
// *pipeline.Schema pointer of a different shape) changes the Iceberg
// tables it is written to at that point of the stream. The change is not
// committed on its own: the rows buffered under the old shape are flushed
// as a segment first, then the change is staged in memory (the target
// writes its next files against the staged schema, whose new field ids
// are what Iceberg will assign), and it travels in the prepared
// checkpoint as a list of operations on the segment it precedes. Commit
// replays them in the checkpoint's transaction, between the segments, and
// checks that the result is the schema that was staged. So a schema change
// becomes visible atomically with the rows that follow it, is covered by
// the checkpoint's idempotency check like the rows, and a recovery that
// commits from the manifest applies it exactly as the run that prepared it
// would have. A crash before the manifest loses the staged change with the
// rows, and the source replays both.
//
// iceberg-go takes one schema update per transaction (each asserts the
// table's current schema id), so the changes of one checkpoint are
// staged one after the other but committed as one: the difference, by
// field id, between the committed schema and the last staged one, applied
// where the first change happened. Files written under an intermediate
// schema stay right under the last one: their fields keep their ids (a
// renamed or widened column), or are gone (a dropped one). A column both
// added and dropped within one checkpoint keeps its field, renamed
// "_sluice_dropped_<id>", until the next checkpoint deletes it: its id is
// taken by files already written, and new columns must get the next ones.
//
// What Iceberg can express, and how:
//   - a new column: added as optional, after the column it follows at the
//     source (rows written before it read as NULL);
//   - a renamed column (pipeline.Schema.Renamed): renamed by field id, so
//     earlier rows keep their values under the new name;
//   - a dropped column: deleted from the schema (the data files keep the
//     values; a later column of the same name is a new field);
//   - a wider type: int to long, float to double, decimal(P,S) to
//     decimal(P',S) with P' > P;
//   - a narrower type (the reverse): the table keeps the wider type, the
//     values fit;
//   - NOT NULL dropped: the column becomes optional (the reverse keeps it
//     optional).
//
// Anything else (another type, a changed or dropped primary key column)
// is an error naming the table, the column and the change: the rows that
// follow cannot be written faithfully.

// errSchemaChange marks a change of a source table's shape that the lake
// cannot express.
var errSchemaChange = errors.New("schema change cannot be applied to the lake table")

// schemaOp is one operation of a schema change, by column name. The
// operations of one group are applied by one UpdateSchema and name the
// columns as they are before the group (added columns by their new name).
type schemaOp struct {
	Op string `json:"op"` // add, rename, delete, widen, optional, move
	// Name is the column the operation applies to.
	Name string `json:"name"`
	// To is a rename's new name.
	To string `json:"to,omitempty"`
	// Field is an added column, or a widened column with its new type.
	Field *iceberg.NestedField `json:"field,omitempty"`
	// After places an added (or moved) column after this one; First
	// places it first.
	After string `json:"after,omitempty"`
	First bool   `json:"first,omitempty"`
}

func (o schemaOp) String() string {
	switch o.Op {
	case "add":
		return fmt.Sprintf("add %s %s", o.Name, o.Field.Type)
	case "rename":
		return fmt.Sprintf("rename %s to %s", o.Name, o.To)
	case "widen":
		return fmt.Sprintf("widen %s to %s", o.Name, o.Field.Type)
	case "move":
		if o.First {
			return fmt.Sprintf("move %s first", o.Name)
		}
		return fmt.Sprintf("move %s after %s", o.Name, o.After)
	}
	return o.Op + " " + o.Name
}

// applyOps stages operations in tx, as one schema update. Deletes go
// first, so that a rename or an add may take a deleted name; adds take
// new field ids in their order; moves go last, so that an added column
// may follow another.
func applyOps(tx *table.Transaction, ops []schemaOp) error {
	us := tx.UpdateSchema(true, false)
	for _, o := range ops {
		if o.Op == "delete" {
			us.DeleteColumn([]string{o.Name})
		}
	}
	for _, o := range ops {
		switch o.Op {
		case "delete":
		case "rename":
			us.RenameColumn([]string{o.Name}, o.To)
		case "widen":
			if o.Field == nil {
				return fmt.Errorf("schema operation %q without a type", o.Op)
			}
			us.UpdateColumn([]string{o.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Valid: true, Val: o.Field.Type}})
		case "optional":
			us.UpdateColumn([]string{o.Name}, table.ColumnUpdate{Required: iceberg.Optional[bool]{Valid: true, Val: false}})
		case "add":
			if o.Field == nil {
				return fmt.Errorf("schema operation %q without a type", o.Op)
			}
			us.AddColumn([]string{o.Name}, o.Field.Type, "", false, nil)
		case "move":
		default:
			return fmt.Errorf("unknown schema operation %q", o.Op)
		}
	}
	for _, o := range ops {
		switch {
		case o.Op != "add" && o.Op != "move":
		case o.First:
			us.MoveFirst([]string{o.Name})
		case o.After != "":
			us.MoveAfter([]string{o.Name}, []string{o.After})
		}
	}
	return us.Commit()
}

// stageOps returns tbl with the operations applied, uncommitted.
func stageOps(tbl *table.Table, ops []schemaOp) (*table.Table, error) {
	tx := tbl.NewTransaction()
	if err := applyOps(tx, ops); err != nil {
		return nil, err
	}
	st, err := tx.StagedTable()
	if err != nil {
		return nil, err
	}
	return st.Table, nil
}

// ghostPrefix names a column added and dropped within one checkpoint,
// kept until the next (see above).
const ghostPrefix = "_sluice_dropped_"

func ghostName(id int) string { return fmt.Sprintf("%s%d", ghostPrefix, id) }

// diffOps returns the one schema update that turns base (of a table whose
// last assigned column id is lastID) into target, with target's field
// ids. It fails when target's new fields do not take the ids that follow
// lastID in order, which staging guarantees.
func diffOps(base *iceberg.Schema, lastID int, target *iceberg.Schema) ([]schemaOp, error) {
	var ops []schemaOp
	baseNames := map[string]bool{}
	for _, f := range base.Fields() {
		baseNames[f.Name] = true
		g, ok := target.FindFieldByID(f.ID)
		if !ok {
			ops = append(ops, schemaOp{Op: "delete", Name: f.Name})
			continue
		}
		if g.Name != f.Name {
			ops = append(ops, schemaOp{Op: "rename", Name: f.Name, To: g.Name})
		}
		if !g.Type.Equals(f.Type) {
			if !widens(f.Type, g.Type) {
				return nil, fmt.Errorf("column %s cannot change from %s to %s", f.Name, f.Type, g.Type)
			}
			ops = append(ops, schemaOp{Op: "widen", Name: f.Name, Field: &iceberg.NestedField{Name: f.Name, Type: g.Type}})
		}
		if f.Required && !g.Required {
			ops = append(ops, schemaOp{Op: "optional", Name: f.Name})
		} else if !f.Required && g.Required {
			return nil, fmt.Errorf("column %s cannot become required", f.Name)
		}
	}
	fields := target.Fields()
	var added []int // indexes into fields
	for i, g := range fields {
		if _, ok := base.FindFieldByID(g.ID); !ok {
			added = append(added, i)
		}
	}
	slices.SortFunc(added, func(a, b int) int { return fields[a].ID - fields[b].ID })
	byIdx := map[int]schemaOp{}
	for n, i := range added {
		g := fields[i]
		if g.ID != lastID+1+n {
			return nil, fmt.Errorf("new column %s has field id %d, the table would assign %d", g.Name, g.ID, lastID+1+n)
		}
		if g.Required {
			return nil, fmt.Errorf("new column %s is required", g.Name)
		}
		op := schemaOp{Op: "add", Name: g.Name, Field: &iceberg.NestedField{Name: g.Name, Type: g.Type}}
		switch {
		case baseNames[g.Name]:
			// Its name is a base column's (deleted or renamed in the same
			// update), which a move would find instead: left unplaced.
		case i == 0:
			op.First = true
		default:
			p := fields[i-1]
			if bf, ok := base.FindFieldByID(p.ID); ok {
				op.After = bf.Name // moves name base columns as they were
			} else if !baseNames[p.Name] {
				op.After = p.Name
			} // else: an added column that takes a base column's name; left unplaced
		}
		byIdx[i] = op
	}
	// Adds in id order (ids are assigned in that order), then moves in the
	// target's order (a column may follow one added after it).
	for _, i := range added {
		op := byIdx[i]
		ops = append(ops, schemaOp{Op: "add", Name: op.Name, Field: op.Field})
	}
	for i := range fields {
		if op, ok := byIdx[i]; ok && (op.First || op.After != "") {
			op.Op, op.Field = "move", nil
			ops = append(ops, op)
		}
	}
	return ops, nil
}

// sameFields reports whether two schemas have the same fields by id (name,
// type, requiredness) and the same identifier fields; order aside.
func sameFields(a, b *iceberg.Schema) bool {
	if len(a.Fields()) != len(b.Fields()) || !slices.Equal(sortedInts(a.IdentifierFieldIDs), sortedInts(b.IdentifierFieldIDs)) {
		return false
	}
	for _, f := range a.Fields() {
		g, ok := b.FindFieldByID(f.ID)
		if !ok || g.Name != f.Name || !g.Type.Equals(f.Type) || g.Required != f.Required {
			return false
		}
	}
	return true
}

func sortedInts(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func isMetaColumn(mode Mode, name string) bool {
	return mode == ModeAppend && (name == colOp || name == colPos || name == colEventTime)
}

// widens reports whether Iceberg can promote a column of type from to type to.
func widens(from, to iceberg.Type) bool {
	switch f := from.(type) {
	case iceberg.Int32Type:
		_, ok := to.(iceberg.Int64Type)
		return ok
	case iceberg.Float32Type:
		_, ok := to.(iceberg.Float64Type)
		return ok
	case iceberg.DecimalType:
		t, ok := to.(iceberg.DecimalType)
		return ok && t.Scale() == f.Scale() && t.Precision() > f.Precision()
	}
	return false
}

// planEvolution returns the operations that make a table of schema cur
// take rows of source schema ps. prev is the source schema the table took
// so far, nil when the table is opened: then columns are only added,
// renamed and widened, never deleted (a table may have more columns than
// its source). renames maps new source column names to old ones.
func planEvolution(target string, mode Mode, cur *iceberg.Schema, prev, ps *pipeline.Schema, renames map[string]string) ([]schemaOp, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: table %s (source %s, schema version %d): %s", errSchemaChange, target, ps.Table, ps.Version, fmt.Sprintf(format, args...))
	}
	byName := map[string]iceberg.NestedField{}
	var data []iceberg.NestedField
	for _, f := range cur.Fields() {
		if isMetaColumn(mode, f.Name) {
			continue
		}
		byName[f.Name] = f
		data = append(data, f)
	}
	isKey := map[int]bool{}
	for _, k := range ps.Key {
		isKey[k] = true
	}

	var ops []schemaOp
	match := make([]*iceberg.NestedField, len(ps.Columns)) // source column -> table field
	claimed := map[int]bool{}
	// Renames first: the old column's field carries over to the new name,
	// even when the old name is taken again by a new column.
	for i, c := range ps.Columns {
		old, ok := renames[c.Name]
		if !ok || old == c.Name {
			continue
		}
		f, ok := byName[old]
		if !ok || claimed[f.ID] {
			continue
		}
		if _, taken := byName[c.Name]; taken {
			// The table has both names: the rename was applied already, or
			// the names were swapped, which cannot be told from a new
			// column; match by name below.
			continue
		}
		ops = append(ops, schemaOp{Op: "rename", Name: old, To: c.Name})
		match[i] = &f
		claimed[f.ID] = true
	}
	for i, c := range ps.Columns {
		if match[i] != nil {
			continue
		}
		if f, ok := byName[c.Name]; ok && !claimed[f.ID] {
			match[i] = &f
			claimed[f.ID] = true
		}
	}

	// Types and nullability of the columns the table has.
	for i, c := range ps.Columns {
		f := match[i]
		if f == nil {
			continue
		}
		want, err := icebergType(c)
		if err != nil {
			return nil, fail("%v", err)
		}
		switch {
		case f.Type.Equals(want), widens(want, f.Type):
			// Same type, or narrower values that the table's type holds.
		case widens(f.Type, want) && mode == ModeUpsert && isKey[i]:
			// iceberg-go v0.7.0 matches equality deletes by the data
			// file's type: deletes of the wider key would miss the rows
			// written before.
			return nil, fail("primary key column %s changes from %s to %s: the key of an upsert table cannot change type", c.Name, f.Type, want)
		case widens(f.Type, want):
			ops = append(ops, schemaOp{Op: "widen", Name: f.Name, Field: &iceberg.NestedField{Name: f.Name, Type: want}})
		default:
			return nil, fail("column %s changes from %s to %s, and Iceberg can only widen int to long, float to double and a decimal's precision", c.Name, f.Type, want)
		}
		required := mode == ModeUpsert && (isKey[i] || !c.Nullable)
		if f.Required && !required {
			ops = append(ops, schemaOp{Op: "optional", Name: f.Name})
		}
	}

	// The primary key must stay the same fields.
	if mode == ModeUpsert && len(cur.IdentifierFieldIDs) > 0 {
		var have, want []string
		for _, id := range cur.IdentifierFieldIDs {
			if f, ok := cur.FindFieldByID(id); ok {
				have = append(have, f.Name)
			}
		}
		for _, k := range ps.Key {
			if match[k] == nil {
				return nil, fail("primary key column %s is not a column of the table (its key is %s): the key of an upsert table cannot change", ps.Columns[k].Name, strings.Join(have, ", "))
			}
			want = append(want, match[k].Name)
		}
		hs, ws := slices.Clone(have), slices.Clone(want)
		slices.Sort(hs)
		slices.Sort(ws)
		if !slices.Equal(hs, ws) {
			var src []string
			for _, k := range ps.Key {
				src = append(src, ps.Columns[k].Name)
			}
			return nil, fail("the primary key changes from (%s) to (%s): the key of an upsert table cannot change", strings.Join(have, ", "), strings.Join(src, ", "))
		}
	}

	// Columns the source no longer has.
	for _, f := range data {
		if claimed[f.ID] {
			continue
		}
		dropped := prev != nil && prev.ColumnIndex(f.Name) >= 0
		if !dropped {
			// Not a column of the source before either: the table's own,
			// left alone (and NULL in new rows).
			if f.Required {
				return nil, fail("required column %s has no source column", f.Name)
			}
			continue
		}
		if slices.Contains(cur.IdentifierFieldIDs, f.ID) {
			return nil, fail("primary key column %s was dropped at the source", f.Name)
		}
		ops = append(ops, schemaOp{Op: "delete", Name: f.Name})
	}

	// New columns, each after the column it follows at the source.
	for i, c := range ps.Columns {
		if match[i] != nil {
			continue
		}
		t, err := icebergType(c)
		if err != nil {
			return nil, fail("%v", err)
		}
		op := schemaOp{Op: "add", Name: c.Name, Field: &iceberg.NestedField{Name: c.Name, Type: t}}
		_, taken := byName[c.Name] // by a column renamed or dropped here, which a move would find instead
		switch {
		case taken:
		case i == 0:
			op.First = true
		case match[i-1] != nil && match[i-1].ID != 0:
			op.After = match[i-1].Name // its name before this update's renames
		case match[i-1] != nil && byName[match[i-1].Name].ID == 0:
			op.After = match[i-1].Name // added just before
		}
		ops = append(ops, op)
		match[i] = op.Field
	}
	return ops, nil
}

// composeRenames folds successive renames (each new name -> old name)
// into one map from the last names to the first.
func composeRenames(steps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, step := range steps {
		next := map[string]string{}
		for k, v := range out {
			next[k] = v
		}
		for nw, old := range step {
			orig := old
			if o, ok := out[old]; ok {
				orig = o
				delete(next, old)
			}
			next[nw] = orig
		}
		out = next
	}
	return out
}

// renameHint is the Renamed of one schema version of a source table.
type renameHint struct {
	version int
	renamed map[string]string
}

// noteRenames remembers the renames a schema announces, so that the
// schemas operators derive from it (which carry its Version but not
// always its Renamed) evolve their tables the same way.
func (s *Sink) noteRenames(ps *pipeline.Schema) {
	if len(ps.Renamed) == 0 {
		return
	}
	hs := s.hints[ps.Table]
	for _, h := range hs {
		if h.version == ps.Version {
			return
		}
	}
	hs = append(hs, renameHint{version: ps.Version, renamed: ps.Renamed})
	slices.SortFunc(hs, func(a, b renameHint) int { return a.version - b.version })
	s.hints[ps.Table] = hs
}

// renamesFor returns the renames from the schema version after from up to
// ps, composed.
func (s *Sink) renamesFor(ps *pipeline.Schema, from int) map[string]string {
	var steps []map[string]string
	seen := false
	for _, h := range s.hints[ps.Table] {
		if h.version > from && h.version <= ps.Version {
			steps = append(steps, h.renamed)
			seen = seen || h.version == ps.Version
		}
	}
	if !seen && len(ps.Renamed) > 0 {
		steps = append(steps, ps.Renamed)
	}
	return composeRenames(steps...)
}

func schemaJSON(sc *iceberg.Schema) (json.RawMessage, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return b, nil
}

func describeOps(ops []schemaOp) string {
	var parts []string
	for _, o := range ops {
		if o.Op != "move" {
			parts = append(parts, o.String())
		}
	}
	return strings.Join(parts, ", ")
}
