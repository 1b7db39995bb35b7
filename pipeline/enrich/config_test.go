package enrich

import (
	"strings"
	"testing"
	"time"

	// The job loader's YAML library, here only to prove that the shape in
	// doc.go decodes as documented (`on:` included, which YAML 1.1 readers
	// take for a boolean).
	"github.com/goccy/go-yaml"
)

func validConfig() Config {
	return Config{
		Dimensions: map[string]Dimension{
			"channels": {JDBC: JDBC{DSN: "u:p@tcp(127.0.0.1:3306)/crm", Table: "crm.channels", Key: "id"}},
		},
		Rules: []Rule{{Match: "shop.*", Dim: "channels", On: "channel_id", Add: map[string]string{"channel_name": "name"}}},
	}
}

func TestDefaults(t *testing.T) {
	c := validConfig()
	c.Defaults()
	d := c.Dimensions["channels"]
	if d.Name != "channels" || d.JDBC.Driver != DriverMySQL || d.Cache.Size != DefaultCacheSize ||
		d.Cache.TTL != DefaultTTL || d.Cache.NegativeTTL != DefaultTTL || d.BatchSize != DefaultBatchSize {
		t.Errorf("defaults: %+v", d)
	}
	if len(d.Columns) != 1 || d.Columns[0] != "name" {
		t.Errorf("columns from the rules: %v", d.Columns)
	}
	if c.Rules[0].Missing != MissingNull {
		t.Errorf("missing: %q", c.Rules[0].Missing)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pg := Dimension{JDBC: JDBC{DSN: "postgres://u@h/db"}}
	pg.defaults()
	if pg.JDBC.Driver != DriverPostgres {
		t.Errorf("driver of a postgres:// DSN: %q", pg.JDBC.Driver)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { d := c.Dimensions["channels"]; d.Cache.Size = -1; c.Dimensions["channels"] = d },
			"dimensions.channels.cache.size: must be positive"},
		{func(c *Config) {
			d := c.Dimensions["channels"]
			d.Cache.TTL = -time.Second
			c.Dimensions["channels"] = d
		},
			"dimensions.channels.cache.ttl: must be positive"},
		{func(c *Config) { d := c.Dimensions["channels"]; d.BatchSize = 70000; c.Dimensions["channels"] = d },
			"dimensions.channels.batch_size: must be between 1 and 65535"},
		{func(c *Config) { d := c.Dimensions["channels"]; d.JDBC.Driver = "oracle"; c.Dimensions["channels"] = d },
			`dimensions.channels.jdbc.driver: "oracle" is not one of "mysql", "postgres"`},
		{func(c *Config) {
			d := c.Dimensions["channels"]
			d.JDBC.DSN = "no-at-sign/x?y"
			c.Dimensions["channels"] = d
		},
			"dimensions.channels.jdbc.dsn: "},
		{func(c *Config) { d := c.Dimensions["channels"]; d.JDBC.Key = ""; c.Dimensions["channels"] = d },
			"dimensions.channels.jdbc.key: required"},
		{func(c *Config) { d := c.Dimensions["channels"]; d.JDBC.Table = "a.b.c"; c.Dimensions["channels"] = d },
			"dimensions.channels.jdbc.table: "},
		{func(c *Config) {
			d := c.Dimensions["channels"]
			d.Columns = []string{"name", "name"}
			c.Dimensions["channels"] = d
		},
			`dimensions.channels.columns[1]: "name" is listed twice`},
		{func(c *Config) { c.Rules = nil }, "enrich: at least one rule is required"},
		{func(c *Config) { c.Rules[0].Missing = "skip" }, `enrich[0].missing: "skip" is not one of "null", "drop", "dead_letter"`},
		{func(c *Config) { c.Rules[0].Match = "shop.[" }, "enrich[0].match: "},
		{func(c *Config) { c.Rules[0].Dim = "chanels" }, `enrich[0].dim: unknown dimension "chanels" (declared: channels)`},
		{func(c *Config) { c.Rules[0].On = "" }, "enrich[0].on: required"},
		{func(c *Config) { c.Rules[0].Add = nil }, "enrich[0].add: at least one column is required"},
		{func(c *Config) {
			d := c.Dimensions["channels"]
			d.Columns = []string{"region"}
			c.Dimensions["channels"] = d
		}, `enrich[0].add.channel_name: "name" is not among dimensions.channels.columns [region]`},
	}
	for _, tc := range cases {
		c := validConfig()
		tc.edit(&c)
		c.Defaults()
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("got %v, want an error starting %q", err, tc.want)
		}
	}
	// New validates too, and leaves the caller's maps alone.
	dims := validConfig().Dimensions
	if _, err := New(dims, []Rule{{Match: "x", Dim: "channels", On: "a", Add: map[string]string{"b": "c"}, Missing: "maybe"}}); err == nil ||
		!strings.HasPrefix(err.Error(), "enrich[0].missing: ") {
		t.Errorf("New: %v", err)
	}
	if d := dims["channels"]; d.Name != "" || d.Cache.Size != 0 {
		t.Errorf("New changed the caller's dimension: %+v", d)
	}
}

func TestYAMLShape(t *testing.T) {
	const doc = `
dimensions:
  channels:
    jdbc:
      driver: mysql
      dsn: "u:p@tcp(127.0.0.1:3306)/crm"
      table: crm.channels
      key: id
    columns: [name, region]
    cache: {size: 5000, ttl: 10m, negative_ttl: 1m}
    batch_size: 250
enrich:
  - match: shop.orders
    dim: channels
    on: channel_id
    add: {channel_name: name, channel_region: region}
    missing: dead_letter
  - match: shop.*
    dim: channels
    on: channel_id
    add: {ch: name}
    missing: null
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.Dimensions["channels"]
	if d.Cache != (Cache{Size: 5000, TTL: 10 * time.Minute, NegativeTTL: time.Minute}) || d.BatchSize != 250 || d.JDBC.Key != "id" {
		t.Errorf("dimension %+v", d)
	}
	r := c.Rules[0]
	if r.On != "channel_id" || r.Missing != MissingDeadLetter || r.Add["channel_region"] != "region" {
		t.Errorf("rule %+v", r)
	}
	// An unquoted `null` is YAML's null: the default, which is "null".
	if c.Rules[1].Missing != MissingNull {
		t.Errorf("missing: null decoded as %q", c.Rules[1].Missing)
	}
}

func TestValidateStream(t *testing.T) {
	stream := func(edit func(d *Dimension)) Config {
		d := Dimension{Stream: &Stream{Table: "shop.customers", Key: "id"}, Columns: []string{"name"}}
		edit(&d)
		c := Config{Dimensions: map[string]Dimension{"customers": d},
			Rules: []Rule{{Match: "shop.orders", Dim: "customers", On: "customer_id", Add: map[string]string{"customer_name": "name"}}}}
		c.Defaults()
		return c
	}
	ok := stream(func(*Dimension) {})
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid stream dimension: %v", err)
	}
	if d := ok.Dimensions["customers"]; d.JDBC.isSet() {
		t.Errorf("defaults filled jdbc of a stream dimension: %+v", d.JDBC)
	}
	for _, c := range []struct {
		edit func(d *Dimension)
		want string
	}{
		{func(d *Dimension) { d.JDBC.DSN = "u:p@tcp(h:3306)/crm" }, "dimensions.customers.stream: set either jdbc or stream, not both"},
		{func(d *Dimension) { d.Stream.Table = "" }, "dimensions.customers.stream.table: required"},
		{func(d *Dimension) { d.Stream.Table = "shop." }, `dimensions.customers.stream.table: "shop." has an empty name part`},
		{func(d *Dimension) { d.Stream.Key = " " }, "dimensions.customers.stream.key: required"},
		{func(d *Dimension) { d.Stream = nil }, "dimensions.customers: either jdbc (a database table) or stream"},
		{func(d *Dimension) { d.Stream.Kafka = &KafkaTopic{Brokers: []string{"b:9092"}, Topic: "t"} },
			"dimensions.customers.stream: set either table (a table of this job's source) or kafka (a topic), not both"},
		{func(d *Dimension) { d.Stream.Table, d.Stream.Kafka = "", &KafkaTopic{Topic: "t"} },
			"dimensions.customers.stream.kafka.brokers: required"},
		{func(d *Dimension) {
			d.Stream.Table, d.Stream.Kafka = "", &KafkaTopic{Brokers: []string{""}, Topic: "t"}
		},
			"dimensions.customers.stream.kafka.brokers[0]: empty broker address"},
		{func(d *Dimension) { d.Stream.Table, d.Stream.Kafka = "", &KafkaTopic{Brokers: []string{"b:9092"}} },
			"dimensions.customers.stream.kafka.topic: required"},
	} {
		cfg := stream(c.edit)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v, want %q...", err, c.want)
		}
	}
	// The documented YAML shape decodes.
	var d Dimension
	if err := yaml.Unmarshal([]byte("stream: {table: shop.customers, key: id}\ncolumns: [name, tier]\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Stream == nil || d.Stream.Table != "shop.customers" || d.Stream.Key != "id" || len(d.Columns) != 2 {
		t.Errorf("decoded %+v", d)
	}
	// And the Kafka-fed one, which validates without a table.
	d = Dimension{}
	if err := yaml.Unmarshal([]byte("stream:\n  kafka: {brokers: [\"127.0.0.1:9092\"], topic: customers}\n  key: id\ncolumns: [name, tier]\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Stream == nil || d.Stream.Kafka == nil || d.Stream.Kafka.Topic != "customers" || len(d.Stream.Kafka.Brokers) != 1 || d.Stream.Key != "id" {
		t.Fatalf("decoded %+v", d)
	}
	kc := Config{Dimensions: map[string]Dimension{"customers": d},
		Rules: []Rule{{Match: "shop.orders", Dim: "customers", On: "customer_id", Add: map[string]string{"customer_name": "name"}}}}
	kc.Defaults()
	if err := kc.Validate(); err != nil {
		t.Errorf("valid kafka stream dimension: %v", err)
	}
}
