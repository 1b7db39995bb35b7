package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/lake"
	"github.com/sluice-cdc/sluice/pipeline"
)

// The MySQL benchmarks' source table: ten columns of the common kinds, about
// 190 bytes of values per row, close to the 10-column table the ceilings in
// DESIGN.md were measured with. Every column is NOT NULL so that a value
// lost on the way shows up as a mismatch rather than as a NULL that might
// have been meant.
const (
	myTable = "bench10"
	myDDL   = `CREATE TABLE bench10 (
  id    BIGINT        NOT NULL PRIMARY KEY,
  qty   INT           NOT NULL,
  ref   BIGINT        NOT NULL,
  price DECIMAL(12,2) NOT NULL,
  score DOUBLE        NOT NULL,
  code  VARCHAR(32)   NOT NULL,
  name  VARCHAR(64)   NOT NULL,
  ts    DATETIME(6)   NOT NULL,
  flag  TINYINT       NOT NULL,
  note  TEXT          NOT NULL
) ENGINE=InnoDB`
	// myInsertRows is the rows of one INSERT, and of one transaction:
	// small transactions, as an OLTP binlog has, and 1,000 of them.
	myInsertRows = 1000
)

var myColumns = [...]string{"id", "qty", "ref", "price", "score", "code", "name", "ts", "flag", "note"}

// myQuoted marks the columns whose SQL literal is a quoted string.
var myQuoted = [len(myColumns)]bool{5: true, 6: true, 7: true, 9: true}

// mix is splitmix64: rows derive from their id alone, so any row can be
// regenerated to check what landed in the lake, without keeping 1,000,000
// rows in memory.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// textAlphabet has 64 characters and neither quotes nor backslashes, so
// values need no escaping in SQL literals.
const textAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"

func appendText(buf []byte, seed uint64, n int) []byte {
	for n > 0 {
		seed = mix(seed)
		for k, r := 0, seed; k < 10 && n > 0; k, r, n = k+1, r>>6, n-1 {
			buf = append(buf, textAlphabet[r&63])
		}
	}
	return buf
}

var myEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const myTimeLayout = "2006-01-02 15:04:05.000000"

// myRow writes row id's values into out in canonical text: the SQL literal
// (unquoted) and, through canonical, the form a lake value is compared in.
// Doubles are multiples of 1/4 so that text and binary agree exactly.
func myRow(id int64, out *[len(myColumns)]string, scratch []byte) {
	h := mix(uint64(id))
	h2, h3 := mix(h), mix(h^0x5555)
	out[0] = strconv.FormatInt(id, 10)
	out[1] = strconv.FormatInt(int64(h%2_000_000)-1_000_000, 10)
	out[2] = strconv.FormatInt(int64(h2>>1), 10)
	out[3] = pipeline.Decimal{Unscaled: int64(h2%200_000_000_000) - 100_000_000_000, Scale: 2}.String()
	out[4] = strconv.FormatFloat(float64(h3%1_000_000)/4, 'g', -1, 64)
	out[5] = string(appendText(scratch[:0], h^1, 8+int(h>>20)%17))  // 8..24
	out[6] = string(appendText(scratch[:0], h^2, 16+int(h>>28)%33)) // 16..48
	out[7] = myEpoch.Add(time.Duration(id)*time.Second + time.Duration(h3%1_000_000)*time.Microsecond).Format(myTimeLayout)
	out[8] = strconv.FormatInt(int64(h3>>40)%256-128, 10)
	out[9] = string(appendText(scratch[:0], h^3, 80+int(h>>36)%41)) // 80..120
}

// loadMySQL inserts rows 1..n into bench10 with two connections (the
// server has two cores), one transaction per INSERT of myInsertRows rows.
func loadMySQL(ctx context.Context, db *sql.DB, n int) error {
	const workers = 2
	chunks := (n + myInsertRows - 1) / myInsertRows
	g, ctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			var vals [len(myColumns)]string
			scratch := make([]byte, 0, 128)
			var q strings.Builder
			for c := w; c < chunks; c += workers {
				q.Reset()
				q.WriteString("INSERT INTO " + myTable + " VALUES ")
				lo, hi := c*myInsertRows+1, min((c+1)*myInsertRows, n)
				for id := lo; id <= hi; id++ {
					if id > lo {
						q.WriteByte(',')
					}
					myRow(int64(id), &vals, scratch)
					q.WriteByte('(')
					for i, v := range vals {
						if i > 0 {
							q.WriteByte(',')
						}
						if myQuoted[i] {
							q.WriteByte('\'')
							q.WriteString(v)
							q.WriteByte('\'')
						} else {
							q.WriteString(v)
						}
					}
					q.WriteByte(')')
				}
				if _, err := db.ExecContext(ctx, q.String()); err != nil {
					return fmt.Errorf("insert rows %d..%d: %w", lo, hi, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// canonical renders a value as ScanTable returns it in myRow's text form.
func canonical(v any) string {
	switch x := v.(type) {
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case pipeline.Decimal:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	case time.Time:
		return x.UTC().Format(myTimeLayout)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// verifyLake checks that a lake table holds rows 1..n of bench10 exactly
// once each, every column equal to what was inserted. A throughput figure
// of a run that lost, repeated or mangled rows would be worthless.
func verifyLake(ctx context.Context, cfg *lake.Config, name string, n int) error {
	seen := make([]bool, n+1)
	var idx [len(myColumns)]int
	var want [len(myColumns)]string
	scratch := make([]byte, 0, 128)
	count := 0
	err := lake.ScanTable(ctx, cfg, name, 0, func(cols []string, row []any) error {
		if count == 0 {
			for i, c := range myColumns {
				idx[i] = -1
				for j, have := range cols {
					if have == c {
						idx[i] = j
					}
				}
				if idx[i] < 0 {
					return fmt.Errorf("column %s missing; the table has %v", c, cols)
				}
			}
		}
		id, ok := row[idx[0]].(int64)
		if !ok || id < 1 || id > int64(n) {
			return fmt.Errorf("row %d: id %s is not one of 1..%d", count, canonical(row[idx[0]]), n)
		}
		if seen[id] {
			return fmt.Errorf("id %d appears twice", id)
		}
		seen[id] = true
		count++
		myRow(id, &want, scratch)
		for i := range want {
			if got := canonical(row[idx[i]]); got != want[i] {
				return fmt.Errorf("id %d, column %s: got %q, inserted %q", id, myColumns[i], got, want[i])
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify %s: %w", name, err)
	}
	if count != n {
		return fmt.Errorf("verify %s: %d rows, want %d", name, count, n)
	}
	return nil
}
