package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"

	fchaos "github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/report"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// userAgentTag is what the probe appends to each client's User-Agent
// (internal/probe), by which journal entries are attributed to clients.
const userAgentTag = "idharness-probe/"

// faultRun is one chaos spec's handle on its node's fakeimds: the rules
// it injected and when, and the journal cursor from which its requests
// are counted.
type faultRun struct {
	node  string
	fc    *client.Client
	start time.Time
	seq0  uint64
	// podLabels are added to every probe pod (a pod identity binding's
	// selector, …).
	podLabels map[string]string

	mu      sync.Mutex
	windows []window
}

// window is an injected rule's active interval on the harness clock; the
// kind nodes share the host's clock, so pod and fakeimds times compare.
type window struct {
	name, kind string
	from, to   time.Time // to is zero: until the spec's end
}

// begin connects to the fakeimds of the node the spec runs on, clears
// rules left by anything before and removes the spec's own rules after
// it, so that specs run one after another never see each other's faults.
func begin(ctx context.Context) *faultRun {
	GinkgoHelper()
	names := Stack.NodeNames()
	// The last node is a worker: the API server's node stays out of the
	// storms.
	node := names[len(names)-1]
	fc, err := Stack.FakeIMDS(ctx, node)
	if err != nil {
		Fail(fmt.Sprintf("fakeimds control API on %s: %v (is the stack deployed? run `idharness run --keep-cluster` first)", node, err))
	}
	if err := fc.ResetFaults(ctx); err != nil {
		Fail(fmt.Sprintf("reset faults on %s: %v", node, err))
	}
	DeferCleanup(func(ctx context.Context) { _ = fc.ResetFaults(ctx) })
	r := &faultRun{node: node, fc: fc, start: time.Now()}
	if entries, err := fc.Journal(ctx, 0); err == nil && len(entries) > 0 {
		r.seq0 = entries[len(entries)-1].Seq
	}
	return r
}

// rule decodes a rule written as the control API's JSON, the form the
// README documents, so that specs read like the rules they inject.
func rule(js string) fchaos.Rule {
	GinkgoHelper()
	var r fchaos.Rule
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		Fail(fmt.Sprintf("chaos spec rule %s: %v", js, err))
	}
	return r
}

// inject adds rules and records their windows from their schedules.
func (r *faultRun) inject(ctx context.Context, rules ...fchaos.Rule) {
	GinkgoHelper()
	if _, err := r.fc.AddFaults(ctx, rules...); err != nil {
		Fail(fmt.Sprintf("add faults on %s: %v", r.node, err))
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ru := range rules {
		w := window{name: ru.Name, kind: ru.Action.Type, from: now.Add(ru.Schedule.After.Duration)}
		if ru.Schedule.For.Duration > 0 {
			w.to = w.from.Add(ru.Schedule.For.Duration)
		}
		r.windows = append(r.windows, w)
	}
}

// remove ends a rule now.
func (r *faultRun) remove(ctx context.Context, name string) {
	GinkgoHelper()
	if err := r.fc.RemoveFault(ctx, name); err != nil {
		Fail(fmt.Sprintf("remove fault %s on %s: %v", name, r.node, err))
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.windows {
		if r.windows[i].name == name && (r.windows[i].to.IsZero() || r.windows[i].to.After(now)) {
			r.windows[i].to = now
		}
	}
}

// mark records a window of a fault that is not a rule (an agent's
// restart, …) and returns it.
func (r *faultRun) mark(name, kind string, from, to time.Time) window {
	w := window{name: name, kind: kind, from: from, to: to}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, w)
	return w
}

// windowOf returns the named rule's window.
func (r *faultRun) windowOf(name string) window {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows {
		if w.name == name {
			return w
		}
	}
	return window{}
}

// probeEach runs one probe pod per client on the spec's node, all at
// once, each with args(client) — so that each client can ask for a
// resource of its own and a rule can be scoped to one client by
// match.resource — and returns the merged results.
func (r *faultRun) probeEach(ctx context.Context, ns string, clients []string, timeout time.Duration, args func(client string) []string) []probe.Result {
	GinkgoHelper()
	runs := make([]ProbeRun, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			runs[i] = RunProbe(ctx, ns, Probe{Node: r.node, Timeout: timeout, Labels: r.podLabels, Args: append([]string{"--client=" + c}, args(c)...)})
		}()
	}
	wg.Wait()
	var out []probe.Result
	for _, run := range runs {
		out = append(out, run.Results...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// probeEachInBackground starts probeEach and returns at once, for specs
// that inject their fault once the clients hold a token; wait returns the
// results when every pod has finished.
func (r *faultRun) probeEachInBackground(ctx context.Context, ns string, clients []string, timeout time.Duration, args func(client string) []string) (wait func() []probe.Result) {
	var results []probe.Result
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		results = r.probeEach(ctx, ns, clients, timeout, args)
	}()
	return func() []probe.Result {
		<-done
		return results
	}
}

// waitForTokens waits until the journal shows a 200 token answer for
// every client (the pods started and hold a token), or timeout passes.
func (r *faultRun) waitForTokens(ctx context.Context, clients []string, timeout time.Duration) bool {
	got := map[string]bool{}
	return r.waitForJournal(ctx, timeout, func(e journal.Entry) bool {
		if e.Status == 200 && e.Face == "imds" && e.Identity != "" {
			got[clientOf(e)] = true
		}
		for _, c := range clients {
			if !got[c] {
				return false
			}
		}
		return true
	})
}

// waitForJournal waits until done, called with each of the spec's
// journal entries in order, returns true, or timeout passes.
func (r *faultRun) waitForJournal(ctx context.Context, timeout time.Duration, done func(journal.Entry) bool) bool {
	deadline := time.Now().Add(timeout)
	seen := r.seq0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		entries, err := r.fc.Journal(ctx, seen)
		if err == nil {
			for _, e := range entries {
				seen = e.Seq
				if done(e) {
					return true
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return false
}

// journal returns the spec's journal entries on its node.
func (r *faultRun) journal(ctx context.Context) []journal.Entry {
	entries, err := r.fc.Journal(ctx, r.seq0)
	if err != nil {
		return nil
	}
	return entries
}

// clientOf attributes a journal entry to a probe client by the tag the
// probe adds to its User-Agent; "" when it is not the probe's.
func clientOf(e journal.Entry) string {
	ua := e.Headers["User-Agent"]
	i := strings.LastIndex(ua, userAgentTag)
	if i < 0 {
		return ""
	}
	return strings.Fields(ua[i+len(userAgentTag):] + " ")[0]
}

// maxPerSecond returns each client's largest number of requests in any
// one-second sliding window, from the journal.
func maxPerSecond(entries []journal.Entry) map[string]int {
	times := map[string][]time.Time{}
	for _, e := range entries {
		if c := clientOf(e); c != "" {
			times[c] = append(times[c], e.Time)
		}
	}
	out := map[string]int{}
	for c, ts := range times {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		j := 0
		for i := range ts {
			for ts[i].Sub(ts[j]) >= time.Second {
				j++
			}
			out[c] = max(out[c], i-j+1)
		}
	}
	return out
}

// clientOutcome is one client's verdict in a spec and a note on what it did.
type clientOutcome struct {
	verdict string
	note    string
}

// resilience computes a client's row of the resilience matrix against
// the fault window w: requests sent, how long its first failed call ran
// before it returned, and from w's end to the end of its first good call
// after it, for a client the fault affected (a failed call, or a call
// still running when the fault ended).
func resilience(client string, rs []probe.Result, w window, o clientOutcome) report.Resilience {
	row := report.Resilience{Client: client, Verdict: o.verdict, Note: o.note, Recovered: true}
	affected := false
	end := w.to
	for _, res := range rs {
		row.Attempts++
		row.Requests += res.Requests
		done := res.Time.Add(res.LatencyMs.D())
		if res.OK() {
			row.OK++
		} else {
			affected = true
			if row.GaveUpAfter == nil {
				s := report.Seconds(round1(res.LatencyMs.D().Seconds()))
				row.GaveUpAfter = &s
			}
		}
		if !end.IsZero() && res.Time.Before(end) && done.After(end) && res.Requests > 0 {
			affected = true
		}
	}
	if !affected || end.IsZero() {
		return row
	}
	row.Recovered = false
	for _, res := range rs {
		done := res.Time.Add(res.LatencyMs.D())
		if res.OK() && !done.Before(end) {
			s := report.Seconds(round1(done.Sub(end).Seconds()))
			row.RecoveredAfter, row.Recovered = &s, true
			break
		}
	}
	return row
}

// recoveredWithin reports whether a client the fault affected had its
// token again within bound of the fault's end (an unaffected one passes).
func recoveredWithin(row report.Resilience, bound time.Duration) bool {
	return row.Recovered && (row.RecoveredAfter == nil || float64(*row.RecoveredAfter) <= bound.Seconds())
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

// finish records the spec's timeline (from its journal entries: requests
// per second by status, slowest answer, faulted requests, fault windows)
// and per-client resilience rows as report evidence, and the per-client
// verdicts for the spec × client matrix. w is the window recovery is
// measured from.
func (r *faultRun) finish(ctx context.Context, results []probe.Result, w window, outcomes map[string]clientOutcome) report.Timeline {
	entries := r.journal(ctx)
	t := report.Timeline{Start: r.start}
	last := time.Now()
	for _, res := range results {
		if d := res.Time.Add(res.LatencyMs.D()); d.After(last) {
			last = d
		}
	}
	n := int(last.Sub(r.start).Seconds()) + 1
	t.Buckets = make([]report.Bucket, n)
	for i := range t.Buckets {
		t.Buckets[i] = report.Bucket{Second: i, Status: map[string]int{}}
	}
	for _, e := range entries {
		if clientOf(e) == "" {
			continue
		}
		i := int(e.Time.Sub(r.start).Seconds())
		if i < 0 || i >= n {
			continue
		}
		b := &t.Buckets[i]
		b.Status[strconv.Itoa(e.Status)]++
		b.MaxLatencyMs = max(b.MaxLatencyMs, e.LatencyMS)
		if len(e.Faults) > 0 {
			b.Faulted++
		}
	}
	r.mu.Lock()
	for _, fw := range r.windows {
		f := report.FaultWindow{Name: fw.name, Kind: fw.kind, From: report.Seconds(round1(fw.from.Sub(r.start).Seconds()))}
		if !fw.to.IsZero() {
			f.To = report.Seconds(round1(fw.to.Sub(r.start).Seconds()))
		}
		t.Faults = append(t.Faults, f)
	}
	r.mu.Unlock()
	by := ByClient(results)
	verdicts := map[string]string{}
	names := make([]string, 0, len(by))
	for c := range by {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		o, ok := outcomes[c]
		if !ok {
			o = clientOutcome{verdict: report.Passed}
		}
		verdicts[c] = o.verdict
		t.Clients = append(t.Clients, resilience(c, by[c], w, o))
	}
	if s, err := t.EvidenceEntry(); err == nil {
		AddReportEntry(report.TimelineEvidence, types.ReportEntryVisibilityNever, s)
	}
	var lines []string
	for _, row := range t.Clients {
		lines = append(lines, fmt.Sprintf("%-20s %-9s attempts %d ok %d requests %d gave-up-after %s recovered-after %s  %s",
			row.Client, row.Verdict, row.Attempts, row.OK, row.Requests, secs(row.GaveUpAfter), recovered(row), row.Note))
	}
	AddReportEntry("resilience on "+r.node, types.ReportEntryVisibilityAlways, strings.Join(lines, "\n"))
	RecordClientVerdicts(verdicts)
	return t
}

func secs(s *report.Seconds) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fs", float64(*s))
}

func recovered(row report.Resilience) string {
	if !row.Recovered {
		return "never"
	}
	return secs(row.RecoveredAfter)
}

// firstLine shortens an error for a note.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// lineWith returns the first line of s that mentions what, else s's
// first line: a chain's error lists every credential it tried.
func lineWith(s, what string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, what) {
			return firstLine(strings.TrimSpace(l))
		}
	}
	return firstLine(s)
}
