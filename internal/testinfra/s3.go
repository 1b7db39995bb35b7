package testinfra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Bucket is a bucket of its own for one test, on an S3-compatible
// server (versitygw, posix backend) shared by the test binary. Clients must
// use path-style addressing. (Not named S3: that is the function.)
type S3Bucket struct {
	// Endpoint is the base URL, http://127.0.0.1:PORT.
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
}

// Client is an aws-sdk-go-v2 S3 client for the server: static
// credentials, path-style addressing.
func (s *S3Bucket) Client() *s3.Client {
	return newS3Client(s.Endpoint, s.Region, s.AccessKey, s.SecretKey)
}

func newS3Client(endpoint, region, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret, Source: "testinfra"}, nil
		}),
	})
}

const (
	s3Access = "sluicetest"
	s3Secret = "sluicetest-secret"
	s3Region = "us-east-1"
	// VersityGWInstall is how CI installs the S3 server (.ci/run).
	VersityGWInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
)

type s3Server struct {
	endpoint string
	client   *s3.Client
	what     string // for messages: "versitygw (pid N)" or a container
	tail     func() string
}

var s3Shared, s3Docker shared[*s3Server]

// versitygwBin looks on PATH, then where go install puts binaries.
func versitygwBin() (string, bool) { return lookBin("versitygw", goBinDirs()...) }

// S3 returns a fresh bucket on this test binary's S3 server (versitygw
// locally, MinIO in a container), starting the server on first use. The bucket is left in place; the server's directory
// goes when the binary ends.
func S3(t testing.TB) *S3Bucket {
	t.Helper()
	srv, ok := fromDocker(t, &s3Docker, "MinIO", startMinIOContainer)
	if !ok {
		bin, ok := versitygwBin()
		if !ok {
			missing(t, "versitygw (S3-compatible server)", VersityGWInstall)
		}
		var err error
		srv, err = s3Shared.get(func() (*s3Server, error) { return startVersityGW(bin) })
		if err != nil {
			t.Fatalf("testinfra: start versitygw: %v", err)
		}
	}
	// Bucket names: 3-63 of lowercase letters, digits and hyphens.
	bucket := uniqueName(t, '-', 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testinfra: %s: create bucket %s: %v%s", srv.what, bucket, err, srv.tail())
	}
	return &S3Bucket{Endpoint: srv.endpoint, Region: s3Region, AccessKey: s3Access, SecretKey: s3Secret, Bucket: bucket}
}

func startVersityGW(bin string) (*s3Server, error) {
	began := time.Now()
	dir, err := newServerDir("versitygw")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var client *s3.Client
	p, port, err := startWithRetry(func(port int) (*proc, error) {
		return startProc("versitygw", filepath.Join(dir, "server.log"), nil, syscall.SIGTERM, nil, bin,
			"--access", s3Access, "--secret", s3Secret, "--region", s3Region, "--quiet",
			"--port", fmt.Sprintf("127.0.0.1:%d", port), "posix", root)
	}, func(port int) func(ctx context.Context) error {
		c := newS3Client(fmt.Sprintf("http://127.0.0.1:%d", port), s3Region, s3Access, s3Secret)
		return func(ctx context.Context) error {
			_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			if err == nil {
				client = c
			}
			return err
		}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	atExit(func() {
		p.stop()
		os.RemoveAll(dir)
	})
	logStart("versitygw", p, port, began)
	return &s3Server{
		endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), client: client,
		what: fmt.Sprintf("versitygw (pid %d)", p.pid()), tail: p.logTail,
	}, nil
}
