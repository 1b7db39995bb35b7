// Package testinfra gives integration tests real server endpoints:
// MariaDB with a row binlog, MySQL 8, PostgreSQL, Kafka, an S3-compatible
// object store and an SQS-compatible queue. TESTING.md (the project's
// shared notes) has what was measured on the CI machine.
//
// # The helpers
//
// Each returns a resource of the test's own on a server shared by the test
// binary, with a name derived from the test's name, and the same struct
// whichever backend runs the server:
//
//	helper      returns      local process                  container (testcontainers-go)
//	MariaDB     *MySQL       mariadbd (apt mariadb-server)   mariadb:10.11
//	MySQL8      *MySQL       none: skips without Docker      mysql:8.4
//	PostgreSQL  *PG          postgres (apt postgresql)       postgres:15
//	Kafka       *KafkaTopic  kfake, in the test process      Redpanda
//	S3          *S3Bucket    versitygw (go install)          MinIO
//	SQS         *SQSQueue    goaws (built from tools/goaws)  LocalStack (SQS only)
//
// MariaDB and MySQL8 write a row binlog with full images and full
// metadata, with GTIDs (MariaDB: strict mode; MySQL: gtid_mode=ON,
// enforce_gtid_consistency=ON), server id 1, and have a CDC user with the
// grants a binlog reader needs. Only the local MariaDB offers TLS (CACert,
// TLSUser); in containers those fields are empty and TLS tests skip.
// Kafka's local cluster listens on one fixed 127.0.0.1 port, so non-Go
// clients can use it too; goaws listens on every interface (it has no
// bind setting), every other local server on 127.0.0.1 only.
//
// # Where the servers come from
//
// SLUICE_TEST_INFRA selects the backend:
//
//   - auto (default): asks testcontainers-go's Docker provider for its
//     health (5 s limit, once per test binary). When an engine answers,
//     servers run in containers; when none does, or when a container does
//     not start (an image that cannot be pulled, say), they run as local
//     processes. MySQL8, which has no local server, skips instead.
//   - docker: containers only: no engine, or a container that does not
//     start, fails the test.
//   - local: local processes only; MySQL8 skips.
//
// A missing local server binary skips the test with the apt package (or
// go command) to install; with CI=true it fails the test instead, because
// CI installs them (.ci/run). MySQL8 skips without an engine even with
// CI=true: the CI machine has none.
//
// # What ran where
//
// The local path runs on the project's CI machine kind (Debian 12, no
// Docker engine) and its tests pass there, kfake's produce, consumer
// group, transactions and read-committed, and goaws's send, receive,
// delete and batches included. The container path (docker.go) was
// compiled and vetted there but never run: there is no engine. Its
// fallback to local processes is tested there: without an engine, and
// with a container start that fails.
//
// # Lifetime: one server per test binary, a resource per test
//
// Each kind of server starts at most once per test binary, on first use;
// a local one in its own directory under os.TempDir() named
// sluice-testinfra-PID-*. Databases are dropped, topics and queues deleted
// when their test ends (buckets stay until the server goes), so tests may
// run in parallel.
//
// Servers are stopped by PID (containers by id), in this order of
// preference:
//
//  1. A package that uses testinfra should call Main from its TestMain:
//     after the tests ran (passed or failed), Main stops every server it
//     started (and terminates every container) and removes their
//     directories.
//  2. Every child process is started with the parent-death signal SIGKILL,
//     from one OS thread that never exits, so the kernel kills it when the
//     test binary dies for any reason (a -timeout panic, os.Exit, SIGKILL),
//     with or without Main. PostgreSQL runs as the postgres user (initdb
//     and postgres refuse root) through the child's credentials rather than
//     runuser, so that the PID we hold is the server's own. Containers are
//     removed by testcontainers' Ryuk when the test binary dies. kfake
//     lives in the test process and dies with it.
//  3. Directories left behind by a test binary that did not reach Main are
//     removed by the next test binary that starts a server, once their PID
//     is gone.
//
// t.Cleanup on the first user was not chosen: it would stop the shared
// server when that test ends, while later tests still need it.
package testinfra
