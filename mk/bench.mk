# Out-of-process HTTP benchmarks of fakeimds (docs/performance.md).
# Included by the top-level Makefile; needs $(GO) from there.
GO              ?= go
BENCH_BIN       ?= _output/bench
# ratio: 3 rounds of 4 s per server, 8 keep-alive connections; add
# -enforce to fail below the goal (0.9× the bare net/http ceiling).
BENCH_HTTP_FLAGS  ?= -rounds 3 -duration 4s -conns 8 -goal 0.9
BENCH_SCALE_FLAGS ?= -n 1000000 -conns 8

BENCH_INSTR_BIN ?= _output/bench-instr
BENCH_INSTR_N   ?= 20000

.PHONY: bench-http bench-scale bench-http-bin bench-instr

bench-http-bin:
	@mkdir -p $(BENCH_BIN)
	$(GO) build -o $(BENCH_BIN)/ ./cmd/fakeimds ./hack/benchhttp

bench-http: bench-http-bin ## fakeimds's cached token path out of process vs a bare net/http ceiling: req/s, p50/p99, ratio (BENCH_HTTP_FLAGS=-enforce fails below 0.9)
	$(BENCH_BIN)/benchhttp ratio -fakeimds $(BENCH_BIN)/fakeimds $(BENCH_HTTP_FLAGS)

bench-scale: bench-http-bin ## 1M token requests at full speed, throttling off: fakeimds's RSS at 100k/500k/1M and p99
	$(BENCH_BIN)/benchhttp scale -fakeimds $(BENCH_BIN)/fakeimds $(BENCH_SCALE_FLAGS)

bench-instr: ## instructions per cached token request, fakeimds and the bare net/http ceiling, under callgrind (needs valgrind): the load-independent figure
	@mkdir -p $(BENCH_INSTR_BIN)
	CGO_ENABLED=0 $(GO) build -ldflags=-w -o $(BENCH_INSTR_BIN)/ ./cmd/fakeimds ./hack/benchhttp
	hack/instructions.sh $(BENCH_INSTR_BIN) $(BENCH_INSTR_N)
