package mysql

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/pipeline"
)

// ddlAt is a DDL statement and where the binlog has it.
type ddlAt struct {
	query string
	at    string
}

// where is the binlog position of the event being handled, for messages.
func (s *Source) where() string {
	var b strings.Builder
	if s.cur != nil {
		b.WriteString("GTID " + s.cur.gtid)
	}
	if s.pos.file != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("(" + s.pos.String() + ")")
	}
	if b.Len() == 0 {
		return "an unknown position"
	}
	return b.String()
}

func quoteDDL(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 300 {
		q = q[:300] + "..."
	}
	return "`" + q + "`"
}

// setPending replaces the pending renames of table key k (nil: none).
func (s *Source) setPending(k string, renames map[string]string) {
	next := maps.Clone(s.pending)
	if next == nil {
		next = map[string]map[string]string{}
	}
	if len(renames) == 0 {
		delete(next, k)
	} else {
		next[k] = renames
	}
	if len(next) == 0 {
		next = nil
	}
	s.pending = next
}

// addRenames adds the column renames of one ALTER TABLE to those pending
// for table key k: a column renamed twice before the next change of shape
// goes from its first name to its last.
func (s *Source) addRenames(k string, cols map[string]string) {
	if len(cols) == 0 {
		return
	}
	cur := s.pending[k]
	next := map[string]string{}
	for nw, old := range cur {
		next[nw] = old
	}
	for nw, old := range cols {
		orig := old
		for pn, po := range cur {
			if strings.EqualFold(pn, old) {
				orig = po
				delete(next, pn)
				break
			}
		}
		next[nw] = orig
	}
	s.setPending(k, next)
}

// forget drops the cached table of key k: its next rows read its shape
// afresh, under the next schema version.
func (s *Source) forget(k string) {
	if t := s.tables[k]; t != nil && s.versions[k] < t.schema.Version {
		s.versions[k] = t.schema.Version
	}
	delete(s.tables, k)
	s.setPending(k, nil)
	delete(s.lastDDL, k)
}

// ddl applies a DDL statement of the binlog to the captured tables (see
// doc.go, DDL).
func (s *Source) ddl(ctx context.Context, e *replication.QueryEvent) error {
	st := parseDDL(string(e.Query))
	if st.kind == ddlNone || st.temporary {
		return nil
	}
	cur := string(e.Schema)
	key := func(r tableRef) string { r = r.in(cur); return r.db + "\x00" + r.name }
	captured := func(r tableRef) bool { r = r.in(cur); return s.match.match(r.db, r.name) }
	// known: a captured table the source has read rows or a schema of,
	// and so the lake may hold rows of.
	known := func(k string) bool { return s.tables[k] != nil }
	here := ddlAt{query: quoteDDL(string(e.Query)), at: s.where()}

	var affected []string
	switch st.kind {
	case ddlDropDatabase:
		for k, t := range s.tables {
			if t != nil && t.schema.Table.Namespace == st.db {
				affected = append(affected, k)
			}
		}
		slices.Sort(affected)
	case ddlRename:
		for _, p := range st.renames {
			for _, r := range p {
				if captured(r) {
					affected = append(affected, key(r))
				}
			}
		}
	default:
		for _, r := range st.tables {
			if captured(r) {
				affected = append(affected, key(r))
			}
		}
		for _, p := range st.renames {
			if captured(p[1]) {
				affected = append(affected, key(p[1]))
			}
		}
	}
	if len(affected) == 0 {
		return nil
	}
	names := make([]string, len(affected))
	for i, k := range affected {
		names[i] = strings.Replace(k, "\x00", ".", 1)
	}
	if s.cfg.DDL == DDLFail {
		return fmt.Errorf("mysql: %s of captured table %s at %s: %s; source.mysql.ddl is %q: set it to %q to have the lake tables follow the change (or %q to leave out what they cannot follow)",
			st.kind, strings.Join(names, ", "), here.at, here.query, DDLFail, DDLEvolve, DDLSkip)
	}
	s.log.Info("DDL on a captured table", zap.String("statement", here.query), zap.String("at", here.at), zap.Strings("tables", names))

	switch st.kind {
	case ddlAlter:
		k := key(st.tables[0])
		s.addRenames(k, st.columns)
		if len(st.backfilled) > 0 && known(k) {
			s.log.Warn("columns added with a value for the existing rows: the binlog does not carry those values, so the lake tables have NULL in them for rows that existed before, until the rows change",
				zap.String("table", strings.Replace(k, "\x00", ".", 1)), zap.Strings("columns", st.backfilled), zap.String("statement", here.query))
		}
		s.lastDDL[k] = here
		if len(st.renames) > 0 {
			if err := s.renameTables(here, cur, st.renames); err != nil {
				return err
			}
		} else if known(k) && (!s.fullMeta || s.inSnapshot(k)) {
			// Without column names in the binlog the new shape can only
			// be read now, from information_schema. A table whose
			// snapshot is being read needs it now too: its chunks read
			// from here on must select the new columns.
			return s.reload(ctx, k)
		}
	case ddlCreate:
		k := key(st.tables[0])
		if st.replace && known(k) {
			if err := s.lost(here, k, "CREATE OR REPLACE TABLE", "no longer has (the table was replaced)"); err != nil {
				return err
			}
		}
		s.forget(k)
	case ddlDrop, ddlDropDatabase:
		for _, k := range affected {
			if !known(k) {
				continue
			}
			if err := s.lost(here, k, st.kind.String(), "no longer has (the table was dropped)"); err != nil {
				return err
			}
			s.forget(k)
		}
	case ddlTruncate:
		k := affected[0]
		if known(k) {
			if err := s.lost(here, k, "TRUNCATE TABLE", "deleted (TRUNCATE writes no row events)"); err != nil {
				return err
			}
		}
	case ddlRename:
		return s.renameTables(here, cur, st.renames)
	}
	return nil
}

// lost handles a DDL that removes rows or a table from under its lake
// tables: an error under ddl: evolve, a warning under skip.
func (s *Source) lost(here ddlAt, k, what, effect string) error {
	name := strings.Replace(k, "\x00", ".", 1)
	if s.cfg.DDL != DDLSkip {
		return fmt.Errorf("mysql: %s of captured table %s at %s: %s: the lake tables cannot follow it and would keep rows the source %s. "+
			"Set source.mysql.ddl: skip to continue without it (the lake tables keep those rows), or take the table out of source.mysql.tables",
			what, name, here.at, here.query, effect)
	}
	s.log.Warn("DDL skipped: the lake tables keep rows the source "+effect, zap.String("table", name),
		zap.String("statement", here.query), zap.String("at", here.at))
	return nil
}

// renameTables applies RENAME TABLE (or ALTER TABLE ... RENAME TO). A
// captured table renamed away is lost to the lake (ddl: evolve fails); a
// captured name that a table is renamed to (a table swapped in by an
// online schema change tool, or a new one) is read afresh from its next
// rows: the rows it held before are not read.
func (s *Source) renameTables(here ddlAt, cur string, pairs [][2]tableRef) error {
	gone, arrived := map[string]bool{}, map[string]bool{}
	for _, p := range pairs {
		from, to := p[0].in(cur), p[1].in(cur)
		fk, tk := from.db+"\x00"+from.name, to.db+"\x00"+to.name
		if s.tables[fk] != nil || gone[fk] || arrived[fk] {
			gone[fk] = true
		}
		delete(arrived, fk)
		delete(gone, tk)
		if s.match.match(to.db, to.name) {
			arrived[tk] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(gone)) {
		if s.tables[k] == nil {
			continue
		}
		if err := s.lost(here, k, "RENAME TABLE", "no longer has under this name (the lake does not follow table renames)"); err != nil {
			return err
		}
		s.forget(k)
	}
	for _, k := range slices.Sorted(maps.Keys(arrived)) {
		name := strings.Replace(k, "\x00", ".", 1)
		if s.tables[k] != nil {
			s.log.Info("captured table replaced by a rename: its shape is read from its next rows", zap.String("table", name), zap.String("statement", here.query))
		} else {
			s.log.Warn("a table renamed to a captured name is captured from its next rows; the rows it held before are not read",
				zap.String("table", name), zap.String("statement", here.query))
		}
		s.forget(k)
	}
	return nil
}

// inSnapshot reports whether table key k has snapshot rows not handed out.
func (s *Source) inSnapshot(k string) bool {
	t := s.tables[k]
	return t != nil && slices.ContainsFunc(s.snapTodo, func(x *table) bool { return x.schema.Table == t.schema.Table })
}

// reload re-reads table key k from information_schema after a DDL
// (binlog_row_metadata is not FULL, or the table's snapshot is being
// read). information_schema is right when the binlog is read as it is
// written; when it is ahead (more DDL since), the lake sees the later
// shape early, and the binlog's table maps correct it after.
func (s *Source) reload(ctx context.Context, k string) error {
	old := s.tables[k]
	db, name, _ := strings.Cut(k, "\x00")
	nt, err := loadTable(ctx, s.db, db, name, s.cfg.Keys[db+"."+name])
	if err != nil {
		return err
	}
	_, err = s.applyChange(k, old, nt, s.pending[k])
	return err
}

// checkShape returns the table to convert the rows of table map event tm
// with: t, or a new version of it when tm shows another shape.
func (s *Source) checkShape(ctx context.Context, k string, t *table, tm *replication.TableMapEvent) (*table, error) {
	pend := s.pending[k]
	if len(pend) == 0 && t.sameLayout(tm) {
		return t, nil
	}
	if !hasNames(tm) {
		if len(pend) > 0 && s.fullMeta {
			return nil, fmt.Errorf("mysql: table %s: the table map event at %s names no columns although binlog_row_metadata is FULL", t.schema.Table, s.where())
		}
		return t, t.checkLayout(tm)
	}
	nt, err := tableFromMap(t.schema.Table, tm, s.cfg.Keys[t.schema.Table.String()])
	if errors.Is(err, errNoKey) {
		// No primary key in the event: the old key, if its columns are
		// still there (a server that does not log keys), or none.
		for _, ki := range t.schema.Key {
			i := nt.schema.ColumnIndex(t.schema.Columns[ki].Name)
			if i < 0 {
				nt.schema.Key = nil
				break
			}
			nt.schema.Key = append(nt.schema.Key, i)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	if len(pend) == 0 && sameColumns(t, nt) {
		t.remember(tm)
		return t, nil
	}
	if !t.used {
		// The shape read at Open is not the binlog's here (a DDL the
		// stream has not reached, or one before the start position):
		// nothing was converted with it, so nothing is judged; the
		// pending renames still tell the lake where a column came from.
		// (A snapshot in progress keeps reading with the shape of Open:
		// its chunks are handed out at points after those DDL.)
		if ren, _ := completedRenames(t.schema, nt.schema, pend); len(ren) > 0 {
			nt.schema.Renamed = ren
		}
		if nt.schema.Renamed == nil && slices.Equal(nt.schema.Columns, t.schema.Columns) && slices.Equal(nt.schema.Key, t.schema.Key) {
			nt.schema = t.schema
		} else {
			s.versions[k]++
			nt.schema.Version = s.versions[k]
		}
		s.setPending(k, nil)
		s.tables[k] = nt
		return nt, nil
	}
	return s.applyChange(k, t, nt, pend)
}

// applyChange moves table key k from old to the new shape nt under the
// DDL policy, and returns the table to use.
func (s *Source) applyChange(k string, old, nt *table, renames map[string]string) (*table, error) {
	ch, bad := evolveTable(old, nt, renames, s.cfg.DDL == DDLSkip)
	if len(bad) > 0 {
		skippable := s.cfg.DDL == DDLSkip
		for _, b := range bad {
			if b.skip == "" {
				skippable = false
			}
		}
		if !skippable {
			return nil, s.inexpressibleError(k, old, bad)
		}
		for _, b := range bad {
			s.log.Warn("DDL change skipped: the lake tables cannot follow it", zap.String("table", old.schema.Table.String()),
				zap.String("change", b.what), zap.String("instead", b.skip), zap.String("at", s.where()),
				zap.String("statement", s.lastDDL[k].query))
		}
	}
	for _, n := range ch.notes {
		s.log.Info("schema change", zap.String("table", old.schema.Table.String()), zap.String("note", n))
	}
	s.setPending(k, nil)
	ddl := s.lastDDL[k]
	delete(s.lastDDL, k)
	next := ch.next
	ns := next.schema
	if len(ns.Renamed) == 0 && slices.Equal(ns.Columns, old.schema.Columns) && slices.Equal(ns.Key, old.schema.Key) {
		// The same shape to the pipeline (a longer VARCHAR, new ENUM
		// members, a table reopened): the same schema.
		next.schema = old.schema
	} else {
		if s.versions[k] < old.schema.Version {
			s.versions[k] = old.schema.Version
		}
		s.versions[k]++
		ns.Version = s.versions[k]
		s.log.Info("table schema changed", zap.String("table", ns.Table.String()),
			zap.Int("from_version", old.schema.Version), zap.Int("to_version", ns.Version),
			zap.Strings("columns", columnNames(ns)), zap.Any("renamed", ns.Renamed),
			zap.String("at", s.where()), zap.String("statement", ddl.query))
	}
	s.tables[k] = next
	if err := s.snapshotTableChanged(old, next); err != nil {
		return nil, err
	}
	return next, nil
}

func columnNames(s *pipeline.Schema) []string {
	out := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		out[i] = c.Name + " " + typeName(c)
	}
	return out
}

// inexpressibleError names the table, what changed, where, after which
// DDL, and the remedy.
func (s *Source) inexpressibleError(k string, old *table, bad []inexpressible) error {
	var whats []string
	skippable := true
	for _, b := range bad {
		whats = append(whats, b.what)
		if b.skip == "" {
			skippable = false
		}
	}
	after := ""
	if d, ok := s.lastDDL[k]; ok {
		after = fmt.Sprintf(", after %s (at %s)", d.query, d.at)
	}
	remedy := "This cannot be skipped: recreate the table's lake tables and read the table again (a snapshot)"
	if skippable {
		var insteads []string
		for _, b := range bad {
			insteads = append(insteads, b.skip)
		}
		remedy = fmt.Sprintf("Set source.mysql.ddl: skip to continue without it (%s), or recreate the table's lake tables and read the table again (a snapshot)",
			strings.Join(insteads, "; "))
	}
	return fmt.Errorf("mysql: %w: table %s changed shape at %s%s: %s. %s",
		errInexpressible, old.schema.Table, s.where(), after, strings.Join(whats, "; "), remedy)
}

// snapshotTableChanged keeps the initial snapshot of a table whose shape
// changed right: its chunks not read yet are read with the new shape, and
// chunks read since the change (with the old column list, after the DDL)
// are read again.
func (s *Source) snapshotTableChanged(old, nt *table) error {
	id := old.schema.Table
	idx := slices.IndexFunc(s.snapTodo, func(x *table) bool { return x.schema.Table == id })
	if idx < 0 {
		return nil
	}
	old = s.snapTodo[idx] // the shape the snapshot reads with
	if len(nt.schema.Key) != len(old.schema.Key) {
		return fmt.Errorf("mysql: table %s: its primary key changed while its initial snapshot is read", old.schema.Table)
	}
	for j, k := range nt.schema.Key {
		if nt.schema.Columns[k].Name != old.schema.Columns[old.schema.Key[j]].Name || nt.cols[k].dataType != old.cols[old.schema.Key[j]].dataType {
			return fmt.Errorf("mysql: table %s: its primary key changed while its initial snapshot is read", old.schema.Table)
		}
	}
	s.snapTodo[idx] = nt
	sn := s.snap
	if sn == nil {
		return nil
	}
	for i, p := range sn.plan {
		if p.schema.Table == id {
			sn.plan[i] = nt
		}
	}
	// Every chunk still in flight was read after the stream's position,
	// so after the change: the chunks of the table from the first one on
	// (and whatever follows them) are read again.
	first := slices.IndexFunc(sn.inflight, func(c *chunk) bool { return c.t.schema.Table == id })
	if first < 0 {
		return nil
	}
	c0 := sn.inflight[first]
	for _, c := range sn.inflight[first:] {
		<-c.done
	}
	clear(sn.inflight[first:])
	sn.inflight = sn.inflight[:first]
	sn.plan = append([]*table{nt}, s.snapTodo[idx+1:]...)
	sn.planLo, sn.planN = c0.lo, c0.seq
	return nil
}
