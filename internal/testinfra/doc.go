// Package testinfra gives integration tests real server endpoints:
// PostgreSQL, MariaDB with a row binlog, and an S3-compatible object store
// (versitygw). TESTING.md (the project's shared notes) has what was measured
// on the CI machine.
//
// # Where the servers come from
//
// SLUICE_TEST_INFRA selects the backend:
//
//   - auto (default): asks a Docker engine for /_ping (5 s limit). The
//     testcontainers-go path is not wired yet, so when an engine answers the
//     helper logs that and uses local processes, the same as when none does.
//   - docker: fails the test: testcontainers-go is not wired yet.
//   - local: starts the servers as child processes of the test binary.
//
// A missing server binary skips the test with the apt package (or go install
// command) to install; with CI=true it fails the test instead, because CI
// installs them (.ci/run).
//
// # Lifetime: one server per test binary, a database or bucket per test
//
// Each kind of server starts at most once per test binary, on first use, in
// its own directory under os.TempDir() named sluice-testinfra-PID-*. Every
// test gets its own database (PostgreSQL, MariaDB) or bucket (S3), with a
// name derived from the test's name, so tests may run in parallel.
//
// Servers are stopped by PID, in this order of preference:
//
//  1. A package that uses testinfra should call Main from its TestMain:
//     after the tests ran (passed or failed), Main stops every server it
//     started and removes their directories.
//  2. Every child process is started with the parent-death signal SIGKILL,
//     from one OS thread that never exits, so the kernel kills it when the
//     test binary dies for any reason (a -timeout panic, os.Exit, SIGKILL),
//     with or without Main. PostgreSQL runs as the postgres user (initdb
//     and postgres refuse root) through the child's credentials rather than
//     runuser, so that the PID we hold is the server's own.
//  3. Directories left behind by a test binary that did not reach Main are
//     removed by the next test binary that starts a server, once their PID
//     is gone.
//
// t.Cleanup on the first user was not chosen: it would stop the shared
// server when that test ends, while later tests still need it.
package testinfra
