package mysql

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
)

const (
	// reconnectMin and reconnectMax bound the wait between reconnects.
	reconnectMin = 250 * time.Millisecond
	reconnectMax = 30 * time.Second
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
	// fullMeta: the server names the columns in table map events
	// (binlog_row_metadata=FULL), so shapes are read from the binlog.
	fullMeta bool
	// pending are the column renames DDL announced that no change of
	// shape has taken up yet, by table key (new name -> old name). The
	// map is replaced, never changed, so that a transaction can keep the
	// one from before it (txn.renames).
	pending map[string]map[string]string
	// versions is the last schema version handed out per table key, so
	// that a re-created or re-read table continues the numbering.
	versions map[string]int
	// lastDDL is the DDL that announced a table's next change, for errors.
	lastDDL map[string]ddlAt

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

	// pos is the binlog position after the last event handled; zero until
	// the stream has said where it is.
	pos binlogPos
	// stopAt is where a bounded run (AvailableNow) ends: the server's
	// binlog end when the source opened. Nil: stream forever.
	stopAt *binlogPos
	// snap reads the initial snapshot; nil when no chunk is left to plan.
	snap *snapshotter
	// snapTodo are the tables whose snapshot rows are not all delivered,
	// the first in progress; snapAfter is the key of its last row
	// delivered.
	snapTodo  []*table
	snapAfter []any
	// Snapshot rows delivered, and the tables' estimated row count, for
	// Progress, which another goroutine calls.
	snapRows  atomic.Int64
	snapTotal atomic.Int64
	// Reconnect bookkeeping: when and why the stream was lost, and the
	// next wait.
	lostAt     time.Time
	lostErr    error
	reconnects int // attempts, for tests and logs
	// snapDropped counts snapshot rows dropped by watermark reconciliation
	// because the binlog changed them while their chunk was read.
	snapDropped int64
	// watermarkPause is a test hook: see snapshotter.pause.
	watermarkPause time.Duration
	backoff        time.Duration
	log            *zap.Logger
	// tls is the built TLS configuration (nil: plain connections).
	tls *tls.Config
	// The binlog connection's address and credentials, for reconnects.
	host string
	port uint16
	user string
	pass string
}

// txn is one transaction's captured rows.
type txn struct {
	chunk    *chunk // a snapshot chunk's rows rather than a transaction
	gtid     string
	explicit bool // ends with XID or COMMIT, not with its first statement
	recs     []tableRec
	n        int    // records captured so far, skipped ones included
	skipped  int    // leading records dropped because a restored state covers them
	after    string // GTID set once this transaction is complete
	// renames are the Source's pending renames before this transaction.
	renames map[string]map[string]string
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
	return &Source{cfg: cfg, match: m, log: zap.NewNop()}, nil
}

// SetLogger sets where the source reports reconnects and snapshot
// progress; the default discards them.
func (s *Source) SetLogger(l *zap.Logger) { s.log = l }

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
	// Snapshot is the initial snapshot's progress, absent once it is done
	// (or when there is none).
	Snapshot *snapState `json:"snapshot,omitempty"`
	// Renames are column renames of DDL before GTID whose change of
	// shape is after it, by "db\x00table" (new name -> old name).
	Renames map[string]map[string]string `json:"renames,omitempty"`
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
	dc, err := mysql.ParseDSN(s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	host, port, err := splitAddr(dc.Addr)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	// The binlog connections' address and credentials (syncerConfig).
	s.host, s.port, s.user, s.pass = host, port, dc.User, dc.Passwd
	if s.cfg.TLS != nil {
		if s.tls, err = s.cfg.TLS.build(host); err != nil {
			return err
		}
		dc.TLS = s.tls
	}
	conn, err := mysql.NewConnector(dc)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	db := sql.OpenDB(conn)
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
	s.fullMeta = vars["binlog_row_metadata"] == "FULL"
	if !s.fullMeta {
		s.log.Warn("binlog_row_metadata is not FULL: after a DDL the source reads the table's shape from information_schema, which is right only when the binlog is read as it is written; set binlog_row_metadata=FULL",
			zap.String("binlog_row_metadata", vars["binlog_row_metadata"]))
	}
	s.versions, s.lastDDL, s.pending = map[string]int{}, map[string]ddlAt{}, nil

	if s.cfg.Snapshot != SnapshotInitialOnly {
		if err := s.checkPrivileges(ctx, dc.User, true, nil); err != nil {
			return err
		}
	}
	if err := s.loadTables(ctx); err != nil {
		return err
	}

	var st state
	fresh := opts.State == nil
	switch {
	case !fresh:
		if err := json.Unmarshal(opts.State, &st); err != nil {
			return fmt.Errorf("mysql: restore state %q: %w", opts.State, err)
		}
		if st.Skip < 0 || (st.Skip > 0) != (st.Txn != "") {
			return fmt.Errorf("mysql: restore state %q: \"txn\" and a positive \"skip\" go together", opts.State)
		}
	case s.cfg.StartGTID != "":
		st.GTID = s.cfg.StartGTID
	case s.cfg.StartPosition != "":
		file, pos, _ := parseStartPosition(s.cfg.StartPosition) // Validate checked it
		if st.GTID, err = s.gtidAtPosition(ctx, file, pos); err != nil {
			return fmt.Errorf("%s.start_position: %w", prefix, err)
		}
		s.log.Info("start position translated to GTIDs", zap.String("start_position", s.cfg.StartPosition), zap.String("gtid", st.GTID))
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
	if len(st.Renames) > 0 {
		s.pending = st.Renames
	}
	s.cur, s.ready, s.headSent, s.readyN = nil, nil, 0, 0

	if err := s.openSnapshot(ctx, fresh, st.Snapshot); err != nil {
		return err
	}
	if err := s.checkPrivileges(ctx, dc.User, false, s.snapTodo); err != nil {
		return err
	}
	if s.cfg.Snapshot == SnapshotInitialOnly {
		// A backfill reads the tables and nothing of the binlog.
		return nil
	}
	if opts.AvailableNow {
		end, err := binlogEnd(ctx, db)
		if err != nil {
			return err
		}
		s.stopAt = &end
	}
	return s.startStream()
}

// syncerConfig is what every binlog connection of the source shares: the
// replica id, the server and credentials of the DSN, TLS, go-mysql's log
// kept to errors, and no retries of go-mysql's own (reconnects are the
// source's, with backoff and from the last transaction received whole).
func (s *Source) syncerConfig() replication.BinlogSyncerConfig {
	return replication.BinlogSyncerConfig{
		ServerID: s.cfg.ServerID, Flavor: s.flavor,
		Host: s.host, Port: s.port, User: s.user, Password: s.pass,
		TLSConfig:        s.tls,
		DisableRetrySync: true,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})),
	}
}

// startStream (re)starts the binlog stream after the last transaction
// received whole.
func (s *Source) startStream() error {
	cfg := s.syncerConfig()
	cfg.UseDecimal, cfg.ParseTime = true, true
	cfg.HeartbeatPeriod = s.cfg.Heartbeat
	// go-mysql decodes ahead into a queue of this many events. Its default
	// (10,240) holds up to a gigabyte of decoded rows when the pipeline is
	// slower than decoding; a short queue keeps the reader busy without
	// that.
	cfg.EventCacheCount = 128
	// Three missed heartbeats: the connection is dead.
	cfg.ReadTimeout = 3 * s.cfg.Heartbeat
	s.syncer = replication.NewBinlogSyncer(cfg)
	s.cur = nil
	s.pos = binlogPos{}
	streamer, err := s.syncer.StartSyncGTID(s.set.Clone())
	if err != nil {
		s.syncer.Close()
		s.syncer = nil
		return fmt.Errorf("mysql: start binlog stream at %q: %w", s.set.String(), err)
	}
	s.streamer = streamer
	return nil
}

// binlogEnd is the server's current binlog file and position.
func binlogEnd(ctx context.Context, db querier) (binlogPos, error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if isErrNumber(err, errParse) {
		// MySQL 8.4 removed SHOW MASTER STATUS for this.
		rows, err = db.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return binlogPos{}, fmt.Errorf("mysql: read the binlog end (SHOW MASTER STATUS): %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return binlogPos{}, fmt.Errorf("mysql: SHOW MASTER STATUS: %w", err)
	}
	if !rows.Next() {
		return binlogPos{}, errors.New("mysql: SHOW MASTER STATUS returned nothing: is log_bin on, and has the user BINLOG MONITOR (REPLICATION CLIENT)?")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil || len(vals) < 2 {
		return binlogPos{}, fmt.Errorf("mysql: SHOW MASTER STATUS: %v", err)
	}
	p, err := strconv.ParseUint(string(vals[1]), 10, 64)
	if err != nil {
		return binlogPos{}, fmt.Errorf("mysql: SHOW MASTER STATUS position %q: %w", vals[1], err)
	}
	return binlogPos{file: string(vals[0]), pos: p}, nil
}

// openSnapshot sets up the initial snapshot: on a fresh start in mode
// initial or initial_only every captured table, on a restore the tables
// its state lists.
func (s *Source) openSnapshot(ctx context.Context, fresh bool, st *snapState) error {
	var todo []*table
	switch {
	case s.cfg.Snapshot == SnapshotNever:
		return nil
	case fresh:
		for _, t := range s.tables {
			todo = append(todo, t)
		}
		slices.SortFunc(todo, func(a, b *table) int {
			return strings.Compare(a.schema.Table.String(), b.schema.Table.String())
		})
	case st != nil:
		for _, name := range st.Tables {
			db, tn, _ := strings.Cut(name, ".")
			t := s.tables[db+"\x00"+tn]
			if t == nil {
				return fmt.Errorf("mysql: the checkpoint's snapshot still has to read %s, which no longer exists or no longer matches %s.tables", name, prefix)
			}
			todo = append(todo, t)
		}
		after, err := decodeKey(st.After)
		if err != nil {
			return err
		}
		if len(after) != 0 && len(todo) > 0 && len(after) != len(todo[0].schema.Key) {
			return fmt.Errorf("mysql: the checkpoint's snapshot key for %s has %d columns, the table's key %d", todo[0].schema.Table, len(after), len(todo[0].schema.Key))
		}
		s.snapAfter = after
	}
	if len(todo) == 0 {
		return nil
	}
	watermark := s.cfg.SnapshotMethod == MethodWatermark || s.flavor == gomysql.MySQLFlavor
	if s.cfg.SnapshotMethod == MethodPosition && s.flavor == gomysql.MySQLFlavor {
		return fmt.Errorf("%s.snapshot_method: \"position\" needs MariaDB's consistent-snapshot binlog position, and the server is MySQL: use \"watermark\" (the default)", prefix)
	}
	sdb, err := openSnapshotDB(s.cfg.DSN, s.tls, s.cfg.SnapshotParallel)
	if err != nil {
		return err
	}
	// The estimate InnoDB keeps (TABLE_ROWS) is enough for a progress bar.
	var total int64
	for _, t := range todo {
		var n sql.NullInt64
		_ = s.db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
			t.schema.Table.Namespace, t.schema.Table.Name).Scan(&n)
		total += n.Int64
	}
	s.snapTotal.Store(total)
	s.snapTodo = todo
	s.snap = &snapshotter{
		db: sdb, chunk: s.cfg.ChunkSize, parallel: s.cfg.SnapshotParallel,
		plan: append([]*table(nil), todo...), planLo: s.snapAfter,
		watermark: watermark, flavor: s.flavor, pause: s.watermarkPause,
		backfill: s.cfg.Snapshot == SnapshotInitialOnly,
	}
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
		return fmt.Errorf("%s.tables: no table matches %q (patterns match \"db.table\" whole; information_schema shows a user only the tables it has a privilege on, so GRANT SELECT on them if they exist)", prefix, s.cfg.Tables)
	}
	s.tables = make(map[string]*table, len(names))
	for _, n := range names {
		t, err := loadTable(ctx, s.db, n[0], n[1], s.cfg.Keys[n[0]+"."+n[1]])
		if err != nil {
			return err
		}
		s.tables[n[0]+"\x00"+n[1]] = t
		s.versions[n[0]+"\x00"+n[1]] = t.schema.Version
	}
	return nil
}

// tableFor returns the captured table of a table map event, or nil.
// Tables created after Open that match are loaded on first sight, from
// the event when it names the columns.
func (s *Source) tableFor(ctx context.Context, k string, tm *replication.TableMapEvent) (*table, error) {
	if t, ok := s.tables[k]; ok {
		return t, nil
	}
	db, name := string(tm.Schema), string(tm.Table)
	if !s.match.match(db, name) {
		s.tables[k] = nil
		return nil, nil
	}
	var t *table
	var err error
	if hasNames(tm) {
		t, err = tableFromMap(pipeline.TableID{Namespace: db, Name: name}, tm, s.cfg.Keys[db+"."+name])
		if errors.Is(err, errNoKey) {
			t, err = nil, nil // information_schema says which key, or why none
		}
		if err != nil {
			return nil, err
		}
	}
	if t == nil {
		if t, err = loadTable(ctx, s.db, db, name, s.cfg.Keys[db+"."+name]); err != nil {
			return nil, err
		}
	}
	s.versions[k]++
	t.schema.Version = s.versions[k]
	s.tables[k] = t
	s.log.Info("capturing table", zap.String("table", t.schema.Table.String()), zap.Int("schema_version", t.schema.Version),
		zap.Int("columns", len(t.schema.Columns)))
	return t, nil
}

// Read implements pipeline.Source.
func (s *Source) Read(ctx context.Context) (*pipeline.Batch, error) {
	if s.db == nil {
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
		if err := s.planChunks(ctx); err != nil {
			return nil, err
		}
		emitted, err := s.emitChunks(ctx)
		if err != nil {
			return nil, err
		}
		if emitted {
			continue
		}
		if s.streamer == nil {
			if s.cfg.Snapshot == SnapshotInitialOnly {
				if s.snap == nil || len(s.snap.inflight) == 0 {
					break // the backfill is read
				}
				continue
			}
			// A reconnect is due.
			if err := s.reconnect(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if s.snap == nil && s.reachedStop() {
			break // a bounded run reached the binlog end it opened at
		}
		if !time.Now().Before(deadline) {
			break
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
			if err := s.streamFailed(err); err != nil {
				return nil, err
			}
			continue
		}
		s.lostErr, s.backoff = nil, 0
		if err := s.handle(ctx, ev); err != nil {
			return nil, err
		}
		s.advance(ev)
	}
	b := s.nextBatch()
	if b == nil && s.finished() {
		return nil, pipeline.ErrEndOfInput
	}
	return b, nil
}

// finished reports that a bounded run has delivered everything.
func (s *Source) finished() bool {
	if len(s.ready) > 0 || s.readyN > 0 || (s.snap != nil) || len(s.snapTodo) > 0 {
		return false
	}
	if s.cfg.Snapshot == SnapshotInitialOnly {
		return true
	}
	return s.reachedStop()
}

// reachedStop reports that a bounded run's stream is at or past the
// binlog end it opened at, between transactions.
func (s *Source) reachedStop() bool {
	return s.stopAt != nil && s.cur == nil && s.pos.file != "" && !s.pos.less(*s.stopAt)
}

// advance moves the binlog position past ev.
func (s *Source) advance(ev *replication.BinlogEvent) {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		s.pos = binlogPos{file: string(e.NextLogName), pos: e.Position}
		return
	case *replication.HeartbeatEvent:
		if e.Filename != "" {
			s.pos.file = e.Filename
		}
		if e.Offset != 0 {
			s.pos.pos = e.Offset
			return
		}
	}
	if ev.Header.LogPos > 0 && s.pos.file != "" {
		s.pos.pos = uint64(ev.Header.LogPos)
	}
}

// planChunks keeps SnapshotParallel chunks being read. Memory stays
// bounded: Read stops reading once a batch's worth is ready, so ready
// holds at most a batch and a chunk, plus the chunks in flight.
func (s *Source) planChunks(ctx context.Context) error {
	sn := s.snap
	if sn == nil {
		return nil
	}
	if sn.watermark && !sn.backfill && sn.flavor != gomysql.MySQLFlavor && s.pos.file == "" {
		// MariaDB's low watermark is the reader's position: wait for the
		// stream to say where it is.
		return nil
	}
	for len(sn.inflight) < sn.parallel {
		more, err := sn.planNext(ctx, readerAt{set: s.set, pos: s.pos})
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return nil
}

// emitChunks queues the rows of every chunk whose binlog point the
// stream has reached, waiting for a chunk still being read. A backfill
// reads no binlog: its chunks are queued as they arrive.
func (s *Source) emitChunks(ctx context.Context) (bool, error) {
	sn := s.snap
	if sn == nil {
		return false, nil
	}
	emitted := false
	for len(sn.inflight) > 0 && s.readyN < maxBatch {
		c := sn.inflight[0]
		if !sn.backfill && !c.reached(s.set, s.pos) {
			break
		}
		if err := c.wait(ctx); err != nil {
			return false, err
		}
		s.snapDropped += int64(c.reconcile())
		sn.inflight[0] = nil
		sn.inflight = sn.inflight[1:]
		c.t.used = true
		recs := chunkRecs(c)
		renames := s.pending
		if s.cur != nil {
			renames = s.cur.renames
		}
		s.ready = append(s.ready, &txn{chunk: c, recs: recs, after: s.set.String(), renames: renames})
		s.readyN += len(recs)
		emitted = true
	}
	if len(sn.plan) == 0 && len(sn.inflight) == 0 {
		if err := sn.close(); err != nil {
			return emitted, fmt.Errorf("mysql: snapshot: %w", err)
		}
		s.snap = nil
		method := MethodPosition
		if sn.watermark {
			method = MethodWatermark
		}
		s.log.Info("snapshot read", zap.String("method", method),
			zap.Int64("rows_superseded_by_binlog", s.snapDropped))
	}
	return emitted, nil
}

func chunkRecs(c *chunk) []tableRec {
	out := make([]tableRec, len(c.recs))
	for i := range c.recs {
		out[i] = tableRec{t: c.t, rec: c.recs[i]}
	}
	c.recs = nil
	return out
}

// reconnect waits out the backoff and starts the stream again after the
// last transaction received whole.
func (s *Source) reconnect(ctx context.Context) error {
	wait := s.backoff
	if wait < reconnectMin {
		wait = reconnectMin
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.backoff = min(2*wait, reconnectMax)
	s.reconnects++
	if err := s.startStream(); err != nil {
		if time.Since(s.lostAt) > s.cfg.ReconnectTimeout {
			return fmt.Errorf("mysql: binlog stream lost %s ago and not back: %w (last error: %v)",
				time.Since(s.lostAt).Round(time.Second), err, s.lostErr)
		}
		s.log.Warn("binlog reconnect failed; retrying", zap.Error(err), zap.Duration("next_wait", s.backoff))
		return nil
	}
	return nil
}

// streamFailed decides what a failed GetEvent means: a purged position is
// fatal with its remedy; anything else drops the connection and schedules
// a reconnect.
func (s *Source) streamFailed(err error) error {
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == gomysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
		return fmt.Errorf("mysql: the server no longer has the binlog from %s (error 1236: %s). "+
			"The binlog files sluice needs were purged before it read them, so changes were lost to it. "+
			"Take a new snapshot: stop sluice, move the job's checkpoint directory aside, and start it again with snapshot: initial "+
			"(rows deleted at the source in the meantime stay in the upsert tables unless they are dropped first); "+
			"keep binlogs longer (expire_logs_days / binlog_expire_logs_seconds) to avoid this", s.set.String(), me.Message)
	}
	if s.syncer != nil {
		s.syncer.Close()
	}
	s.syncer, s.streamer = nil, nil
	if s.lostErr == nil {
		s.lostAt, s.lostErr, s.backoff = time.Now(), err, 0
	}
	s.log.Warn("binlog stream lost; reconnecting", zap.Error(err), zap.String("from_gtid", s.set.String()))
	return nil
}

func (s *Source) readyRecords() int { return s.readyN }

// nextBatch returns the longest run of ready records of one table, up to
// maxBatch, and retires the transactions and chunks it completes.
func (s *Source) nextBatch() *pipeline.Batch {
	var b *pipeline.Batch
	for len(s.ready) > 0 {
		head := s.ready[0]
		if s.headSent == len(head.recs) {
			s.retireHead()
			continue
		}
		if b == nil {
			b = &pipeline.Batch{Schema: head.recs[s.headSent].t.schema}
		}
		for s.headSent < len(head.recs) && len(b.Records) < maxBatch {
			tr := head.recs[s.headSent]
			if tr.t.schema != b.Schema {
				break
			}
			b.Records = append(b.Records, tr.rec)
			b.Bytes += recordBytes(&tr.rec)
			s.headSent++
			s.readyN--
		}
		if c := head.chunk; c != nil && s.headSent > 0 {
			s.snapAfter = c.keys[s.headSent-1]
			s.snapRows.Add(int64(len(b.Records)))
		}
		if s.headSent < len(head.recs) {
			return b // the batch is full, or the next record is of another table
		}
		// Retire the head now that it is complete, so that Snapshot need
		// not point into it.
		s.retireHead()
		if len(b.Records) >= maxBatch {
			return b
		}
	}
	if len(s.ready) == 0 {
		s.ready = nil
	}
	return b
}

// retireHead drops the fully returned head of ready and records what it
// completes: a transaction's GTID set, or a chunk's snapshot progress.
func (s *Source) retireHead() {
	head := s.ready[0]
	if c := head.chunk; c != nil {
		if c.hi == nil {
			// The table's last chunk: its snapshot is delivered.
			s.snapTodo = s.snapTodo[1:]
			s.snapAfter = nil
		} else {
			s.snapAfter = c.hi
		}
	}
	s.delivered = head.after
	s.ready[0] = nil
	s.ready = s.ready[1:]
	s.headSent = 0
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
		s.cur = &txn{gtid: e.GTID.String(), explicit: !e.IsStandalone(), renames: s.pending}
	case *replication.GTIDEvent:
		next, err := e.GTIDNext()
		if err != nil {
			return fmt.Errorf("mysql: GTID event: %w", err)
		}
		s.cur = &txn{gtid: next.String(), renames: s.pending}
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
			// DDL or another single-statement transaction.
			if err := s.ddl(ctx, e); err != nil {
				return err
			}
			return s.commit()
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
	k := string(e.Table.Schema) + "\x00" + string(e.Table.Table)
	t, err := s.tableFor(ctx, k, e.Table)
	if err != nil || t == nil {
		return err
	}
	if s.cur == nil {
		return fmt.Errorf("mysql: rows of %s outside a GTID transaction", t.schema.Table)
	}
	if t, err = s.checkShape(ctx, k, t, e.Table); err != nil {
		return err
	}
	t.used = true
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
	if s.snap != nil && s.snap.watermark {
		for _, ch := range s.snap.inflight {
			for i := range c.recs {
				ch.note(c.recs[i].t, &c.recs[i].rec)
			}
		}
	}
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
	// The renames pending where the state points: before the first
	// transaction not wholly delivered.
	switch {
	case len(s.ready) > 0:
		st.Renames = s.ready[0].renames
	case s.cur != nil:
		st.Renames = s.cur.renames
	default:
		st.Renames = s.pending
	}
	snap, err := marshalSnap(s.snapTodo, s.snapAfter)
	if err != nil {
		return checkpoint.Position{}, err
	}
	st.Snapshot = snap
	switch {
	case len(s.ready) > 0 && s.ready[0].chunk == nil && s.ready[0].skipped+s.headSent > 0:
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
	if snap != nil {
		sum += fmt.Sprintf(" snapshot=%s tables left", strconv.Itoa(len(snap.Tables)))
		if snap.After != nil {
			sum += " after " + jsonString(snap.After)
		}
	}
	return checkpoint.Position{State: b, Summary: sum}, nil
}

// Progress reports the snapshot's rows delivered and the tables' estimated
// row count (0 when there is no snapshot); sluice backfill draws it.
func (s *Source) Progress() (done, total int64) {
	done, total = s.snapRows.Load(), s.snapTotal.Load()
	if total > 0 && done > total {
		total = done
	}
	return done, total
}

// Ack implements pipeline.Source; a binlog reader releases nothing.
func (s *Source) Ack(context.Context, uint64) error { return nil }

// Close implements pipeline.Source.
func (s *Source) Close() error {
	if s.snap != nil {
		_ = s.snap.close()
		s.snap = nil
	}
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
