# sluice — build, demo, test and lint entry points.
# GNU make. Every target is phony: the go tool does its own caching.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go

# Version stamped into the binary (cmd/sluice: `var version = "dev"`).
# Falls back to "dev" outside git or before the first commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS ?= -X main.version=$(VERSION)
BUILD_FLAGS ?= -trimpath -ldflags '$(LDFLAGS)'
BIN ?= bin/sluice

# Package-level parallelism. The CI machine has 2 cores shared with others;
# raise it on a bigger box with `make test GO_P=8`. An explicit -p= already in
# GOFLAGS wins.
GO_P ?= 2
ifeq ($(findstring -p=,$(GOFLAGS)),)
export GOFLAGS := $(strip $(GOFLAGS) -p=$(GO_P))
endif

# One `go test` invocation: CI reads its closing lines (ok/FAIL per package).
PKGS ?= ./...
TEST_FLAGS ?= -race -count=1 -timeout 25m

# `make bench BENCH_ARGS='-run ^$$ -bench Dedupe -benchtime 3x ./bench/...'`
BENCH_ARGS ?= -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/...

# Crash soak: every crash point, many rounds.
SLUICE_CHAOS_ROUNDS ?= 50
CHAOS_ARGS ?= -race -count=1 -timeout 60m -run 'Crash|Chaos' -tags chaos ./e2e/...

# staticcheck is fetched through the module proxy, so it needs the network.
# `make lint STATICCHECK=0` skips it (CI and offline machines). v0.6.1 is
# staticcheck 2025.1.1: the proxy refuses the non-semver tag name.
STATICCHECK ?= 1
STATICCHECK_VERSION ?= v0.6.1
STATICCHECK_CMD ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The MariaDB demo (make run): a local MariaDB on 127.0.0.1:$(DEMO_MYSQL_PORT)
# with its data in ./demo/mariadb, a workload for DEMO_WORKLOAD_SECONDS, the
# daemon for DEMO_SECONDS (0: until Ctrl-C), the lake in ./demo/mariadb-lake.
MARIADB_DEMO_CONFIG ?= deploy/examples/mariadb-demo.yaml
DEMO_DB ?= deploy/demo/mariadb.sh
DEMO_MYSQL_PORT ?= 13306
DEMO_SECONDS ?= 30
DEMO_WORKLOAD_SECONDS ?= 20

# The datagen demo job (make run-datagen). Its lake and state live in ./demo
# (relative to the working directory, as in the config file).
DEMO_CONFIG ?= deploy/examples/demo.yaml
DEMO_TABLE ?= demo.dwd_demo_orders

.PHONY: all build run run-datagen demo-stop demo-status clean-demo clean test bench lint fmt-check vet staticcheck chaos tidy-check help

all: lint build test

help:
	@echo 'make build        build $(BIN) (version $(VERSION))'
	@echo 'make run          build, start a local MariaDB with a workload, stream it into the'
	@echo '                  embedded lake for $(DEMO_SECONDS)s (DEMO_SECONDS=0: until Ctrl-C), compare rows'
	@echo 'make run-datagen  build, run the synthetic demo job once, list its tables, show 5 rows'
	@echo 'make demo-stop    stop the demo MariaDB (make demo-status: is it running?)'
	@echo 'make clean-demo   stop the demo MariaDB, remove its data and the demo lakes (./demo)'
	@echo 'make test         go test $(TEST_FLAGS) $(PKGS)'
	@echo 'make bench        benchmarks in ./bench, once each (override BENCH_ARGS)'
	@echo 'make lint         gofmt -l, go vet, staticcheck (STATICCHECK=0 to skip)'
	@echo 'make chaos        crash/chaos soak, SLUICE_CHAOS_ROUNDS=$(SLUICE_CHAOS_ROUNDS)'
	@echo 'make tidy-check   fail if go.mod/go.sum are not tidy (changes nothing)'

build:
	$(GO) build $(BUILD_FLAGS) -o $(BIN) ./cmd/sluice

# The MariaDB demo: safe to repeat. deploy/demo/run.sh starts MariaDB
# (installing mariadb-server if missing) and a workload, runs the daemon,
# stops it with SIGTERM, then lists the tables, shows rows and compares row
# counts. A second run resumes from ./demo/mariadb-lake/state. MariaDB keeps
# running afterwards: make demo-stop.
run: build
	BIN=$(BIN) CONFIG=$(MARIADB_DEMO_CONFIG) DEMO_MYSQL_PORT=$(DEMO_MYSQL_PORT) \
		DEMO_SECONDS=$(DEMO_SECONDS) DEMO_WORKLOAD_SECONDS=$(DEMO_WORKLOAD_SECONDS) deploy/demo/run.sh

demo-stop:
	$(DEMO_DB) stop

demo-status:
	$(DEMO_DB) status

# Available-now run of the datagen demo: safe to repeat. A second run resumes
# from ./demo/state; the generator has a total, so it reads nothing new and
# exits 0.
run-datagen: build
	$(BIN) run --once -c $(DEMO_CONFIG)
	$(BIN) tables -c $(DEMO_CONFIG)
	$(BIN) scan -c $(DEMO_CONFIG) $(DEMO_TABLE) --limit 5
	@echo
	@echo 'The demo lake:'
	@echo '  catalog    ./demo/lake/catalog.db   (Iceberg SQL catalog on SQLite)'
	@echo '  warehouse  ./demo/lake/warehouse    (Parquet data + Iceberg metadata)'
	@echo '  state      ./demo/state             (checkpoints; delete with make clean-demo)'
	@echo 'Read the tables:'
	@echo '  $(BIN) tables -c $(DEMO_CONFIG)'
	@echo '  $(BIN) scan -c $(DEMO_CONFIG) $(DEMO_TABLE) --limit 20'
	@echo '  or any Iceberg reader with a SQL catalog (PyIceberg, Spark, Trino): catalog'
	@echo '  database $(CURDIR)/demo/lake/catalog.db (SQLite), warehouse file://$(CURDIR)/demo/lake/warehouse'

clean-demo:
	$(DEMO_DB) stop
	rm -rf demo

clean: clean-demo
	rm -rf bin

test:
	$(GO) test $(TEST_FLAGS) $(PKGS)

bench:
	$(GO) test $(BENCH_ARGS)

# gofmt -l over every Go file outside vendor/ and testdata/: must print nothing.
fmt-check:
	@out=$$(find . -path ./vendor -prune -o -path ./.git -prune -o -name testdata -prune -o \
		-type f -name '*.go' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo 'gofmt -l reports unformatted files (run gofmt -w):'; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(STATICCHECK_CMD) $(PKGS)

lint: fmt-check vet
ifneq ($(STATICCHECK),0)
	$(STATICCHECK_CMD) $(PKGS)
endif

chaos:
	SLUICE_CHAOS_ROUNDS=$(SLUICE_CHAOS_ROUNDS) $(GO) test $(CHAOS_ARGS)

# Changes nothing: prints the diff `go mod tidy` would make and fails if any.
tidy-check:
	$(GO) mod tidy -diff
