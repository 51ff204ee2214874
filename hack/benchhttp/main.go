// Command benchhttp measures fakeimds's cached token path out of process,
// over loopback HTTP/1.1 with keep-alive, against the ceiling of the stack
// on the machine: a bare net/http server (this program, re-executed)
// writing exactly the header lines and body bytes of one real fakeimds
// answer. The in-process benchmarks (make bench) share one process and
// its scheduler between client and server and hide costs that an
// out-of-process client sees; this is the figure the speed goal is about.
//
//	benchhttp ratio -fakeimds bin/fakeimds [-rounds 3] [-duration 4s] [-conns 8] [-goal 0.9] [-enforce] [-compare OLDBIN]
//	benchhttp scale -fakeimds bin/fakeimds [-n 1000000] [-resources 2000] [-cold-every 100]
//	benchhttp drive -addr HOST:PORT [-n 20000] [-conns 8]
//
// ratio alternates the two servers, rounds times each, and prints
// requests/s and p50/p99 latency per round and the median of the
// per-round ratios; with -enforce it exits 1 when that is below -goal.
// -selfcheck (on by default) first drives a raw responder that answers
// canned bytes without parsing HTTP, showing what the generator itself
// can do on the machine.
//
// scale sends n token requests as fast as the connections go, throttling
// off, over many resources (a hot set the cache keeps and a cold resource
// every cold-every requests, which the bounded cache must evict), and
// reports fakeimds's resident memory at 100k, 500k and n requests and the
// latency quantiles.
//
// drive sends exactly n cached token requests to a server already
// running (hack/instructions.sh counts a server's instructions per request
// under callgrind with it) and exits 1 if any answer was not a 200.
//
// Both servers are separate processes, so the generator's own CPU (it
// runs with GOMAXPROCS 1, like wrk -t1) is not hidden inside theirs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "ratio":
		err = ratioCmd(os.Args[2:])
	case "scale":
		err = scaleCmd(os.Args[2:])
	case "ceiling":
		err = ceilingCmd(os.Args[2:])
	case "drive":
		err = driveCmd(os.Args[2:])
	default:
		usage()
	}
	var below errBelowGoal
	switch {
	case errors.As(err, &below):
		fmt.Fprintln(os.Stderr, "benchhttp:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "benchhttp:", err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchhttp ratio|scale -fakeimds PATH [flags], benchhttp drive -addr HOST:PORT [flags]  (-h for flags)")
	os.Exit(2)
}

type errBelowGoal struct{ ratio, goal float64 }

func (e errBelowGoal) Error() string {
	return fmt.Sprintf("fakeimds/ceiling %.2f is below the goal %.2f", e.ratio, e.goal)
}

// The token request both modes send; its resource is the one the
// ratio mode asks for on every request (a cached token after the first).
const (
	tokenPath     = "/metadata/identity/oauth2/token"
	benchResource = "https://vault.azure.net"
)

func ratioCmd(args []string) error {
	fs := flag.NewFlagSet("ratio", flag.ExitOnError)
	bin := fs.String("fakeimds", "bin/fakeimds", "fakeimds binary to measure")
	rounds := fs.Int("rounds", 3, "rounds; each drives the ceiling then fakeimds")
	dur := fs.Duration("duration", 4*time.Second, "load time per server per round")
	conns := fs.Int("conns", 8, "keep-alive connections, one request in flight on each")
	goal := fs.Float64("goal", 0.9, "fakeimds/ceiling goal")
	enforce := fs.Bool("enforce", false, "exit 1 when the median ratio is below -goal")
	selfcheck := fs.Bool("selfcheck", true, "first measure the generator against a raw responder")
	procs := fs.Int("procs", 1, "GOMAXPROCS of the generator")
	compare := fs.String("compare", "", "another fakeimds binary (an older build) to drive in every round too, for a before/after under the same load")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(*procs)

	fake, err := startFakeIMDS(*bin)
	if err != nil {
		return err
	}
	defer fake.stop()
	var other *proc
	if *compare != "" {
		if other, err = startFakeIMDS(*compare); err != nil {
			return err
		}
		defer other.stop()
		if _, _, err := fetch(other.addr, request(other.addr, tokenPath, benchResource)); err != nil {
			return fmt.Errorf("warm-up request to -compare: %w", err)
		}
	}
	req := request(fake.addr, tokenPath, benchResource)
	// The first request mints and caches the token; the second is the
	// cached answer the ceiling replays.
	if _, _, err := fetch(fake.addr, req); err != nil {
		return fmt.Errorf("warm-up request: %w", err)
	}
	hdr, body, err := fetch(fake.addr, req)
	if err != nil {
		return fmt.Errorf("fetch the answer to replay: %w", err)
	}
	if !startsWith(hdr, "HTTP/1.1 200") {
		return fmt.Errorf("fakeimds answered %q", firstLine(hdr))
	}
	answer, err := os.CreateTemp("", "benchhttp-answer-*")
	if err != nil {
		return err
	}
	defer os.Remove(answer.Name())
	if err := writeAnswer(answer, hdr, body); err != nil {
		return err
	}
	ceil, err := startCeiling(answer.Name(), false)
	if err != nil {
		return err
	}
	defer ceil.stop()
	fmt.Printf("benchhttp ratio: %d rounds × %s per server, %d connections, generator GOMAXPROCS %d, %d-byte body\n",
		*rounds, *dur, *conns, *procs, len(body))
	fmt.Printf("  fakeimds pid %d at %s; ceiling (bare net/http, same header lines and body) pid %d at %s\n",
		fake.cmd.Process.Pid, fake.addr, ceil.cmd.Process.Pid, ceil.addr)
	pids := map[string]int{fake.addr: fake.cmd.Process.Pid, ceil.addr: ceil.cmd.Process.Pid}
	if other != nil {
		pids[other.addr] = other.cmd.Process.Pid
	}
	one := func(addr string, d time.Duration) (result, error) {
		t0, _ := cpuTicks(pids[addr])
		r, err := load(addr, *conns, d, 0, func(int) []byte { return req }, nil)
		if err == nil && r.errors > 0 {
			err = fmt.Errorf("%d answers were not 200", r.errors)
		}
		if t1, err := cpuTicks(pids[addr]); err == nil && r.requests > 0 {
			r.cpuPerReq = time.Duration(t1-t0) * (time.Second / ticksPerSecond) / time.Duration(r.requests)
		}
		return r, err
	}
	if *selfcheck {
		raw, err := startCeiling(answer.Name(), true)
		if err != nil {
			return err
		}
		r, err := one(raw.addr, *dur)
		raw.stop()
		if err != nil {
			return fmt.Errorf("raw responder: %w", err)
		}
		fmt.Printf("  generator self-check (raw responder, no HTTP parsing): %s\n", line(r))
	}
	// A short warm-up of each, so that round 1 does not pay for page
	// faults and the first GC cycles.
	warm := []string{ceil.addr, fake.addr}
	if other != nil {
		warm = append(warm, other.addr)
	}
	for _, a := range warm {
		if _, err := one(a, *dur/8); err != nil {
			return err
		}
	}
	var ratios, otherRatios, ceilRPS, fakeRPS, cpuRatios, otherCPURatios []float64
	var fakeP99 []time.Duration
	for i := 1; i <= *rounds; i++ {
		c, err := one(ceil.addr, *dur)
		if err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		fmt.Printf("  round %d  ceiling  %s\n", i, line(c))
		f, err := one(fake.addr, *dur)
		if err != nil {
			return fmt.Errorf("fakeimds: %w", err)
		}
		ratio := f.rps() / c.rps()
		ratios, ceilRPS, fakeRPS = append(ratios, ratio), append(ceilRPS, c.rps()), append(fakeRPS, f.rps())
		fakeP99 = append(fakeP99, f.quantile(0.99))
		cpuRatios = append(cpuRatios, float64(c.cpuPerReq)/float64(f.cpuPerReq))
		fmt.Printf("  round %d  fakeimds %s  ratio %.2f\n", i, line(f), ratio)
		if other != nil {
			o, err := one(other.addr, *dur)
			if err != nil {
				return fmt.Errorf("-compare: %w", err)
			}
			otherRatios = append(otherRatios, o.rps()/c.rps())
			otherCPURatios = append(otherCPURatios, float64(c.cpuPerReq)/float64(o.cpuPerReq))
			fmt.Printf("  round %d  compare  %s  ratio %.2f\n", i, line(o), o.rps()/c.rps())
		}
	}
	if other != nil {
		fmt.Printf("-compare (%s)/ceiling: median %.2f (rounds %s); by server CPU per request %.2f (rounds %s)\n",
			*compare, median(otherRatios), joinFloats(otherRatios), median(otherCPURatios), joinFloats(otherCPURatios))
	}
	// Server CPU time per request is what other load on the machine
	// disturbs least: it is printed beside the throughput ratio.
	fmt.Printf("server CPU per request, ceiling/fakeimds: median %.2f (rounds %s)\n", median(cpuRatios), joinFloats(cpuRatios))
	med := median(ratios)
	fmt.Printf("fakeimds/ceiling: median %.2f (rounds %s; spread %.2f–%.2f); ceiling median %.0f req/s, fakeimds median %.0f req/s, fakeimds p99 worst %s; goal %.2f: %s\n",
		med, joinFloats(ratios), slices.Min(ratios), slices.Max(ratios), median(ceilRPS), median(fakeRPS), slices.Max(fakeP99), *goal, verdict(med >= *goal))
	if *enforce && med < *goal {
		return errBelowGoal{med, *goal}
	}
	return nil
}

func scaleCmd(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	bin := fs.String("fakeimds", "bin/fakeimds", "fakeimds binary to measure")
	n := fs.Int64("n", 1_000_000, "requests to send")
	conns := fs.Int("conns", 8, "keep-alive connections, one request in flight on each")
	hot := fs.Int("resources", 2000, "distinct resources asked for over and over (within the token cache's capacity)")
	coldEvery := fs.Int("cold-every", 100, "every this many requests asks for a resource never asked before (0: none)")
	procs := fs.Int("procs", 1, "GOMAXPROCS of the generator")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(*procs)

	fake, err := startFakeIMDS(*bin)
	if err != nil {
		return err
	}
	defer fake.stop()
	hotReqs := make([][]byte, *hot)
	for i := range hotReqs {
		hotReqs[i] = request(fake.addr, tokenPath, "https://r"+strconv.Itoa(i)+".example")
	}
	reqFor := func(k int) []byte {
		if *coldEvery > 0 && k%*coldEvery == *coldEvery-1 {
			return request(fake.addr, tokenPath, "https://cold.example/"+strconv.Itoa(k))
		}
		return hotReqs[k%len(hotReqs)]
	}
	rss0, _ := rssKiB(fake.cmd.Process.Pid)
	fmt.Printf("benchhttp scale: %d requests, %d connections (IMDS documents 20 token requests/s and 5 concurrent per VM), throttling off\n", *n, *conns)
	fmt.Printf("  %d hot resources, a new cold resource every %d requests; fakeimds pid %d, RSS at start %s\n", *hot, *coldEvery, fake.cmd.Process.Pid, kib(rss0))
	marks := []int64{100_000, 500_000, *n}
	next := 0
	start := time.Now()
	progress := func(done int64) {
		for next < len(marks) && done >= marks[next] {
			rss, err := rssKiB(fake.cmd.Process.Pid)
			if err == nil {
				fmt.Printf("  %8d requests  %6.1fs  RSS %s\n", marks[next], time.Since(start).Seconds(), kib(rss))
			}
			next++
		}
	}
	r, err := load(fake.addr, *conns, 0, *n, reqFor, progress)
	if err != nil {
		return err
	}
	rss, err := rssKiB(fake.cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("  done: %s; RSS after %d requests %s (%d non-200)\n", line(r), r.requests, kib(rss), r.errors)
	if m, err := fake.metrics("fakeimds_tokens_minted_total", "go_memstats_heap_inuse_bytes"); err == nil {
		fmt.Printf("  fakeimds /metrics: %s\n", m)
	}
	return nil
}

func driveCmd(args []string) error {
	fs := flag.NewFlagSet("drive", flag.ExitOnError)
	addr := fs.String("addr", "", "server to drive (host:port)")
	n := fs.Int64("n", 20000, "requests to send")
	conns := fs.Int("conns", 8, "keep-alive connections, one request in flight on each")
	_ = fs.Parse(args)
	if *addr == "" {
		return errors.New("drive: -addr is required")
	}
	req := request(*addr, tokenPath, benchResource)
	r, err := load(*addr, *conns, 0, *n, func(int) []byte { return req }, nil)
	if err == nil && r.errors > 0 {
		err = fmt.Errorf("%d answers were not 200", r.errors)
	}
	return err
}

func line(r result) string {
	s := fmt.Sprintf("%8.0f req/s  p50 %-8s p99 %-8s (%d requests in %.1fs)",
		r.rps(), r.quantile(0.5).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond), r.requests, r.elapsed.Seconds())
	if r.cpuPerReq > 0 {
		s += fmt.Sprintf("  server CPU %.1fµs/req", float64(r.cpuPerReq)/float64(time.Microsecond))
	}
	return s
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func joinFloats(v []float64) string {
	out := ""
	for i, x := range v {
		if i > 0 {
			out += ", "
		}
		out += strconv.FormatFloat(x, 'f', 2, 64)
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func kib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/1024) }
