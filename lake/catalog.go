package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	_ "github.com/apache/iceberg-go/catalog/glue" // registers "glue"
	_ "github.com/apache/iceberg-go/catalog/hive" // registers "hive"
	_ "github.com/apache/iceberg-go/catalog/rest" // registers "rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// warehouses
	_ "github.com/lib/pq"                          // postgres catalog driver
	"github.com/uptrace/bun/driver/sqliteshim"
)

// OpenCatalog connects to the configured catalog. For the embedded SQLite
// catalog it creates the catalog file's and the warehouse's directories.
func OpenCatalog(ctx context.Context, c *Config) (catalog.Catalog, error) {
	props := iceberg.Properties{}
	for k, v := range c.Catalog.Properties {
		props[k] = v
	}
	if _, ok := props["warehouse"]; !ok && c.Warehouse != "" {
		wh := c.Warehouse
		if strings.HasPrefix(wh, "file://") {
			abs, err := filepath.Abs(strings.TrimPrefix(wh, "file://"))
			if err != nil {
				return nil, fmt.Errorf("sink.warehouse: %w", err)
			}
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return nil, fmt.Errorf("sink.warehouse: %w", err)
			}
			wh = "file://" + abs
		}
		props["warehouse"] = wh
	}
	s3 := c.S3
	for k, v := range map[string]string{
		iceio.S3EndpointURL: s3.Endpoint, iceio.S3Region: s3.Region,
		iceio.S3AccessKeyID: s3.AccessKeyID, iceio.S3SecretAccessKey: s3.SecretAccessKey,
		iceio.S3SessionToken: s3.SessionToken,
	} {
		if v != "" {
			props[k] = v
		}
	}
	switch c.Catalog.Type {
	case "sql":
		uri := c.Catalog.URI
		if path, ok := strings.CutPrefix(uri, "sqlite://"); ok {
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, fmt.Errorf("sink.catalog.uri: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				return nil, fmt.Errorf("sink.catalog.uri: %w", err)
			}
			// WAL and a busy timeout let maintenance and a second job share
			// the file with a running daemon.
			props["uri"] = "file:" + abs + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
			props[sqlcat.DriverKey] = sqliteshim.ShimName
			props[sqlcat.DialectKey] = string(sqlcat.SQLite)
		} else {
			props["uri"] = uri
			props[sqlcat.DriverKey] = "postgres"
			props[sqlcat.DialectKey] = string(sqlcat.Postgres)
		}
		if _, ok := props["init_catalog_tables"]; !ok {
			props["init_catalog_tables"] = "true"
		}
	default:
		if c.Catalog.URI != "" {
			props["uri"] = c.Catalog.URI
		}
	}
	props["type"] = c.Catalog.Type
	cat, err := catalog.Load(ctx, c.Catalog.Name, props)
	if err != nil {
		return nil, fmt.Errorf("open %s catalog %q: %w", c.Catalog.Type, c.Catalog.Name, err)
	}
	return cat, nil
}

// CloseCatalog releases a catalog's connections where it holds any.
func CloseCatalog(cat catalog.Catalog) error {
	if c, ok := cat.(catalog.Closer); ok {
		return c.Close()
	}
	return nil
}
