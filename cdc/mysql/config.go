package mysql

import (
	"fmt"
	"regexp"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// DefaultServerID is the replica id the source registers with when
// Config.ServerID is 0. It must differ from every server and every other
// replica of the same primary.
const DefaultServerID uint32 = 54321

// Config is the `source.mysql` section of a job.
type Config struct {
	// DSN is a go-sql-driver/mysql DSN, user:pass@tcp(host:port)/. It is
	// used for metadata queries and server checks, and its user, password
	// and address for the binlog connection (TCP only, no TLS yet).
	DSN string `yaml:"dsn"`
	// ServerID is the replica id; default 54321.
	ServerID uint32 `yaml:"server_id"`
	// Flavor is "mysql" or "mariadb"; empty detects it from VERSION().
	Flavor string `yaml:"flavor"`
	// Tables are regular expressions over "db.table", matched against the
	// whole name (they are anchored), e.g. `shop\.(orders|items)`.
	Tables []string `yaml:"tables"`
	// StartGTID is where a first start begins (a MariaDB GTID position
	// "0-1-42" or a MySQL GTID set); default: the server's current GTID
	// position when the source first opens. A restored checkpoint wins.
	StartGTID string `yaml:"start_gtid"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.ServerID == 0 {
		c.ServerID = DefaultServerID
	}
	c.Flavor = strings.ToLower(strings.TrimSpace(c.Flavor))
}

const prefix = "source.mysql"

// Validate reports the first invalid field, named as in the job's YAML.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DSN) == "" {
		return fmt.Errorf("%s.dsn: required (user:pass@tcp(host:port)/)", prefix)
	}
	dc, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	if dc.Net != "tcp" {
		return fmt.Errorf("%s.dsn: the binlog connection needs tcp(host:port), got network %q", prefix, dc.Net)
	}
	if _, _, err := splitAddr(dc.Addr); err != nil {
		return fmt.Errorf("%s.dsn: %v", prefix, err)
	}
	if c.ServerID == 0 {
		return fmt.Errorf("%s.server_id: must not be 0", prefix)
	}
	switch c.Flavor {
	case "", gomysql.MySQLFlavor, gomysql.MariaDBFlavor:
	default:
		return fmt.Errorf("%s.flavor: %q is not one of \"mysql\", \"mariadb\" (or empty to detect)", prefix, c.Flavor)
	}
	if len(c.Tables) == 0 {
		return fmt.Errorf("%s.tables: at least one regular expression over \"db.table\" is required", prefix)
	}
	for i, t := range c.Tables {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s.tables[%d]: empty expression", prefix, i)
		}
		if _, err := regexp.Compile(anchor(t)); err != nil {
			return fmt.Errorf("%s.tables[%d]: %v", prefix, i, err)
		}
	}
	if c.StartGTID != "" && c.Flavor != "" {
		if _, err := gomysql.ParseGTIDSet(c.Flavor, c.StartGTID); err != nil {
			return fmt.Errorf("%s.start_gtid: %q is not a %s GTID set: %v", prefix, c.StartGTID, c.Flavor, err)
		}
	}
	return nil
}

func anchor(re string) string { return "^(?:" + re + ")$" }

// matcher reports whether "db.table" is captured.
type matcher []*regexp.Regexp

func newMatcher(res []string) (matcher, error) {
	m := make(matcher, 0, len(res))
	for i, r := range res {
		re, err := regexp.Compile(anchor(r))
		if err != nil {
			return nil, fmt.Errorf("%s.tables[%d]: %v", prefix, i, err)
		}
		m = append(m, re)
	}
	return m, nil
}

func (m matcher) match(db, table string) bool {
	name := db + "." + table
	for _, re := range m {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}
