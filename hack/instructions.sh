#!/usr/bin/env bash
# instructions.sh: instructions per cached token request of fakeimds and of
# the bare net/http ceiling (benchhttp ceiling), counted by callgrind. Unlike
# req/s and CPU time it does not move with the machine's load
# (docs/performance.md).
#
#   hack/instructions.sh [BENCH_BIN] [N]    (make bench-instr)
#
# BENCH_BIN holds fakeimds and benchhttp, built with CGO_ENABLED=0 and
# -ldflags=-w (valgrind 3.19 misreads Go's DWARF 5 and cgo's signal masks);
# N requests (default 20000) are counted after 3,000 uncounted ones. Go's
# asynchronous preemption is off under callgrind (its signals crash it).
# Needs valgrind and curl. GOGC=off in the environment leaves the
# collector out, for changes smaller than its cycle-to-cycle variation.
# INSTR_KEEP=DIR keeps the callgrind outputs there (ceiling.callgrind,
# fakeimds.callgrind) for callgrind_annotate; INSTR_CALLGRIND_FLAGS adds
# callgrind options (--dump-instr=yes: costs by address).
set -euo pipefail
bin=${1:-_output/bench-instr}
n=${2:-20000}
for t in valgrind callgrind_control curl; do
	command -v "$t" >/dev/null || { echo "instructions.sh: $t not found (apt-get install valgrind curl)" >&2; exit 2; }
done
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
query='/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net'

# start_fakeimds LOG [WRAPPER...]: starts fakeimds, sets pid and addr.
start_fakeimds() {
	local log=$1
	shift
	"$@" "$bin/fakeimds" --imds-addr 127.0.0.1:0 --control-addr 127.0.0.1:0 --throttle false \
		--log-format json --log-level info 2>"$log" &
	pid=$!
	pids+=("$pid")
	addr=
	for _ in $(seq 600); do
		addr=$(sed -n 's/.*"msg":"ready".*"imds":"\([^"]*\)".*/\1/p' "$log")
		[ -n "$addr" ] && return
		sleep 0.2
	done
	echo "instructions.sh: fakeimds not ready; its log: $log" >&2
	exit 1
}

# The answer the ceiling replays: fakeimds's second (cached) answer.
start_fakeimds "$work/plain.log"
curl -s -o /dev/null -H Metadata:true "http://$addr$query"
curl -si -H Metadata:true "http://$addr$query" >"$work/answer"
kill "$pid"

cg=(env GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --log-file="$work/valgrind.%p.log"
	--callgrind-out-file="$work/callgrind.%p" ${INSTR_CALLGRIND_FLAGS:-})

# count PID ADDR NAME: instructions per request of the server PID at ADDR.
count() {
	"$bin/benchhttp" drive -addr "$2" -n 3000
	callgrind_control -z "$1" >/dev/null 2>&1
	"$bin/benchhttp" drive -addr "$2" -n "$n"
	callgrind_control -d "$1" >/dev/null 2>&1
	local f ir
	for _ in $(seq 50); do
		f=$(ls "$work"/callgrind."$1".* 2>/dev/null | head -1)
		[ -n "$f" ] && grep -q '^totals:' "$f" && break
		sleep 0.2
	done
	ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
	kill "$1"
	if [ -n "${INSTR_KEEP:-}" ]; then mkdir -p "$INSTR_KEEP" && cp "$f" "$INSTR_KEEP/$3.callgrind"; fi
	echo $((ir / n))
}

"${cg[@]}" "$bin/benchhttp" ceiling -answer "$work/answer" >"$work/ceiling.out" &
cpid=$!
pids+=("$cpid")
for _ in $(seq 600); do grep -q listening "$work/ceiling.out" && break; sleep 0.2; done
ceiling=$(count "$cpid" "$(sed -n 's/^listening //p' "$work/ceiling.out")" ceiling)

start_fakeimds "$work/callgrind.log" "${cg[@]}"
fake=$(count "$pid" "$addr" fakeimds)

echo "instructions per request ($n cached token requests, 8 connections${GOGC:+, GOGC=$GOGC}):"
echo "  ceiling (bare net/http)  $ceiling"
echo "  fakeimds                 $fake"
awk -v c="$ceiling" -v f="$fake" 'BEGIN { printf "  ceiling/fakeimds         %.2f (goal 0.90)\n", c / f }'
