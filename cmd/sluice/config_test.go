package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/datagen"
)

// env is a fake environment for parseConfig.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// keysOf lists the YAML keys of T as error messages do; packages being
// written alongside this one add fields, which must not break these tests.
func keysOf[T any]() string { return strings.Join(yamlKeys(reflect.TypeFor[T]()), ", ") }

// doc joins lines so that test inputs show their line numbers plainly.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  []string
		// want is the exact one-line error: file:line:col: message.
		want string
	}{
		{
			name: "unknown key at top level",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sinks: {}",
			),
			want: `job.yaml:3:1: unknown field "sinks" at top level (expected one of: ` + keysOf[JobConfig]() + `)`,
		},
		{
			name: "bad expression in a derived column",
			yaml: doc(
				"job: shop",
				"source: {datagen: {tables: [{name: shop.orders, preset: orders}]}}",
				"transforms:",
				"  - match: shop.orders",
				"    columns:",
				`      total: {expr: "amont * 2", type: "decimal(14,2)"}`,
			),
			want: `job.yaml:6:7: transforms[0].columns.total: unknown name amont (line 1, column 1 of the expression)`,
		},
		{
			name: "where that is not boolean",
			yaml: doc(
				"job: shop",
				"source: {datagen: {tables: [{name: shop.orders, preset: orders}]}}",
				"transforms:",
				"  - match: shop.orders",
				`    where: quantity + 1`,
			),
			want: `job.yaml:5:5: transforms[0].where:`,
		},
		{
			name: "dedupe ttl",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
				"    trim: [\"*\"]",
				"  - match: shop.items",
				"    dedupe: {ttl: -1s}",
			),
			want: `job.yaml:7:14: transforms[1].dedupe.ttl: must be positive`,
		},
		{
			name: "memory limit too small",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"process: {memory_limit: 1000}",
			),
			want: `job.yaml:3:11: process.memory_limit: must be at least 32 MiB (33554432), or -1 for none, got 1000`,
		},
		{
			name: "enrich with an unknown dimension",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: nowhere, on: customer_id, add: {name: name}}",
			),
			want: `job.yaml:6:10: transforms[0].enrich[0].dim: unknown dimension "nowhere" (none are declared)`,
		},
		{
			name: "a dimension with both jdbc and stream",
			yaml: doc(
				"job: shop",
				"source: {datagen: {tables: [{name: shop.orders, preset: orders}, {name: shop.customers, preset: orders}]}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_status: status}}",
				"dimensions:",
				"  customers:",
				"    jdbc: {dsn: \"u:p@tcp(h:3306)/crm\", table: customers, key: id}",
				"    stream: {table: shop.customers, key: id}",
			),
			want: `job.yaml:10:5: dimensions.customers.stream: set either jdbc or stream, not both`,
		},
		{
			name: "a stream dimension of a table the source does not capture",
			yaml: doc(
				"job: shop",
				"source: {mysql: {dsn: \"u:p@tcp(h:3306)/\", tables: [\"shop\\\\.orders\"]}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
				"dimensions:",
				"  customers:",
				"    stream:",
				"      key: id",
				"      table: shop.customers",
			),
			want: `job.yaml:11:7: dimensions.customers.stream.table: shop.customers is not captured by source.mysql.tables ["shop\\.orders"]; a stream dimension is kept from a table this job's source reads`,
		},
		{
			name: "a stream dimension's key the table lacks",
			yaml: doc(
				"job: shop",
				"source: {datagen: {tables: [{name: shop.orders, preset: orders}, {name: shop.customers, preset: orders}]}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_status: status}}",
				"dimensions:",
				"  customers:",
				"    stream: {table: shop.customers, key: cid}",
			),
			want: `job.yaml:9:37: dimensions.customers.stream.key: table shop.customers has no column "cid" (columns: id, customer_id, status, quantity, amount, discount, paid, order_date, note, updated_at)`,
		},
		{
			name: "a stream dimension's column the table lacks",
			yaml: doc(
				"job: shop",
				"source: {datagen: {tables: [{name: shop.orders, preset: orders}, {name: shop.customers, preset: orders}]}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
				"dimensions:",
				"  customers:",
				"    stream: {table: shop.customers, key: id}",
				"    columns: [status, name]",
			),
			want: `job.yaml:10:5: dimensions.customers.columns: table shop.customers has no column "name" (columns: id, customer_id, status, quantity, amount, discount, paid, order_date, note, updated_at)`,
		},
		{
			name: "a kafka stream dimension without brokers",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
				"dimensions:",
				"  customers:",
				"    stream:",
				"      kafka: {topic: customers}",
				"      key: id",
			),
			want: `job.yaml:10:7: dimensions.customers.stream.kafka.brokers: required (host:port of at least one broker)`,
		},
		{
			name: "a kafka stream dimension without a topic",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
				"dimensions:",
				"  customers:",
				"    stream:",
				"      key: id",
				"      kafka:",
				"        brokers: [\"127.0.0.1:9092\"]",
			),
			want: `job.yaml:11:7: dimensions.customers.stream.kafka.topic: required (the topic of the dimension's rows)`,
		},
		{
			name: "a stream dimension with both a table and a topic",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
				"    enrich:",
				"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
				"dimensions:",
				"  customers:",
				"    stream:",
				"      table: shop.customers",
				"      kafka: {brokers: [\"b:9092\"], topic: customers}",
				"      key: id",
			),
			want: `job.yaml:9:5: dimensions.customers.stream: set either table (a table of this job's source) or kafka (a topic), not both`,
		},
		{
			name: "a transform that does nothing",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"transforms:",
				"  - match: shop.orders",
			),
			want: `job.yaml:4:5: transforms[0]: the rule for "shop.orders" does nothing (no cleaning step, dedupe or enrich)`,
		},
		{
			name: "unknown key nested",
			yaml: doc(
				"job: shop",
				"source:",
				"  datagen: {}",
				"checkpoint:",
				"  dir: ./state",
				"  # the interval",
				"  intervall: 30s",
			),
			want: `job.yaml:7:3: unknown field "intervall" in checkpoint (expected one of: dir, interval, max_records, max_bytes, retain)`,
		},
		{
			name: "unknown key deep in a list",
			yaml: doc(
				"job: shop",
				"source:",
				"  datagen:",
				"    tables:",
				"      - name: shop.orders",
				"        preset: orders",
				"        colour: red",
			),
			want: `job.yaml:7:9: unknown field "colour" in source.datagen.tables[0] (expected one of: ` + keysOf[datagen.TableConfig]() + `)`,
		},
		{
			name: "unknown source kind",
			yaml: doc(
				"job: shop",
				"source:",
				"  oracle: {dsn: x}",
			),
			want: `job.yaml:3:3: unknown source kind "oracle" (expected one of: datagen, mysql)`,
		},
		{
			name: "bad mysql dsn",
			yaml: doc(
				"job: shop",
				"source:",
				"  mysql: {dsn: x, tables: [\"shop\\\\..*\"]}",
			),
			want: `job.yaml:3:11: source.mysql.dsn: invalid DSN: missing the slash separating the database name`,
		},
		{
			name: "no source kind",
			yaml: doc(
				"job: shop",
				"source: {}",
			),
			want: `job.yaml:2:1: source: exactly one source kind is required (expected one of: datagen, mysql)`,
		},
		{
			name: "no source section",
			yaml: doc(
				"job: shop",
			),
			want: `job.yaml:1:1: source: exactly one source kind is required (expected one of: datagen, mysql)`,
		},
		{
			name: "interval not a duration",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint:",
				"  interval: abc",
			),
			want: `job.yaml:4:13: checkpoint.interval: expected a duration such as 500ms, 30s, 5m or 1h30m, got string "abc"`,
		},
		{
			name: "interval without unit",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint: {interval: 30}",
			),
			want: `job.yaml:3:24: checkpoint.interval: expected a duration such as 500ms, 30s, 5m or 1h30m, got number 30`,
		},
		{
			name: "retain is a string",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint:",
				`  retain: "x"`,
			),
			want: `job.yaml:4:11: checkpoint.retain: expected an integer, got string "x"`,
		},
		{
			name: "a quoted number is a string",
			yaml: doc(
				"job: shop",
				"source:",
				"  datagen:",
				`    rate: "1e3"`,
			),
			want: `job.yaml:4:11: source.datagen.rate: expected a number, got string "1e3"`,
		},
		{
			name: "retain is a fraction",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint:",
				"  retain: 1.5",
			),
			want: `job.yaml:4:11: checkpoint.retain: expected an integer, got number 1.5`,
		},
		{
			name: "integer overflow",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint:",
				"  retain: 99999999999999999999",
			),
			want: `job.yaml:4:11: checkpoint.retain: expected an integer, got string "99999999999999999999"`,
		},
		{
			name: "section of the wrong shape",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"log: [a, b]",
			),
			want: `job.yaml:3:6: log: expected a mapping with keys level, format, got a list`,
		},
		{
			name: "nested section of the wrong shape",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  catalog: sqlite",
			),
			want: `job.yaml:4:12: sink.catalog: expected a mapping with keys type, name, uri, properties, got string "sqlite"`,
		},
		{
			name: "list expected",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  tables: shop.*",
			),
			want: `job.yaml:4:11: sink.tables: expected a list of mappings with keys match, ods, dwd, partition, properties, got string "shop.*"`,
		},
		{
			name: "missing job",
			yaml: doc(
				"# a job without an id",
				"source: {datagen: {}}",
			),
			want: `job.yaml:2:1: missing required field "job" at top level (expected job: NAME, a stable id of lowercase letters, digits, '-' and '_')`,
		},
		{
			name: "empty file",
			yaml: "",
			want: `job.yaml:1:1: missing required field "job" at top level (expected job: NAME, a stable id of lowercase letters, digits, '-' and '_')`,
		},
		{
			name: "bad job id",
			yaml: doc(
				"source: {datagen: {}}",
				"job: Shop Orders",
			),
			want: `job.yaml:2:1: job: expected lowercase letters, digits, '-' and '_' only, got "Shop Orders"`,
		},
		{
			name: "unset environment variable",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  catalog: {type: sql, uri: ${CATALOG_URI}}",
			),
			want: `job.yaml:4:29: environment variable CATALOG_URI is not set (set it, or write ${CATALOG_URI:-default})`,
		},
		{
			name: "malformed environment reference",
			yaml: doc(
				"job: shop",
				"sink: {warehouse: ${1BAD}}",
			),
			want: `job.yaml:2:19: invalid environment reference ${1BAD} (expected ${VAR} or ${VAR:-default} with VAR of letters, digits and _)`,
		},
		{
			name: "unterminated environment reference",
			yaml: doc(
				"job: shop",
				"sink: {warehouse: ${WH",
			),
			want: `job.yaml:2:19: unterminated ${ (expected ${VAR} or ${VAR:-default}; write $${ for a literal ${)`,
		},
		{
			name: "environment value with a line break",
			yaml: doc(
				"job: ${JOB}",
			),
			env:  []string{"JOB", "a\nb"},
			want: `job.yaml:1:6: environment variable JOB contains a line break, which a job file cannot take inline`,
		},
		{
			name: "bad catalog type mapped to its line",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  catalog:",
				"    uri: sqlite://./lake/catalog.db",
				"    type: iceberg",
			),
			want: `job.yaml:6:5: sink.catalog.type: expected sql, rest, glue or hive, got "iceberg"`,
		},
		{
			name: "bad catalog type in flow style",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink: {catalog: {type: iceberg}}",
			),
			want: `job.yaml:3:18: sink.catalog.type: expected sql, rest, glue or hive, got "iceberg"`,
		},
		{
			name: "validation of a defaulted key points at its parent",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  warehouse: s3://bucket/wh",
				"  catalog:",
				"    type: rest",
			),
			want: `job.yaml:5:3: sink.catalog.uri is required for a rest catalog`,
		},
		{
			name: "validation inside a list",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"sink:",
				"  tables:",
				"    - match: shop.*",
				"      dwd: \"{table}\"",
				"    - match: other.*",
				"      dwd: \"{table}\"",
				"      partition: [\"bucket(x, id)\"]",
			),
			want: `job.yaml:9:19: sink.tables[1].partition[0]: `,
		},
		{
			name: "checkpoint validation",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"checkpoint:",
				"  interval: 10ms",
			),
			want: `job.yaml:4:3: checkpoint.interval must be at least 100ms, got 10ms`,
		},
		{
			name: "datagen validation",
			yaml: doc(
				"job: shop",
				"source:",
				"  datagen:",
				"    tables:",
				"      - {name: shop.orders, preset: orders}",
				"      - {name: shop.orders, preset: orders}",
			),
			want: `job.yaml:6:10: source.datagen.tables[1].name "shop.orders" is already used by source.datagen.tables[0]`,
		},
		{
			name: "log level",
			yaml: doc(
				"job: shop",
				"source: {datagen: {}}",
				"log: {level: verbose}",
			),
			want: `job.yaml:3:7: log.level: expected debug, info, warn or error, got "verbose"`,
		},
		{
			name: "two documents",
			yaml: doc(
				"job: a",
				"---",
				"job: b",
			),
			want: `job.yaml:1:1: a job file holds one YAML document, found 2 (remove the extra ---)`,
		},
		{
			name: "duplicate key",
			yaml: doc(
				"job: a",
				"job: b",
			),
			want: `job.yaml:2:1: YAML syntax error: mapping key "job" already defined at [1:1]`,
		},
		{
			name: "syntax error",
			yaml: doc(
				"job: shop",
				"source:",
				"  datagen: {seed: 1",
				"sink: {}",
			),
			want: `job.yaml:4:1: YAML syntax error: ',' or '}' must be specified`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig("job.yaml", []byte(tc.yaml), env(tc.env...))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %q is not a *ConfigError", err, err)
			}
			got := err.Error()
			if strings.Contains(got, "\n") {
				t.Errorf("error is not one line: %q", got)
			}
			// A trailing ": " or ":" in want asks for a prefix match, for
			// messages whose tail belongs to another package.
			if strings.HasSuffix(tc.want, ": ") || strings.HasSuffix(tc.want, ":") {
				if !strings.HasPrefix(got, tc.want) {
					t.Errorf("got  %q\nwant prefix %q", got, tc.want)
				}
				return
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestConfigSnippetHidesSecrets(t *testing.T) {
	t.Parallel()
	y := doc(
		"job: shop",
		"source: {datagen: {}}",
		"sink:",
		"  catalog: {type: ${KIND}, uri: \"postgres://u:${PW}@db/cat\"}",
	)
	_, err := parseConfig("job.yaml", []byte(y), env("KIND", "bogus", "PW", "hunter2"))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	if !strings.HasPrefix(ce.Error(), "job.yaml:4:") {
		t.Errorf("error %q does not point at line 4", ce.Error())
	}
	if strings.Contains(ce.Snippet, "hunter2") || strings.Contains(ce.Error(), "hunter2") {
		t.Errorf("a secret from the environment is echoed:\n%s\n%s", ce.Error(), ce.Snippet)
	}
	if !strings.Contains(ce.Snippet, "${PW}") {
		t.Errorf("snippet should show the line as written:\n%s", ce.Snippet)
	}
}

func TestEnvInterpolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
		env  []string
		want string
	}{
		{"set", "dir: ${D}", []string{"D", "/x"}, "dir: /x"},
		{"default when unset", "dir: ${D:-./state}", nil, "dir: ./state"},
		{"default when empty", "dir: ${D:-./state}", []string{"D", ""}, "dir: ./state"},
		{"set beats default", "dir: ${D:-./state}", []string{"D", "/y"}, "dir: /y"},
		{"empty default", "dir: x${D:-}y", nil, "dir: xy"},
		{"set to empty without default", "dir: x${D}y", []string{"D", ""}, "dir: xy"},
		{"default with colon and slashes", "uri: ${U:-sqlite://./a:b}", nil, "uri: sqlite://./a:b"},
		{"two on a line", "v: ${A}-${B:-b}", []string{"A", "a"}, "v: a-b"},
		{"escaped", "v: $${NOT_A_VAR}", nil, "v: ${NOT_A_VAR}"},
		{"lone dollar", "v: cost $5 and $", nil, "v: cost $5 and $"},
		{"comment line untouched", "# dir: ${UNSET}", nil, "# dir: ${UNSET}"},
		{"trailing comment untouched", "dir: ${D} # was ${UNSET}", []string{"D", "/z"}, "dir: /z # was ${UNSET}"},
		{"hash inside quotes is not a comment", `v: "a #${D}"`, []string{"D", "1"}, `v: "a #1"`},
		{"hash without space is not a comment", "v: a#${D}", []string{"D", "1"}, "v: a#1"},
		{"apostrophe in a plain scalar", "v: don't ${D} # ${UNSET}", []string{"D", "1"}, "v: don't 1 # ${UNSET}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &loader{file: "job.yaml", raw: []string{tc.line}}
			got, err := l.interpolate(env(tc.env...))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigValid(t *testing.T) {
	t.Parallel()
	y := doc(
		"job: shop-orders_2",
		"source:",
		"  datagen:",
		"    seed: 7",
		"    total: ${TOTAL:-5000}",
		"    rate: 1e3",
		"    tables:",
		"      - name: shop.orders",
		"        preset: orders",
		"        mix: {update: 0.5, delete: 0.2}",
		"sink:",
		"  catalog:",
		"    type: sql",
		"    uri: sqlite://${LAKE}/catalog.db",
		"    properties: {a: \"1\", b: 2}",
		"  warehouse: file://${LAKE}/warehouse",
		"  tables:",
		"    - match: shop.*",
		"      ods: \"ods_{table}\"",
		"      dwd: \"dwd_{table}\"",
		"      partition: [\"bucket(16, id)\"]",
		"checkpoint:",
		"  interval: 1m30s",
		"  dir: ./state",
		"  retain: 5",
		"log:",
		"  level: debug",
		"  format: json",
	)
	cfg, err := parseConfig("job.yaml", []byte(y), env("LAKE", "/data/lake"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Job != "shop-orders_2" {
		t.Errorf("job = %q", cfg.Job)
	}
	d := cfg.Source.Datagen
	if d == nil {
		t.Fatal("source.datagen not set")
	}
	if d.Seed != 7 || d.Total != 5000 || d.Rate != 1000 || len(d.Tables) != 1 ||
		d.Tables[0].Name != "shop.orders" || d.Tables[0].Mix.Delete != 0.2 {
		t.Errorf("datagen = %+v", *d)
	}
	if d.BatchSize == 0 || d.Tables[0].Keys == 0 {
		t.Errorf("datagen defaults not applied: %+v", *d)
	}
	s := cfg.Sink
	if s.Catalog.URI != "sqlite:///data/lake/catalog.db" || s.Warehouse != "file:///data/lake/warehouse" {
		t.Errorf("sink paths = %q, %q", s.Catalog.URI, s.Warehouse)
	}
	if s.Catalog.Properties["b"] != "2" {
		t.Errorf("catalog properties = %v", s.Catalog.Properties)
	}
	if len(s.Tables) != 1 || s.Tables[0].ODS != "ods_{table}" || s.Tables[0].Partition[0] != "bucket(16, id)" {
		t.Errorf("sink tables = %+v", s.Tables)
	}
	if s.Namespace != "default" || s.FormatVersion != 2 {
		t.Errorf("sink defaults not applied: %+v", s)
	}
	c := cfg.Checkpoint
	if c.Interval != 90*time.Second || c.Dir != "./state" || c.Retain != 5 || c.MaxRecords == 0 {
		t.Errorf("checkpoint = %+v", c)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "json" {
		t.Errorf("log = %+v", cfg.Log)
	}
}

func TestConfigMinimalGetsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig("job.yaml", []byte("job: demo\nsource:\n  datagen:\n"), env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Datagen == nil {
		t.Fatal("an empty datagen: section should select the datagen source")
	}
	if cfg.Checkpoint.Interval != 30*time.Second || cfg.Sink.Catalog.Type != "sql" || cfg.Log.Format != "auto" ||
		cfg.memoryLimit() != DefaultMemoryLimit {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml string
		want int64
	}{
		{"job: demo\nsource: {datagen: {}}\n", DefaultMemoryLimit},
		{"job: demo\nsource: {datagen: {}}\nprocess: {memory_limit: -1}\n", -1},
		{"job: demo\nsource: {datagen: {}}\nprocess: {memory_limit: 536870912}\n", 512 << 20},
		{"job: demo\nsource: {datagen: {}}\ntransforms: [{match: demo.t, dedupe: {}}]\ndedupe: {cache_size: 33554432}\n",
			map[bool]int64{true: DefaultMemoryLimitDedupe, false: DefaultMemoryLimit + 32<<20 + 16<<20}[cgoMalloc]},
	} {
		cfg, err := parseConfig("job.yaml", []byte(tc.yaml), env())
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := cfg.memoryLimit(); got != tc.want {
			t.Errorf("%s: memory limit %d, want %d", tc.yaml, got, tc.want)
		}
	}
}

func TestConfigKafkaStreamDimension(t *testing.T) {
	t.Parallel()
	y := doc(
		"job: shop",
		"source: {datagen: {}}",
		"transforms:",
		"  - match: shop.orders",
		"    enrich:",
		"      - {dim: customers, on: customer_id, add: {customer_name: name}}",
		"dimensions:",
		"  customers:",
		"    stream:",
		"      kafka: {brokers: [\"127.0.0.1:9092\"], topic: customers}",
		"      key: id",
		"    columns: [name, tier]",
	)
	cfg, err := parseConfig("job.yaml", []byte(y), env())
	if err != nil {
		t.Fatal(err)
	}
	st := cfg.Dimensions["customers"].Stream
	if st == nil || st.Kafka == nil || st.Kafka.Topic != "customers" || st.Kafka.Brokers[0] != "127.0.0.1:9092" || st.Table != "" {
		t.Errorf("decoded %+v", st)
	}
}
