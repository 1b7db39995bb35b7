package mysql

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// The source is positioned by GTID: a GTID set survives failovers and
// binlog rotation, and it is what checkpoints hold. A start given as a
// binlog file and offset (Config.StartPosition, say from a backup's
// metadata or another tool's offsets) is turned into the GTID set of the
// transactions before that offset, once, at the first Open: the binlog
// file is read from its start, where the server records the GTID state
// before the file (MySQL's Previous_gtids event, MariaDB's Gtid_list),
// and every transaction up to the offset is added to it.

// parseStartPosition splits "file:offset".
func parseStartPosition(s string) (file string, pos uint32, err error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return "", 0, fmt.Errorf("%q is not file:offset, e.g. binlog.000003:1234", s)
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil || p < 4 {
		return "", 0, fmt.Errorf("%q: the offset must be a number of at least 4", s)
	}
	return s[:i], uint32(p), nil
}

// scanWait bounds the wait for the binlog's next event while a start
// position is translated: the server sends heartbeats every 200 ms, so an
// offset at the end of the binlog is noticed at once.
const scanWait = 30 * time.Second

// gtidAtPosition returns the GTID set (MariaDB: the GTID position) of the
// transactions that end at or before offset pos of the binlog file. The
// offset must fall between two transactions.
func (s *Source) gtidAtPosition(ctx context.Context, file string, pos uint32) (string, error) {
	cfg := s.syncerConfig()
	cfg.HeartbeatPeriod = 200 * time.Millisecond
	cfg.ReadTimeout = scanWait
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	streamer, err := syncer.StartSync(gomysql.Position{Name: file, Pos: 4})
	if err != nil {
		return "", fmt.Errorf("read binlog %s: %w", file, err)
	}
	var (
		mysqlSet gomysql.GTIDSet
		maria    = map[uint32]gomysql.MariadbGTID{} // domain -> last GTID
		cur      string                             // GTID of the transaction being read
		explicit bool                               // it ends with COMMIT or XID
		last     uint32                             // end offset of the last event read
	)
	end := func() error {
		if s.flavor == gomysql.MySQLFlavor {
			if mysqlSet == nil {
				return fmt.Errorf("binlog %s has no Previous_gtids event before its first transaction", file)
			}
			if err := mysqlSet.Update(cur); err != nil {
				return err
			}
		} else {
			g, err := gomysql.ParseMariadbGTID(cur)
			if err != nil {
				return err
			}
			maria[g.DomainID] = *g
		}
		cur = ""
		return nil
	}
	result := func() string {
		if s.flavor == gomysql.MySQLFlavor {
			if mysqlSet == nil {
				return ""
			}
			return mysqlSet.String()
		}
		doms := make([]uint32, 0, len(maria))
		for d := range maria {
			doms = append(doms, d)
		}
		sort.Slice(doms, func(i, j int) bool { return doms[i] < doms[j] })
		parts := make([]string, len(doms))
		for i, d := range doms {
			g := maria[d]
			parts[i] = g.String()
		}
		return strings.Join(parts, ",")
	}
	// atEnd: the file has no event after the last one read.
	atEnd := func() (string, error) {
		switch {
		case pos == 4: // the file's start: no transaction of it
		case last != pos:
			return "", fmt.Errorf("binlog %s ends at %d, before offset %d", file, last, pos)
		case cur != "":
			return "", fmt.Errorf("offset %d of %s is inside transaction %s, which is not complete", pos, file, cur)
		}
		return result(), nil
	}
	for {
		ectx, cancel := context.WithTimeout(ctx, scanWait)
		ev, err := streamer.GetEvent(ectx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return "", fmt.Errorf("binlog %s ends at %d, before offset %d", file, last, pos)
			}
			return "", fmt.Errorf("read binlog %s: %w", file, err)
		}
		h := ev.Header
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			if string(e.NextLogName) == file {
				continue // the rotate that starts the stream
			}
			return atEnd() // the file is complete
		case *replication.HeartbeatEvent:
			// Sent when the stream waits at the end of the binlog.
			return atEnd()
		}
		if h.LogPos == 0 {
			continue // an artificial event
		}
		start := h.LogPos - h.EventSize
		if pos == 4 {
			// The file's start: the state before its first transaction.
			switch ev.Event.(type) {
			case *replication.GTIDEvent, *replication.MariadbGTIDEvent:
				return result(), nil
			}
		} else if start >= pos && last != 0 {
			switch {
			case start > pos || last != pos:
				return "", fmt.Errorf("offset %d of %s is not where an event starts (events end at %d and %d)", pos, file, last, h.LogPos)
			case cur != "":
				return "", fmt.Errorf("offset %d of %s is inside transaction %s: use the offset of its GTID event or of the event after its commit", pos, file, cur)
			}
			return result(), nil
		}
		last = h.LogPos
		switch e := ev.Event.(type) {
		case *replication.PreviousGTIDsEvent:
			set, err := gomysql.ParseMysqlGTIDSet(e.GTIDSets)
			if err != nil {
				return "", fmt.Errorf("binlog %s: Previous_gtids %q: %w", file, e.GTIDSets, err)
			}
			mysqlSet = set
		case *replication.MariadbGTIDListEvent:
			for _, g := range e.GTIDs {
				if have, ok := maria[g.DomainID]; !ok || g.SequenceNumber > have.SequenceNumber {
					maria[g.DomainID] = g
				}
			}
		case *replication.GTIDEvent:
			next, err := e.GTIDNext()
			if err != nil {
				return "", fmt.Errorf("binlog %s: GTID event: %w", file, err)
			}
			cur, explicit = next.String(), false
		case *replication.MariadbGTIDEvent:
			cur, explicit = e.GTID.String(), !e.IsStandalone()
		case *replication.TransactionPayloadEvent:
			// MySQL binlog_transaction_compression: the payload holds the
			// whole transaction, its commit included.
			if cur != "" {
				if err := end(); err != nil {
					return "", err
				}
			}
		case *replication.XIDEvent:
			if cur != "" {
				if err := end(); err != nil {
					return "", err
				}
			}
		case *replication.QueryEvent:
			if cur == "" {
				continue
			}
			switch q := strings.ToUpper(strings.TrimSpace(string(e.Query))); {
			case q == "BEGIN":
				explicit = true
			case q == "COMMIT" || q == "ROLLBACK" || !explicit:
				// A DDL or another single-statement transaction ends
				// with its statement, as in Source.handle.
				if err := end(); err != nil {
					return "", err
				}
			}
		}
	}
}
