package lake

// The Iceberg sink against real backends other than the embedded default:
// the SQL catalog on PostgreSQL, and an s3:// warehouse on an S3-compatible
// server. The servers come from internal/testinfra (local processes on the
// CI machine; the tests skip without them, and fail under CI=true).

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-cdc/sluice/internal/testinfra"
)

// TestMain stops the servers internal/testinfra started for this package.
func TestMain(m *testing.M) { testinfra.Main(m) }

func TestSinkPostgresCatalog(t *testing.T) {
	for _, flush := range []int{250_000, 2} {
		t.Run(fmt.Sprint("flush", flush), func(t *testing.T) {
			pg := testinfra.PostgreSQL(t)
			cfg := testConfig(t)
			sqlitePath := strings.TrimPrefix(cfg.Catalog.URI, "sqlite://")
			cfg.Catalog.URI = pg.DSN()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			runSinkWorkload(t, cfg, flush)

			// The catalog lives in PostgreSQL, not in a SQLite file.
			if _, err := os.Stat(sqlitePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a SQLite catalog was created at %s: %v", sqlitePath, err)
			}
			db, err := sql.Open("postgres", pg.DSN())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows, err := db.QueryContext(t.Context(),
				`SELECT table_namespace || '.' || table_name, metadata_location FROM iceberg_tables WHERE catalog_name = $1 ORDER BY 1`, cfg.Catalog.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name, loc string
				if err := rows.Scan(&name, &loc); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(loc, cfg.Warehouse) {
					t.Errorf("%s: metadata at %s, outside the warehouse %s", name, loc, cfg.Warehouse)
				}
				got = append(got, name)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[test.dwd_shop_orders test.ods_shop_orders]" {
				t.Errorf("iceberg_tables in PostgreSQL = %v", got)
			}
		})
	}
}

// Only the default flush size: segments are a catalog matter, covered on
// PostgreSQL, and under -race they take seconds more on S3.
func TestSinkS3Warehouse(t *testing.T) {
	b := testinfra.S3(t)
	cfg := testConfig(t)
	localWarehouse := strings.TrimPrefix(cfg.Warehouse, "file://")
	cfg.Warehouse = "s3://" + b.Bucket + "/warehouse"
	cfg.S3 = S3Config{Endpoint: b.Endpoint, Region: b.Region, AccessKeyID: b.AccessKey, SecretAccessKey: b.SecretKey}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	runSinkWorkload(t, cfg, 250_000)

	// Data, delete and metadata files are objects in the bucket;
	// nothing went to a local directory.
	if _, err := os.Stat(localWarehouse); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a local warehouse was created at %s: %v", localWarehouse, err)
	}
	kinds := map[string]int{}
	p := s3.NewListObjectsV2Paginator(b.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, "warehouse/") {
				t.Errorf("object %s outside the warehouse prefix", key)
			}
			switch {
			case strings.HasSuffix(key, ".metadata.json"):
				kinds["metadata"]++
			case strings.HasSuffix(key, ".parquet"):
				kinds["parquet"]++
			case strings.HasSuffix(key, ".avro"):
				kinds["avro"]++
			}
		}
	}
	if kinds["metadata"] < 4 || kinds["parquet"] < 4 || kinds["avro"] < 4 {
		t.Errorf("objects in the bucket by kind: %v, want metadata, Parquet and Avro files of both tables", kinds)
	}
}
