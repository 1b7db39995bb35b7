package testinfra

// The testcontainers-go path: each kind of server in a container, started
// at most once per test binary, configured like its local process. Written
// against testcontainers-go v0.44.0 and compiled and vetted on the
// project's CI machine, but never run there: it has no Docker engine.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclocalstack "github.com/testcontainers/testcontainers-go/modules/localstack"
	tcmariadb "github.com/testcontainers/testcontainers-go/modules/mariadb"
	tcminio "github.com/testcontainers/testcontainers-go/modules/minio"
	tcmysql "github.com/testcontainers/testcontainers-go/modules/mysql"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredpanda "github.com/testcontainers/testcontainers-go/modules/redpanda"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Images of the containers, pinned: the same major versions as the local
// servers where there is one.
const (
	imageMariaDB    = "mariadb:10.11"
	imageMySQL8     = "mysql:8.4"
	imagePostgres   = "postgres:15"
	imageRedpanda   = "docker.redpanda.com/redpandadata/redpanda:v25.2.4"
	imageMinIO      = "minio/minio:RELEASE.2024-01-16T16-07-38Z"
	imageLocalStack = "localstack/localstack:3.8"
)

// containerTimeout bounds a container's start, the image pull included.
const containerTimeout = 5 * time.Minute

const rootPass = "sluice-root"

// dockerHealth asks testcontainers' Docker provider whether an engine
// answers, within 5 s; nil means yes. Asked once per test binary.
// testcontainers panics in places when it finds no engine: that is an
// answer too. A variable so that tests can pretend.
var dockerHealth = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("testcontainers: %v", r)
			}
		}()
		p, err := testcontainers.ProviderDocker.GetProvider()
		if err != nil {
			errc <- err
			return
		}
		defer p.Close()
		errc <- p.Health(ctx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return errors.New("the Docker engine did not answer within 5 s")
	}
})

var noEngineLogged atomic.Bool // the first test told that no engine answers

// infraMode is SLUICE_TEST_INFRA: auto, docker or local.
func infraMode(t testing.TB) string {
	t.Helper()
	switch m := os.Getenv(EnvInfra); m {
	case "", "auto":
		return "auto"
	case "docker", "local":
		return m
	default:
		t.Fatalf("testinfra: %s=%q: want auto, docker or local", EnvInfra, m)
		return ""
	}
}

// useDocker decides, per SLUICE_TEST_INFRA, whether the test gets
// containers, or ends the test (docker without an engine).
func useDocker(t testing.TB) bool {
	t.Helper()
	checkMain(t)
	switch infraMode(t) {
	case "docker":
		if err := dockerHealth(); err != nil {
			t.Fatalf("testinfra: %s=docker, but no Docker engine answers: %v", EnvInfra, err)
		}
		return true
	case "auto":
		err := dockerHealth()
		if err != nil && noEngineLogged.CompareAndSwap(false, true) {
			t.Logf("testinfra: no Docker engine (%v): servers run as local processes, MySQL 8 tests skip", err)
		}
		return err == nil
	}
	return false
}

// fromDocker returns the test binary's container of one kind, starting it
// on first use, when the test should get containers. ok false means: use
// a local process instead; in auto mode that is also the answer when the
// container does not start (an image that cannot be pulled, say), which
// is remembered for the rest of the binary.
func fromDocker[T any](t testing.TB, s *shared[T], what string, start func(ctx context.Context) (T, error)) (v T, ok bool) {
	t.Helper()
	if !useDocker(t) {
		return v, false
	}
	v, err := s.get(func() (T, error) { return startContainer(start) })
	if err == nil {
		return v, true
	}
	if infraMode(t) == "docker" {
		t.Fatalf("testinfra: start %s container: %v", what, err)
	}
	t.Logf("testinfra: %s container did not start, using a local process instead: %v", what, err)
	return v, false
}

// startContainer runs start with the start timeout, turning a panic of
// testcontainers into an error.
func startContainer[T any](start func(ctx context.Context) (T, error)) (v T, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	return start(ctx)
}

// keep registers a started container to be terminated at the end of the
// test binary (Main or StopAll; Ryuk removes it if the binary dies), or
// terminates what a failed start left.
func keep(ctr testcontainers.Container, err error) error {
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return err
	}
	atExit(func() { _ = testcontainers.TerminateContainer(ctr) })
	return nil
}

// hostPort is where a container's port is reachable from the test.
func hostPort(ctx context.Context, ctr testcontainers.Container, port string) (string, int, error) {
	ep, err := ctr.PortEndpoint(ctx, port, "")
	if err != nil {
		return "", 0, err
	}
	host, p, err := net.SplitHostPort(ep)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	return host, n, err
}

// describe names a container in messages; tail returns the end of its log.
func describe(what string, ctr testcontainers.Container) (string, func() string) {
	id := ctr.GetContainerID()
	if len(id) > 12 {
		id = id[:12]
	}
	return fmt.Sprintf("%s (container %s)", what, id), func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rc, err := ctr.Logs(ctx)
		if err != nil {
			return ""
		}
		defer rc.Close()
		data, _ := io.ReadAll(rc)
		ls := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		if len(ls) > 25 {
			ls = ls[len(ls)-25:]
		}
		return fmt.Sprintf("\n--- last lines of the log of container %s ---\n%s", id, bytes.Join(ls, []byte("\n")))
	}
}

// retry calls f until it succeeds or ctx ends: a port the engine maps may
// answer a moment after the container's wait strategy is satisfied.
func retry(ctx context.Context, f func(ctx context.Context) error) error {
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(c)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startMySQLContainer starts a MariaDB or MySQL container with args for the
// server, connects as root and creates the users of a local MariaDB (from
// any host: the test connects through the engine's port mapping), with the
// CDC user's privileges given.
func startMySQLContainer(ctx context.Context, what string, run func(ctx context.Context) (testcontainers.Container, error), cdcGrants string) (*mysqlServer, error) {
	ctr, err := run(ctx)
	if err := keep(ctr, err); err != nil {
		return nil, err
	}
	name, tail := describe(what, ctr)
	host, port, err := hostPort(ctx, ctr, "3306/tcp")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dsn := fmt.Sprintf("root:%s@tcp(%s)/", rootPass, net.JoinHostPort(host, strconv.Itoa(port)))
	var admin *sql.DB
	if err := retry(ctx, func(ctx context.Context) (err error) { admin, err = openPinged(ctx, "mysql", dsn); return err }); err != nil {
		return nil, fmt.Errorf("%s: connect as root: %w%s", name, err, tail())
	}
	admin.SetMaxOpenConns(4)
	atExit(func() { admin.Close() })
	for _, q := range []string{
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY '%s'", mariaUser, mariaPass),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", mariaUser),
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY '%s'", mariaCDCUser, mariaCDCPass),
		fmt.Sprintf("GRANT %s ON *.* TO %s@'%%'", cdcGrants, mariaCDCUser),
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, q, err)
		}
	}
	return &mysqlServer{host: host, port: port, admin: admin, what: name, tail: tail}, nil
}

// startMariaDBContainer: the flags of the local server (startMariaDB),
// without TLS. The image's entrypoint passes flags to mariadbd.
func startMariaDBContainer(ctx context.Context) (*mysqlServer, error) {
	return startMySQLContainer(ctx, "MariaDB", func(ctx context.Context) (testcontainers.Container, error) {
		c, err := tcmariadb.Run(ctx, imageMariaDB, tcmariadb.WithUsername("root"), tcmariadb.WithPassword(rootPass),
			testcontainers.WithCmd("--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
				"--binlog-row-metadata=FULL", "--server-id=1", "--gtid-strict-mode=ON",
				"--innodb-buffer-pool-size=64M", "--skip-name-resolve"))
		if c == nil {
			return nil, err
		}
		return c, err
	}, "SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR")
}

// startMySQL8Container: MySQL 8.4 with a row binlog, full images and
// metadata, and GTIDs. The image's entrypoint passes flags to mysqld.
func startMySQL8Container(ctx context.Context) (*mysqlServer, error) {
	return startMySQLContainer(ctx, "MySQL 8", func(ctx context.Context) (testcontainers.Container, error) {
		c, err := tcmysql.Run(ctx, imageMySQL8, tcmysql.WithUsername("root"), tcmysql.WithPassword(rootPass),
			testcontainers.WithCmd("--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
				"--binlog-row-metadata=FULL", "--server-id=1", "--gtid-mode=ON", "--enforce-gtid-consistency=ON",
				"--innodb-buffer-pool-size=64M", "--skip-name-resolve"))
		if c == nil {
			return nil, err
		}
		return c, err
	}, "SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT")
}

// startPostgresContainer: trust authentication and no durability, as the
// local server.
func startPostgresContainer(ctx context.Context) (*pgServer, error) {
	c, err := tcpostgres.Run(ctx, imagePostgres, tcpostgres.WithUsername("postgres"),
		testcontainers.WithEnv(map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"}),
		testcontainers.WithCmd("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200"),
		tcpostgres.BasicWaitStrategies())
	var ctr testcontainers.Container
	if c != nil {
		ctr = c
	}
	if err := keep(ctr, err); err != nil {
		return nil, err
	}
	name, tail := describe("PostgreSQL", ctr)
	host, port, err := hostPort(ctx, ctr, "5432/tcp")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dsn := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&connect_timeout=5", net.JoinHostPort(host, strconv.Itoa(port)))
	var admin *sql.DB
	if err := retry(ctx, func(ctx context.Context) (err error) { admin, err = openPinged(ctx, "postgres", dsn); return err }); err != nil {
		return nil, fmt.Errorf("%s: connect: %w%s", name, err, tail())
	}
	admin.SetMaxOpenConns(4)
	atExit(func() { admin.Close() })
	return &pgServer{host: host, port: port, admin: admin, what: name, tail: tail}, nil
}

// startRedpandaContainer: Redpanda speaks the Kafka protocol, transactions
// included. Topics are not auto-created, as with kfake.
func startRedpandaContainer(ctx context.Context) (*kafkaCluster, error) {
	c, err := tcredpanda.Run(ctx, imageRedpanda)
	var ctr testcontainers.Container
	if c != nil {
		ctr = c
	}
	if err := keep(ctr, err); err != nil {
		return nil, err
	}
	name, tail := describe("Redpanda", ctr)
	broker, err := c.KafkaSeedBroker(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return nil, err
	}
	atExit(cl.Close)
	admin := kadm.NewClient(cl)
	if err := retry(ctx, func(ctx context.Context) error { _, err := admin.ListBrokers(ctx); return err }); err != nil {
		return nil, fmt.Errorf("%s: %w%s", name, err, tail())
	}
	return &kafkaCluster{brokers: []string{broker}, admin: admin}, nil
}

// startMinIOContainer: the local server's credentials and region.
func startMinIOContainer(ctx context.Context) (*s3Server, error) {
	c, err := tcminio.Run(ctx, imageMinIO, tcminio.WithUsername(s3Access), tcminio.WithPassword(s3Secret))
	var ctr testcontainers.Container
	if c != nil {
		ctr = c
	}
	if err := keep(ctr, err); err != nil {
		return nil, err
	}
	name, tail := describe("MinIO", ctr)
	ep, err := c.ConnectionString(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	endpoint := "http://" + ep
	client := newS3Client(endpoint, s3Region, s3Access, s3Secret)
	if err := retry(ctx, func(ctx context.Context) error { _, err := client.ListBuckets(ctx, &s3.ListBucketsInput{}); return err }); err != nil {
		return nil, fmt.Errorf("%s: %w%s", name, err, tail())
	}
	return &s3Server{endpoint: endpoint, client: client, what: name, tail: tail}, nil
}

// startLocalStackContainer: LocalStack with SQS only. It takes any
// credentials; its queue URLs name hosts that may not resolve, which the
// SQSQueue contract already covers (BaseEndpoint, never the URL's host).
func startLocalStackContainer(ctx context.Context) (*sqsServer, error) {
	c, err := tclocalstack.Run(ctx, imageLocalStack, testcontainers.WithEnv(map[string]string{"SERVICES": "sqs"}))
	var ctr testcontainers.Container
	if c != nil {
		ctr = c
	}
	if err := keep(ctr, err); err != nil {
		return nil, err
	}
	name, tail := describe("LocalStack", ctr)
	endpoint, err := ctr.PortEndpoint(ctx, "4566/tcp", "http")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	client := newSQSClient(endpoint, sqsRegion, sqsAccess, sqsSecret)
	if err := retry(ctx, func(ctx context.Context) error { _, err := client.ListQueues(ctx, &sqs.ListQueuesInput{}); return err }); err != nil {
		return nil, fmt.Errorf("%s: %w%s", name, err, tail())
	}
	return &sqsServer{endpoint: endpoint, client: client, what: name, tail: tail}, nil
}
