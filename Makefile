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

# The demo job. Its lake and state live in ./demo (relative to the
# working directory, as in the config file).
DEMO_CONFIG ?= deploy/examples/demo.yaml
DEMO_TABLE ?= demo.dwd_demo_orders

.PHONY: all build run clean-demo clean test bench lint fmt-check vet staticcheck chaos tidy-check help

all: lint build test

help:
	@echo 'make build        build $(BIN) (version $(VERSION))'
	@echo 'make run          build, run the demo job once, list its tables, show 5 rows'
	@echo 'make clean-demo   remove the demo lake and state (./demo)'
	@echo 'make test         go test $(TEST_FLAGS) $(PKGS)'
	@echo 'make bench        benchmarks in ./bench, once each (override BENCH_ARGS)'
	@echo 'make lint         gofmt -l, go vet, staticcheck (STATICCHECK=0 to skip)'
	@echo 'make chaos        crash/chaos soak, SLUICE_CHAOS_ROUNDS=$(SLUICE_CHAOS_ROUNDS)'
	@echo 'make tidy-check   fail if go.mod/go.sum are not tidy (changes nothing)'

build:
	$(GO) build $(BUILD_FLAGS) -o $(BIN) ./cmd/sluice

# Available-now run of the demo: safe to repeat. A second run resumes from
# ./demo/state; the generator has a total, so it reads nothing new and exits 0.
run: build
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
