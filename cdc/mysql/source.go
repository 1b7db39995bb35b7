package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

const (
	// readWait bounds how long one Read waits for binlog events, so that
	// barriers reach an idle stream quickly.
	readWait = 500 * time.Millisecond
	// linger is how long Read keeps collecting once it has rows to return,
	// to fill batches from many small transactions.
	linger = 20 * time.Millisecond
	// maxBatch bounds the records of one batch.
	maxBatch = 1024
)

// Source is the MySQL/MariaDB binlog pipeline.Source.
type Source struct {
	cfg   Config
	match matcher

	db       *sql.DB
	flavor   string
	syncer   *replication.BinlogSyncer
	streamer *replication.BinlogStreamer

	tables map[string]*table // "db\x00table" -> captured table; nil value: not captured

	// set is the GTID set after the last transaction received complete.
	set gomysql.GTIDSet
	// delivered is the GTID set after the last transaction whose records
	// were all returned by Read.
	delivered string
	cur       *txn   // transaction being received
	ready     []*txn // committed transactions not yet fully returned
	headSent  int    // records of ready[0] already returned
	readyN    int    // records in ready not yet returned

	// A restored state that points into a transaction: its first
	// resumeSkip records were delivered before.
	resumeTxn  string
	resumeSkip int
}

// txn is one transaction's captured rows.
type txn struct {
	gtid     string
	explicit bool // ends with XID or COMMIT, not with its first statement
	recs     []tableRec
	n        int    // records captured so far, skipped ones included
	skipped  int    // leading records dropped because a restored state covers them
	after    string // GTID set once this transaction is complete
}

type tableRec struct {
	t   *table
	rec pipeline.Record
}

var _ pipeline.Source = (*Source)(nil)

// New builds a Source. cfg is defaulted and validated on a copy.
func New(cfg Config) (*Source, error) {
	cfg.Tables = append([]string(nil), cfg.Tables...)
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMatcher(cfg.Tables)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, match: m}, nil
}

// Name implements pipeline.Source.
func (s *Source) Name() string { return "mysql" }

// state is the JSON of checkpoint.Position.State.
type state struct {
	// GTID is the GTID set (MariaDB: position) after the last transaction
	// delivered whole.
	GTID string `json:"gtid"`
	// Txn and Skip are set when a checkpoint fell inside a transaction: the
	// transaction with GTID Txn (the next one after GTID in its domain) had
	// its first Skip captured records delivered already.
	Txn  string `json:"txn,omitempty"`
	Skip int    `json:"skip,omitempty"`
}

// Open implements pipeline.Source: it checks the server, loads the schemas
// of the captured tables and starts the binlog stream.
func (s *Source) Open(ctx context.Context, opts pipeline.OpenOptions) (err error) {
	if s.db != nil || s.syncer != nil {
		return errors.New("mysql: Open called twice")
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.AvailableNow {
		return errors.New("mysql: run --once (AvailableNow) is not supported by the binlog source yet")
	}
	dc, err := mysql.ParseDSN(s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	host, port, err := splitAddr(dc.Addr)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	db, err := sql.Open("mysql", s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	db.SetMaxOpenConns(2)
	s.db = db

	vars, version, err := serverSettings(ctx, db)
	if err != nil {
		return err
	}
	s.flavor = s.cfg.Flavor
	if s.flavor == "" {
		s.flavor = detectFlavor(version)
	}
	if err := checkSettings(s.flavor, vars); err != nil {
		return err
	}

	if err := s.loadTables(ctx); err != nil {
		return err
	}

	var st state
	switch {
	case opts.State != nil:
		if err := json.Unmarshal(opts.State, &st); err != nil {
			return fmt.Errorf("mysql: restore state %q: %w", opts.State, err)
		}
		if st.Skip < 0 || (st.Skip > 0) != (st.Txn != "") {
			return fmt.Errorf("mysql: restore state %q: \"txn\" and a positive \"skip\" go together", opts.State)
		}
	case s.cfg.StartGTID != "":
		st.GTID = s.cfg.StartGTID
	default:
		q := "SELECT @@GLOBAL.gtid_current_pos"
		if s.flavor == gomysql.MySQLFlavor {
			q = "SELECT @@GLOBAL.gtid_executed"
		}
		if err := db.QueryRowContext(ctx, q).Scan(&st.GTID); err != nil {
			return fmt.Errorf("mysql: read the current GTID position (%s): %w", q, err)
		}
		st.GTID = strings.Join(strings.Fields(st.GTID), "")
	}
	set, err := gomysql.ParseGTIDSet(s.flavor, st.GTID)
	if err != nil {
		return fmt.Errorf("mysql: start position %q is not a %s GTID set: %v", st.GTID, s.flavor, err)
	}
	s.set = set
	s.delivered = set.String()
	s.resumeTxn, s.resumeSkip = st.Txn, st.Skip
	s.cur, s.ready, s.headSent, s.readyN = nil, nil, 0, 0

	s.syncer = replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:         s.cfg.ServerID,
		Flavor:           s.flavor,
		Host:             host,
		Port:             port,
		User:             dc.User,
		Password:         dc.Passwd,
		UseDecimal:       true,
		ParseTime:        true,
		DisableRetrySync: true, // a broken stream fails the run; it restarts from the last checkpoint
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	streamer, err := s.syncer.StartSyncGTID(set.Clone())
	if err != nil {
		return fmt.Errorf("mysql: start binlog stream at %q: %w", st.GTID, err)
	}
	s.streamer = streamer
	return nil
}

func splitAddr(addr string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %v", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	return host, uint16(port), nil
}

func detectFlavor(version string) string {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return gomysql.MariaDBFlavor
	}
	return gomysql.MySQLFlavor
}

// serverSettings reads the replication settings checkSettings looks at.
func serverSettings(ctx context.Context, db *sql.DB) (map[string]string, string, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, "", fmt.Errorf("mysql: connect: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SHOW GLOBAL VARIABLES WHERE Variable_name IN
		('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', 'gtid_mode')`)
	if err != nil {
		return nil, "", fmt.Errorf("mysql: read server settings: %w", err)
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, "", fmt.Errorf("mysql: read server settings: %w", err)
		}
		vars[strings.ToLower(k)] = strings.ToUpper(v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("mysql: read server settings: %w", err)
	}
	return vars, version, nil
}

// checkSettings returns an error naming every server setting that keeps
// the binlog from carrying what the source needs.
func checkSettings(flavor string, vars map[string]string) error {
	var bad []string
	want := func(name, value, why string) {
		if got := vars[name]; got != value {
			if got == "" {
				got = "unset"
			}
			bad = append(bad, fmt.Sprintf("%s is %s, must be %s (%s)", name, got, value, why))
		}
	}
	want("log_bin", "ON", "start the server with --log-bin")
	want("binlog_format", "ROW", "set binlog_format=ROW in the server configuration")
	want("binlog_row_image", "FULL", "set binlog_row_image=FULL in the server configuration")
	if flavor == gomysql.MySQLFlavor {
		want("gtid_mode", "ON", "set gtid_mode=ON and enforce_gtid_consistency=ON")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("mysql: the server cannot feed a binlog source: %s; SET GLOBAL only affects new sessions, so restart the writers (or the server) after changing it",
		strings.Join(bad, "; "))
}

// loadTables loads every existing table the patterns match.
func (s *Source) loadTables(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE'
		AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return fmt.Errorf("mysql: list tables: %w", err)
	}
	var names [][2]string
	for rows.Next() {
		var d, t string
		if err := rows.Scan(&d, &t); err != nil {
			rows.Close()
			return fmt.Errorf("mysql: list tables: %w", err)
		}
		if s.match.match(d, t) {
			names = append(names, [2]string{d, t})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: list tables: %w", err)
	}
	if len(names) == 0 {
		return fmt.Errorf("%s.tables: no table matches %q (patterns match \"db.table\" whole)", prefix, s.cfg.Tables)
	}
	s.tables = make(map[string]*table, len(names))
	for _, n := range names {
		t, err := loadTable(ctx, s.db, n[0], n[1])
		if err != nil {
			return err
		}
		s.tables[n[0]+"\x00"+n[1]] = t
	}
	return nil
}

// tableFor returns the captured table or nil. Tables created after Open
// that match are loaded on first sight.
func (s *Source) tableFor(ctx context.Context, db, name string) (*table, error) {
	k := db + "\x00" + name
	if t, ok := s.tables[k]; ok {
		return t, nil
	}
	var t *table
	if s.match.match(db, name) {
		var err error
		if t, err = loadTable(ctx, s.db, db, name); err != nil {
			return nil, err
		}
	}
	s.tables[k] = t
	return t, nil
}

// Read implements pipeline.Source.
func (s *Source) Read(ctx context.Context) (*pipeline.Batch, error) {
	if s.streamer == nil {
		return nil, errors.New("mysql: Read before Open")
	}
	start := time.Now()
	deadline := start.Add(readWait)
	for s.readyRecords() < maxBatch {
		if s.readyRecords() > 0 {
			if l := time.Now().Add(linger); l.Before(deadline) {
				deadline = l
			}
		}
		ectx, cancel := context.WithDeadline(ctx, deadline)
		ev, err := s.streamer.GetEvent(ectx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			return nil, fmt.Errorf("mysql: binlog stream: %w", err)
		}
		if err := s.handle(ctx, ev); err != nil {
			return nil, err
		}
	}
	return s.nextBatch(), nil
}

func (s *Source) readyRecords() int { return s.readyN }

// nextBatch returns the longest run of ready records of one table, up to
// maxBatch, and retires the transactions it completes.
func (s *Source) nextBatch() *pipeline.Batch {
	var b *pipeline.Batch
	for len(s.ready) > 0 {
		head := s.ready[0]
		if s.headSent == len(head.recs) {
			s.delivered = head.after
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.headSent = 0
			continue
		}
		if b == nil {
			b = &pipeline.Batch{Schema: head.recs[s.headSent].t.schema}
		}
		for s.headSent < len(head.recs) && len(b.Records) < maxBatch {
			tr := head.recs[s.headSent]
			if tr.t.schema != b.Schema {
				return b
			}
			b.Records = append(b.Records, tr.rec)
			b.Bytes += recordBytes(&tr.rec)
			s.headSent++
			s.readyN--
		}
		if len(b.Records) >= maxBatch {
			// Retire the head if it is complete, so that Snapshot need not
			// point into it.
			if s.headSent == len(head.recs) {
				s.delivered = head.after
				s.ready[0] = nil
				s.ready = s.ready[1:]
				s.headSent = 0
			}
			return b
		}
	}
	if len(s.ready) == 0 {
		s.ready = nil
	}
	return b
}

func recordBytes(r *pipeline.Record) int {
	n := 64 + len(r.Position)
	for _, img := range [][]any{r.Before, r.After} {
		for _, v := range img {
			switch x := v.(type) {
			case string:
				n += 16 + len(x)
			case []byte:
				n += 24 + len(x)
			default:
				n += 16
			}
		}
	}
	return n
}

// handle applies one binlog event.
func (s *Source) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.MariadbGTIDEvent:
		// A transaction begins (MariaDB writes no BEGIN); a standalone
		// event group (DDL) has no terminating COMMIT or XID: it ends with
		// its one statement.
		s.cur = &txn{gtid: e.GTID.String(), explicit: !e.IsStandalone()}
	case *replication.GTIDEvent:
		next, err := e.GTIDNext()
		if err != nil {
			return fmt.Errorf("mysql: GTID event: %w", err)
		}
		s.cur = &txn{gtid: next.String()}
	case *replication.QueryEvent:
		if s.cur == nil {
			return nil
		}
		q := strings.ToUpper(strings.TrimSpace(string(e.Query)))
		switch {
		case q == "BEGIN":
			s.cur.explicit = true
		case q == "COMMIT" || q == "ROLLBACK":
			// ROLLBACK is logged when a transaction that changed
			// non-transactional tables rolled back: those changes stay.
			return s.commit()
		case !s.cur.explicit:
			return s.commit() // DDL or another single-statement transaction
		}
		// SAVEPOINT and such inside a transaction.
	case *replication.XIDEvent:
		if s.cur != nil {
			return s.commit()
		}
	case *replication.RowsEvent:
		return s.rows(ctx, ev.Header, e)
	case *replication.TransactionPayloadEvent:
		// MySQL binlog_transaction_compression: the events are inside.
		for _, inner := range e.Events {
			if err := s.handle(ctx, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Source) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	t, err := s.tableFor(ctx, string(e.Table.Schema), string(e.Table.Table))
	if err != nil || t == nil {
		return err
	}
	if s.cur == nil {
		return fmt.Errorf("mysql: rows of %s outside a GTID transaction", t.schema.Table)
	}
	for _, sk := range e.SkippedColumns {
		if len(sk) > 0 {
			return fmt.Errorf("mysql: rows of %s lack columns: the writing session does not use binlog_row_image=FULL", t.schema.Table)
		}
	}
	when := time.Unix(int64(h.Timestamp), 0).UTC()
	add := func(op pipeline.Op, before, after []any) error {
		r := pipeline.Record{Op: op, EventTime: when, Position: s.cur.gtid + "#" + strconv.Itoa(s.cur.n)}
		var err error
		if before != nil {
			if r.Before, err = t.convertRow(before); err != nil {
				return err
			}
		}
		if after != nil {
			if r.After, err = t.convertRow(after); err != nil {
				return err
			}
		}
		s.cur.n++
		s.cur.recs = append(s.cur.recs, tableRec{t: t, rec: r})
		return nil
	}
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		for _, r := range e.Rows {
			if err := add(pipeline.OpInsert, nil, r); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeDelete:
		for _, r := range e.Rows {
			if err := add(pipeline.OpDelete, r, nil); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeUpdate:
		if len(e.Rows)%2 != 0 {
			return fmt.Errorf("mysql: update rows event of %s with an odd number of images", t.schema.Table)
		}
		for i := 0; i < len(e.Rows); i += 2 {
			if err := add(pipeline.OpUpdate, e.Rows[i], e.Rows[i+1]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("mysql: rows event of unknown kind for %s", t.schema.Table)
	}
	return nil
}

// commit completes the current transaction and queues its records.
func (s *Source) commit() error {
	c := s.cur
	s.cur = nil
	if err := s.set.Update(c.gtid); err != nil {
		return fmt.Errorf("mysql: advance GTID set by %s: %w", c.gtid, err)
	}
	c.after = s.set.String()
	if s.resumeTxn != "" && c.gtid == s.resumeTxn {
		if s.resumeSkip > len(c.recs) {
			return fmt.Errorf("mysql: restored state skips %d records of transaction %s, which has only %d: the binlog or the table patterns changed",
				s.resumeSkip, c.gtid, len(c.recs))
		}
		c.skipped = s.resumeSkip
		c.recs = c.recs[s.resumeSkip:]
		s.resumeTxn, s.resumeSkip = "", 0
	}
	s.ready = append(s.ready, c)
	s.readyN += len(c.recs)
	return nil
}

// Snapshot implements pipeline.Source. The state is {"gtid": set} after
// whole transactions, or {"gtid": set, "txn": gtid, "skip": n} when the
// last batch ended inside transaction gtid after its n-th captured record.
func (s *Source) Snapshot() (checkpoint.Position, error) {
	st := state{GTID: s.delivered}
	switch {
	case len(s.ready) > 0 && s.ready[0].skipped+s.headSent > 0:
		st.Txn, st.Skip = s.ready[0].gtid, s.ready[0].skipped+s.headSent
	case s.resumeTxn != "":
		st.Txn, st.Skip = s.resumeTxn, s.resumeSkip
	}
	b, err := json.Marshal(st)
	if err != nil {
		return checkpoint.Position{}, err
	}
	sum := "gtid=" + st.GTID
	if st.Txn != "" {
		sum += fmt.Sprintf(" txn=%s skip=%d", st.Txn, st.Skip)
	}
	return checkpoint.Position{State: b, Summary: sum}, nil
}

// Ack implements pipeline.Source; a binlog reader releases nothing.
func (s *Source) Ack(context.Context, uint64) error { return nil }

// Close implements pipeline.Source.
func (s *Source) Close() error {
	if s.syncer != nil {
		s.syncer.Close()
		s.syncer, s.streamer = nil, nil
	}
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	return err
}
