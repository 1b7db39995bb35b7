package mysql

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The fast DECIMAL and DATETIME parsers agree with the general ones on
// every value they accept, and decline what they cannot read exactly.
func TestFastParsers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20000; i++ {
		scale := rng.IntN(8)
		s := strconv.FormatInt(rng.Int64N(1_000_000_000_000)-500_000_000_000, 10)
		if scale > 0 {
			neg := s[0] == '-'
			if neg {
				s = s[1:]
			}
			for len(s) <= scale {
				s = "0" + s
			}
			s = s[:len(s)-scale] + "." + s[len(s)-scale:]
			if neg {
				s = "-" + s
			}
		}
		u, ok := parseUnscaled(s, scale)
		if !ok {
			t.Fatalf("parseUnscaled(%q, %d) declined", s, scale)
		}
		want := decimal.RequireFromString(s).Shift(int32(scale)).IntPart()
		if u != want {
			t.Fatalf("parseUnscaled(%q, %d) = %d, want %d", s, scale, u, want)
		}
	}
	for _, s := range []string{"", "-", ".", "1.2.3", "1e5", "12345678901234567890", "1.234"} {
		if u, ok := parseUnscaled(s, 2); ok {
			t.Errorf("parseUnscaled(%q, 2) = %d, want declined", s, u)
		}
	}
	if u, ok := parseUnscaled("-0.5", 3); !ok || u != -500 {
		t.Errorf("parseUnscaled(-0.5, 3) = %d, %v", u, ok)
	}

	for i := 0; i < 20000; i++ {
		want := time.Unix(rng.Int64N(300*365*86400)-100*365*86400, rng.Int64N(1e9)).UTC()
		layout := "2006-01-02 15:04:05"
		if f := rng.IntN(7); f > 0 {
			layout += "." + "000000"[:f]
		}
		s := want.Format(layout)
		got, ok := parseDatetime(s)
		if !ok {
			t.Fatalf("parseDatetime(%q) declined", s)
		}
		slow, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(slow.Truncate(time.Microsecond)) {
			t.Fatalf("parseDatetime(%q) = %v, want %v", s, got, slow)
		}
	}
	for _, s := range []string{"2024-02-30 00:00:00", "2024-13-01 00:00:00", "2024-01-01T00:00:00", "2024-01-01 00:00:00.", "2024-01-01 25:00:00", "0000-00-00 00:00:00"} {
		if got, ok := parseDatetime(s); ok {
			t.Errorf("parseDatetime(%q) = %v, want declined", s, got)
		}
	}
}
