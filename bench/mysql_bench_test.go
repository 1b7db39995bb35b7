package bench

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/lake"
)

// mysqlRounds is how many times each measurement runs, interleaved with
// its baseline so that both see the same machine load; medians are
// reported.
const mysqlRounds = 3

// myRows is the table's rows and the binlog's row changes.
// SLUICE_BENCH_MYSQL_ROWS lowers it for a quick check of the benchmark
// itself; the targets are for 1,000,000.
var myRows = func() int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_MYSQL_ROWS")); err == nil && n > 0 {
		return n
	}
	return benchRows
}()

// myFixture is the MariaDB table both MySQL benchmarks read, loaded once
// per test binary: its load (1,000 transactions of 1,000 inserts) is the
// pre-written binlog the streaming benchmark reads, from startGTID.
type myFixture struct {
	bin       string
	my        *testinfra.MySQL
	startGTID string
	endGTID   string
	// binlogBytes is the size of the load's part of the binlog file.
	binlogBytes int64
	// serverPID is mariadbd's, for its CPU time; 0 if not found.
	serverPID int
}

// BenchmarkMySQL measures the MariaDB source through the sluice binary
// against what its libraries reach alone, in the same run:
//
//   - Stream: `sluice run --once` reading a binlog of 1,000,000 row
//     changes (inserts) into an upsert table, and into an append table,
//     against go-mysql's BinlogSyncer decoding the same binlog in-process.
//     Target: at least 0.5 of the raw decode rate.
//   - Snapshot: `sluice backfill` of the 1,000,000-row table into an upsert
//     table, against a plain keyset-chunked SELECT loop with
//     go-sql-driver. Target: at least 200,000 rows/s.
//
// Both: peak RSS of the sluice process under 400 MB. Every sluice run's
// table is scanned back and compared row by row with what was inserted.
//
// The rates are whole-process (exec to exit); the job's own time from its
// log is shown beside them. CPU seconds of sluice (or of this process for
// a baseline) and of mariadbd are shown per run: the machines are shared,
// and a run that got little CPU is slow however cheap it is.
//
// Environment:
//
//	SLUICE_BENCH_PPROF=DIR       after the measured rounds, one unmeasured
//	                             run of each job with SLUICE_PPROF; CPU and
//	                             heap profiles go to DIR
//	SLUICE_BENCH_BIN=PATH        run this sluice binary instead of building
//	                             ../cmd/sluice (to measure a change)
//	SLUICE_BENCH_MYSQL_PROPS=M   Iceberg properties of the tables the jobs
//	                             create, a YAML flow map (write options)
//	SLUICE_BENCH_MYSQL_ROWS=N    fewer rows, to check the benchmark itself
func BenchmarkMySQL(b *testing.B) {
	fx := setupMySQL(b)
	b.Run("Stream", func(b *testing.B) { benchMySQLStream(b, fx) })
	b.Run("Snapshot", func(b *testing.B) { benchMySQLSnapshot(b, fx) })
}

func setupMySQL(b *testing.B) *myFixture {
	b.Helper()
	my := testinfra.MariaDB(b)
	fx := &myFixture{my: my, serverPID: findServer(my.Port)}
	// SLUICE_BENCH_BIN runs a binary built elsewhere, to measure a change
	// side by side with the checkout's.
	if fx.bin = os.Getenv("SLUICE_BENCH_BIN"); fx.bin == "" {
		fx.bin = buildSluice(b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, myDDL); err != nil {
		b.Fatal(err)
	}
	// The positions after the CREATE TABLE: what follows is the load and
	// nothing else (the server is this test binary's own).
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&fx.startGTID); err != nil {
		b.Fatal(err)
	}
	before, err := masterPos(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	if err := loadMySQL(ctx, db, myRows); err != nil {
		b.Fatal(err)
	}
	took := time.Since(began)
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&fx.endGTID); err != nil {
		b.Fatal(err)
	}
	after, err := masterPos(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	if before.file == after.file {
		fx.binlogBytes = after.pos - before.pos
	}
	// Fresh statistics, so that the backfill's row estimate (its progress
	// total) is right; not timed.
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE "+myTable); err != nil {
		b.Fatal(err)
	}
	// The file holds each INSERT's text too (Annotate_rows events, on by
	// default), which a replica is not sent: the decode reports what is.
	fmt.Printf("\nloaded %d rows into %s.%s in %s (%.0f rows/s); binlog %s .. %s, %.1f MB in the file\n",
		myRows, my.Database, myTable, took.Round(time.Millisecond), float64(myRows)/took.Seconds(),
		fx.startGTID, fx.endGTID, float64(fx.binlogBytes)/1e6)
	if fx.serverPID == 0 {
		fmt.Println("mariadbd's PID not found: its CPU time shows as 0")
	}
	return fx
}

type myPos struct {
	file string
	pos  int64
}

func masterPos(ctx context.Context, db *sql.DB) (myPos, error) {
	var p myPos
	var doDB, ignoreDB string
	err := db.QueryRowContext(ctx, "SHOW MASTER STATUS").Scan(&p.file, &p.pos, &doDB, &ignoreDB)
	return p, err
}

func benchMySQLStream(b *testing.B, fx *myFixture) {
	ctx := context.Background()
	var decode, dwd, ods series
	var wire int64
	for i := 0; i < mysqlRounds; i++ {
		m, err := fx.inProcess(func() (err error) {
			wire, err = rawDecode(ctx, fx, uint32(7001+i), myRows)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		decode = append(decode, m)
		for _, layer := range []string{"dwd", "ods"} {
			m := fx.runJob(b, layer, streamJob(fx), "run", "--once")
			if layer == "dwd" {
				dwd = append(dwd, m)
			} else {
				ods = append(ods, m)
			}
		}
	}
	md, mw, mo := median(decode.rates()), median(dwd.rates()), median(ods.rates())
	mwj, moj := median(dwd.jobRates()), median(ods.jobRates())
	fmt.Printf("\n== MariaDB binlog streaming: sluice run --once vs go-mysql decode (%d row changes, all inserts, %d-row transactions, %.0f MB of events sent; medians of %d) ==\n",
		myRows, myInsertRows, float64(wire)/1e6, mysqlRounds)
	fmt.Print(header)
	fmt.Print(decode.line("go-mysql BinlogSyncer+GetEvent", decode.rates()))
	fmt.Print(dwd.line("sluice -> upsert table (dwd)", dwd.rates()))
	fmt.Print(dwd.line("  the job's own time", dwd.jobRates()))
	fmt.Print(ods.line("sluice -> append table (ods)", ods.rates()))
	fmt.Print(ods.line("  the job's own time", ods.jobRates()))
	fmt.Printf("ratio dwd / decode  %.2f  (target >= 0.50; job's own time %.2f)\n", mw/md, mwj/md)
	fmt.Printf("ratio ods / decode  %.2f  (job's own time %.2f)\n", mo/md, moj/md)
	fmt.Printf("sluice cpu per row vs decode's: dwd %.1fx, ods %.1fx\n", dwd.medianCPU()/decode.medianCPU(), ods.medianCPU()/decode.medianCPU())
	fmt.Printf("peak RSS of sluice  dwd %.0f MB (runs: %s), ods %.0f MB (runs: %s); target < 400 MB\n\n",
		mb(dwd.maxPeak()), fmtMB(dwd), mb(ods.maxPeak()), fmtMB(ods))
	b.ReportMetric(mw, "rows/s")
	b.ReportMetric(md, "decode-rows/s")
	b.ReportMetric(mw/md, "stream/decode")
	b.ReportMetric(mb(dwd.maxPeak()), "peak-MB")
	b.ReportMetric(mo, "ods-rows/s")
	b.ReportMetric(mo/md, "ods/decode")
	b.ReportMetric(mb(ods.maxPeak()), "ods-peak-MB")

	if dir := os.Getenv("SLUICE_BENCH_PPROF"); dir != "" {
		fx.profile(b, filepath.Join(dir, "stream-dwd"), mwj, "dwd", streamJob(fx), "run", "--once")
		fx.profile(b, filepath.Join(dir, "stream-ods"), moj, "ods", streamJob(fx), "run", "--once")
	}
}

func benchMySQLSnapshot(b *testing.B, fx *myFixture) {
	ctx := context.Background()
	var sel, snap series
	for i := 0; i < mysqlRounds; i++ {
		m, err := fx.inProcess(func() error { return rawSelect(ctx, fx, myRows, 10_000) })
		if err != nil {
			b.Fatal(err)
		}
		sel = append(sel, m)
		snap = append(snap, fx.runJob(b, "dwd", snapshotJob, "backfill"))
	}
	ms, mj, msel := median(snap.rates()), median(snap.jobRates()), median(sel.rates())
	fmt.Printf("\n== MariaDB snapshot: sluice backfill vs a plain SELECT loop (%d rows; medians of %d) ==\n", myRows, mysqlRounds)
	fmt.Print(header)
	fmt.Print(sel.line("SELECT * ... WHERE id > ? LIMIT 10000", sel.rates()))
	fmt.Print(snap.line("sluice backfill -> upsert (dwd)", snap.rates()))
	fmt.Print(snap.line("  the job's own time", snap.jobRates()))
	fmt.Printf("backfill  %.0f rows/s  (target >= 200000)\n", ms)
	fmt.Printf("ratio backfill / SELECT loop  %.2f  (job's own time %.2f)\n", ms/msel, mj/msel)
	fmt.Printf("sluice cpu per row vs the SELECT loop's: %.1fx\n", snap.medianCPU()/sel.medianCPU())
	fmt.Printf("peak RSS of sluice  %.0f MB (runs: %s); target < 400 MB\n\n", mb(snap.maxPeak()), fmtMB(snap))
	b.ReportMetric(ms, "rows/s")
	b.ReportMetric(msel, "select-rows/s")
	b.ReportMetric(ms/msel, "snapshot/select")
	b.ReportMetric(mb(snap.maxPeak()), "peak-MB")

	if dir := os.Getenv("SLUICE_BENCH_PPROF"); dir != "" {
		fx.profile(b, filepath.Join(dir, "snapshot-dwd"), mj, "dwd", snapshotJob, "backfill")
	}
}

// The source sections of the two jobs.
func streamJob(fx *myFixture) string {
	return "    snapshot: never\n    start_gtid: \"" + fx.startGTID + "\"\n"
}

const snapshotJob = "    snapshot: initial\n"

// runJob runs one sluice job into a fresh lake, checks the table it wrote
// and removes the lake (1,000,000 rows of Parquet per run).
func (fx *myFixture) runJob(b *testing.B, layer, source string, args ...string) measured {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	job := writeMySQLJob(b, fx, dir, layer, source)
	m, _, err := fx.runSluice(ctx, nil, append(args, "-c", job)...)
	if err != nil {
		b.Fatal(err)
	}
	if err := verifyLake(ctx, lakeConfig(dir), "bench."+layer+"_"+myTable, myRows); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(dir)
	return m
}

// rawDecode is the ceiling of the streaming benchmark: go-mysql alone
// reading the load's binlog from startGTID, with the source's decoding
// options, until it decoded want row changes of bench10. It returns the
// bytes of the events it was sent.
func rawDecode(ctx context.Context, fx *myFixture, serverID uint32, want int) (wire int64, err error) {
	set, err := gomysql.ParseGTIDSet(gomysql.MariaDBFlavor, fx.startGTID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: gomysql.MariaDBFlavor,
		Host: fx.my.Host, Port: uint16(fx.my.Port), User: fx.my.CDCUser, Password: fx.my.CDCPassword,
		UseDecimal: true, ParseTime: true, DisableRetrySync: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer syncer.Close()
	st, err := syncer.StartSyncGTID(set)
	if err != nil {
		return 0, err
	}
	n := 0
	for n < want {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return 0, fmt.Errorf("raw decode after %d rows: %w", n, err)
		}
		wire += int64(ev.Header.EventSize)
		re, ok := ev.Event.(*replication.RowsEvent)
		if !ok || string(re.Table.Table) != myTable || string(re.Table.Schema) != fx.my.Database {
			continue
		}
		if re.Type() == replication.EnumRowsEventTypeUpdate {
			n += len(re.Rows) / 2 // before and after image of each change
		} else {
			n += len(re.Rows)
		}
	}
	if n != want {
		return 0, fmt.Errorf("raw decode: %d row changes, want %d", n, want)
	}
	return wire, nil
}

// rawSelect is the ceiling of the snapshot benchmark: one connection
// reading the table in primary-key chunks with a `?` argument (prepared,
// binary protocol), each row scanned into []any.
func rawSelect(ctx context.Context, fx *myFixture, want, chunk int) error {
	db, err := sql.Open("mysql", fx.my.CDCDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	q := "SELECT * FROM " + myTable + " WHERE id > ? ORDER BY id LIMIT " + strconv.Itoa(chunk)
	vals := make([]any, len(myColumns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n, last := 0, int64(0)
	for {
		rows, err := db.QueryContext(ctx, q, last)
		if err != nil {
			return err
		}
		got := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			got++
			last = vals[0].(int64)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n += got
		if got < chunk {
			break
		}
	}
	if n != want {
		return fmt.Errorf("raw select: %d rows, want %d", n, want)
	}
	return nil
}

// writeMySQLJob writes a job reading bench10 into one table of layer
// ("dwd": upsert, "ods": append) under dir. One checkpoint holds all the
// rows, as in BenchmarkEndToEndVsRawAppend, so peak RSS is the sink's at a
// 1,000,000-row checkpoint.
func writeMySQLJob(b *testing.B, fx *myFixture, dir, layer, snapshot string) string {
	b.Helper()
	tables := regexp.QuoteMeta(fx.my.Database) + `\.` + myTable
	y := fmt.Sprintf(`job: bench-mysql
source:
  mysql:
    dsn: %q
    tables: ['%s']
%ssink:
  catalog: {type: sql, uri: "sqlite://%[4]s/catalog.db"}
  warehouse: "file://%[4]s/warehouse"
  namespace: bench
  tables:
    - {match: "*", %[5]s: "%[5]s_{table}", properties: %[7]s}
checkpoint:
  dir: %[4]s/state
  interval: 1h
  max_records: %[6]d
  max_bytes: 4294967296
log: {level: info, format: json}
`, fx.my.CDCDSN(), tables, snapshot, dir, layer, myRows, tableProps)
	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	return job
}

// tableProps are the Iceberg properties of the tables the jobs create, a
// YAML flow map: SLUICE_BENCH_MYSQL_PROPS measures the write options, e.g.
// '{write.parquet.compression-codec: snappy}'.
var tableProps = cmp.Or(os.Getenv("SLUICE_BENCH_MYSQL_PROPS"), "{}")

func lakeConfig(dir string) *lake.Config {
	c := &lake.Config{Catalog: lake.CatalogConfig{Type: "sql", URI: "sqlite://" + dir + "/catalog.db"}, Warehouse: "file://" + dir + "/warehouse", Namespace: "bench"}
	c.Defaults()
	return c
}

// measured is one run of a baseline or of the sluice binary.
type measured struct {
	// wall: a baseline's call, or the sluice process from exec to exit.
	// job: the job's own time from its log (sluice only).
	wall, job time.Duration
	// cpu is user+system time of the sluice process, or of this process
	// during a baseline; server is mariadbd's meanwhile. On a shared
	// machine they say more than the rates: a run that gets little CPU
	// is slow however cheap it is.
	cpu, server time.Duration
	// peak is the sluice process's VmHWM.
	peak int64
}

type series []measured

func (s series) rates() []float64 {
	out := make([]float64, len(s))
	for i, m := range s {
		out[i] = float64(myRows) / m.wall.Seconds()
	}
	return out
}

func (s series) jobRates() []float64 {
	out := make([]float64, len(s))
	for i, m := range s {
		out[i] = float64(myRows) / m.job.Seconds()
	}
	return out
}

func (s series) medianCPU() float64 {
	out := make([]float64, len(s))
	for i, m := range s {
		out[i] = m.cpu.Seconds()
	}
	return median(out)
}

func (s series) maxPeak() int64 {
	var p int64
	for _, m := range s {
		p = max(p, m.peak)
	}
	return p
}

const header = "                                        median rows/s  runs                      cpu s: client + server, wall s\n"

// line is one row of the report; the per-run costs are left out when
// rates are s's job rates (the same runs as the line above).
func (s series) line(label string, rates []float64) string {
	if strings.HasPrefix(label, "  ") {
		return fmt.Sprintf("%-40s %10.0f     %s\n", label, median(rates), fmtRates(rates))
	}
	costs := make([]string, len(s))
	for i, m := range s {
		costs[i] = fmt.Sprintf("%.1f+%.1f/%.1f", m.cpu.Seconds(), m.server.Seconds(), m.wall.Seconds())
	}
	return fmt.Sprintf("%-40s %10.0f     %-25s %s\n", label, median(rates), fmtRates(rates), strings.Join(costs, ", "))
}

// inProcess measures a baseline run in this process.
func (fx *myFixture) inProcess(fn func() error) (measured, error) {
	s0, c0 := fx.serverCPU(), selfCPU()
	began := time.Now()
	err := fn()
	return measured{wall: time.Since(began), cpu: selfCPU() - c0, server: fx.serverCPU() - s0}, err
}

// runSluice runs the binary to its end and measures it; it returns the
// process's stderr (the job's log) too.
func (fx *myFixture) runSluice(ctx context.Context, env []string, args ...string) (measured, []byte, error) {
	return fx.measureSluice(ctx, 10*time.Minute, fx.bin, append(append(os.Environ(), "MALLOC_ARENA_MAX=1"), env...), args...)
}

// measureSluice runs bin with exactly env, within timeout, and measures
// it: wall time, the job's own time from its log, CPU time, VmHWM, and
// the server's CPU meanwhile. It returns the process's stderr too.
func (fx *myFixture) measureSluice(ctx context.Context, timeout time.Duration, bin string, env []string, args ...string) (measured, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	s0 := fx.serverCPU()
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return measured{}, nil, err
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	m := measured{wall: time.Since(started), peak: peak(), server: fx.serverCPU() - s0}
	if err != nil {
		return m, logs.Bytes(), fmt.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, tail(logs.Bytes(), 4000))
	}
	m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	secs, err := jobTook(logs.Bytes())
	if err != nil {
		return m, logs.Bytes(), err
	}
	m.job = time.Duration(secs * float64(time.Second))
	return m, logs.Bytes(), nil
}

// profile runs a job once more with SLUICE_PPROF and takes a CPU profile
// over most of the run (the endpoint needs the length up front, and a
// profile cut short by the process's exit is lost), then a heap profile.
// The job's log, with the runtime's GC trace (heap sizes: the Go part of
// the peak RSS), goes beside them. The run is not measured; its table is
// not checked.
func (fx *myFixture) profile(b *testing.B, prefix string, rowsPerSec float64, layer, source string, args ...string) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		b.Fatal(err)
	}
	job := writeMySQLJob(b, fx, b.TempDir(), layer, source)
	secs := max(1, int(0.75*float64(myRows)/rowsPerSec))
	done := make(chan error, 1)
	go func() {
		m, logs, err := fx.runSluice(context.Background(), []string{"SLUICE_PPROF=" + addr, "GODEBUG=gctrace=1"}, append(args, "-c", job)...)
		if werr := os.WriteFile(prefix+".log", logs, 0o644); err == nil {
			err = werr
		}
		fmt.Printf("profiled run of sluice %s (%s): %.1f s, cpu %.1f s, peak RSS %.0f MB\n",
			strings.Join(args, " "), layer, m.wall.Seconds(), m.cpu.Seconds(), mb(m.peak))
		done <- err
	}()
	get := func(path, file string) {
		var resp *http.Response
		var err error
		for try := 0; try < 100; try++ { // until the process listens
			if resp, err = http.Get("http://" + addr + path); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			b.Logf("profile %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Logf("profile %s: %v %s", path, err, resp.Status)
			return
		}
		if err := os.WriteFile(file, body, 0o644); err != nil {
			b.Logf("profile %s: %v", path, err)
		}
	}
	get("/debug/pprof/profile?seconds="+strconv.Itoa(secs), prefix+".cpu.pprof")
	get("/debug/pprof/heap", prefix+".heap.pprof")
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("profiles of sluice %s (%s): %s.{cpu,heap}.pprof, cpu over the first %ds; log with GC trace: %[3]s.log\n", strings.Join(args, " "), layer, prefix, secs)
}

// selfCPU is this process's user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is mariadbd's user+system time, 0 when its PID is unknown.
func (fx *myFixture) serverCPU() time.Duration {
	if fx.serverPID == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", fx.serverPID))
	if err != nil {
		return 0
	}
	// The fields after the command's closing parenthesis start with the
	// state (field 3); utime and stime are fields 14 and 15, in clock
	// ticks of 1/100 s (USER_HZ on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// findServer returns the PID of the mariadbd listening on port: testinfra
// does not export it, and the server's CPU time tells whether it or the
// client is the limit.
func findServer(port int) int {
	dirs, _ := os.ReadDir("/proc")
	want := "--port=" + strconv.Itoa(port)
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "mariadbd" && slices.Contains(args, want) {
			return pid
		}
	}
	return 0
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func fmtMB(s series) string {
	out := make([]string, len(s))
	for i, m := range s {
		out[i] = fmt.Sprintf("%.0f", mb(m.peak))
	}
	return strings.Join(out, ", ")
}
