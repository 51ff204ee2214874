# idharness build, test and benchmark targets. `make help` lists them.
# Go from PATH, or from /usr/local/go where the project's machines keep it,
# so that `make test` works in a shell whose PATH lacks it.
export PATH := $(PATH):/usr/local/go/bin
GO       ?= go
BIN      ?= bin
PKGS     ?= ./...
# The race detector needs cgo.
export CGO_ENABLED ?= 1

.PHONY: help build test client-prereqs unit examples vet fmt-check fuzz bench e2e chaos clean

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

build: ## build every command into $(BIN)/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

test: fmt-check vet client-prereqs unit examples ## the test suite: gofmt, go vet, unit and integration tests with the race detector, the example modules

# The client contract test runs every client program (clients/): their
# runtimes must be there (the az CLI, a JDK and Maven from apt if missing).
client-prereqs:
	@hack/prereqs.sh --clients

fmt-check: ## fail if any Go file is not gofmt-clean
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# -race: vet then compiles every dependency exactly as the race-enabled
# tests do, so that `make test` compiles them once, not twice (a cold
# make test: 15 min without it on 2 cores).
vet: ## go vet
	$(GO) vet -race $(PKGS)

# go test starts packages in the order it is given them. internal/scenario's
# tests play real clients for about 80 s, mostly waiting on fault windows:
# given first, they run while the other packages compile and link, instead
# of after them. Only when every package is tested (PKGS=./...).
UNIT_FIRST ?= $(if $(filter ./...,$(PKGS)),./internal/scenario/)
# -p bounds the packages go test builds and tests at once; its default is
# the number of cores. internal/scenario's tests (80 s) and clients' (45 s)
# mostly wait on fault windows and client programs, so on 2 cores they held
# both slots while the other packages' test binaries waited to be linked:
# the CPU was 53 % busy and unit took 194 s, against 105 s with -p 4 (99 s
# with 8, with the waiting tests slowed by the contention).
UNIT_P ?= 4
unit: ## unit and integration tests, race detector on
	$(GO) test -race -count=1 -p $(UNIT_P) -timeout 20m $(UNIT_FIRST) $(PKGS)

# The example modules (examples/*/go.mod) are other modules, as a user's
# or a vendor's would be: they import only idharness's public packages
# (internal/ would not compile there), so building them proves the public
# API is enough.
EXAMPLES := $(sort $(dir $(wildcard examples/*/go.mod)))
examples: ## build, vet and test the example modules (examples/*)
	@for m in $(EXAMPLES); do echo "== $$m"; (cd $$m && $(GO) build ./... && $(GO) vet ./... && $(GO) test -race -count=1 ./...) || exit 1; done

FUZZTIME ?= 20s
fuzz: ## run each fuzz target for $(FUZZTIME)
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

BENCHTIME ?= 2s
bench: ## benchmarks (fakeimds token endpoint vs a bare net/http ceiling)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./fakeimds/...

# The reference profile adds the pod identity node agent, so that every
# conformance spec runs (it serves only namespaces labelled for pod identity).
# Three specs at once, taking turns at starting client runtimes: on 2 cores
# the suite took 217 s, against 258 s with 2 and 238 s with 4, and 360 s in
# one process (docs/conformance.md#side-by-side---parallel-n).
E2E_FLAGS  ?= --profile reference --parallel 3
REPORT_DIR ?= _output/report
e2e: prereqs idharness-bin ## the main job: cluster up (offline node image if needed), deploy, the whole conformance suite, report in $(REPORT_DIR)
	$(IDHARNESS) run --cluster $(CLUSTER)-e2e --node-image $(NODE_IMAGE) --report-dir $(REPORT_DIR) $(E2E_FLAGS)

# The chaos suite on a cluster of its own; the reference profile, so that
# the node agent's restarts and upstream path are exercised too.
CHAOS_FLAGS      ?= --profile reference
CHAOS_REPORT_DIR ?= _output/chaos
CHAOS_CLUSTER    ?= $(CLUSTER)-chaos
chaos: prereqs idharness-bin ## the chaos suite (latency, 410s, 429 storms, outages, agent restarts): cluster up, deploy, suite, report.html in $(CHAOS_REPORT_DIR)
	$(IDHARNESS) run --suite chaos --cluster $(CHAOS_CLUSTER) --node-image $(NODE_IMAGE) --report-dir $(CHAOS_REPORT_DIR) $(CHAOS_FLAGS)

# The chaos specs labelled scheduled (a node restarted and booted, the
# kubelet's rotation of a 10-minute token: 17 minutes), which make chaos
# leaves out; CI runs them on a schedule.
chaos-scheduled: prereqs idharness-bin ## the chaos specs labelled scheduled (a node restarted, the kubelet's token rotation), left out of make chaos; report in $(CHAOS_REPORT_DIR)-scheduled
	$(IDHARNESS) run --suite chaos --label-filter scheduled --cluster $(CHAOS_CLUSTER) --node-image $(NODE_IMAGE) --report-dir $(CHAOS_REPORT_DIR)-scheduled $(CHAOS_FLAGS)

clean: ## remove build output
	rm -rf $(BIN)

-include mk/*.mk
