package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.

	fchaos "github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/internal/probe"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// stormMix is the storm's pods per client: 32 in all, the pods of a
// Deployment scaled up, or of a node coming back.
var stormMix = []struct {
	client string
	pods   int
}{{probe.ClientAzidentityMI, 12}, {probe.ClientMSALMI, 10}, {probe.ClientRaw, 10}}

// retryBudget is the most token requests one call of a client may send:
// the first and the retries its documentation gives for a 429
// (azidentity: 6, MSAL Go: 2, the raw client: none; see the shared
// protocol notes' client table).
var retryBudget = map[string]int{probe.ClientAzidentityMI: 7, probe.ClientMSALMI: 3, probe.ClientRaw: 1}

// stormLead is how far ahead of now the storm's pods are told to start
// (--start-at): time for the node to start 32 containers, so that their
// first calls leave together.
const stormLead = 35 * time.Second

// throttle sets the node's IMDS throttling limits for the spec and puts
// the previous ones back after it.
func (r *faultRun) throttle(ctx context.Context, l fchaos.Limits) {
	GinkgoHelper()
	prev, err := r.fc.Throttle(ctx)
	if err != nil {
		Fail(fmt.Sprintf("read the throttling limits on %s: %v", r.node, err))
	}
	on := true
	l.Enabled = &on
	if _, err := r.fc.SetThrottle(ctx, l); err != nil {
		Fail(fmt.Sprintf("set the throttling limits on %s: %v", r.node, err))
	}
	DeferCleanup(func(ctx context.Context) { _, _ = r.fc.SetThrottle(ctx, prev) })
}

// stormPod is one pod of the storm and what it saw.
type stormPod struct {
	client, tag string
	run         ProbeRun
}

// storm starts stormMix's pods, all told to make their first call at the
// same instant, against one resource, and judges each client: every pod
// gets a token; no call sends more requests than retryBudget; with
// retryAfter, azidentity waits at least that long after a 429. Requests
// are attributed to pods by the --tag each adds to its User-Agent, which
// a pod identity agent in the path forwards.
func (r *faultRun) storm(ctx SpecContext, id string, retryAfter time.Duration) ([]probe.Result, map[string]clientOutcome, []string) {
	GinkgoHelper()
	ns := Namespace(ctx)
	start := time.Now().Add(stormLead).UTC()
	var pods []*stormPod
	for _, m := range stormMix {
		for i := range m.pods {
			pods = append(pods, &stormPod{client: m.client, tag: fmt.Sprintf("idharness-storm/%s-%d", m.client, i+1)})
		}
	}
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			p.run = RunProbe(ctx, ns, Probe{Node: r.node, Timeout: 3 * time.Minute, Args: []string{
				"--client=" + p.client, "--start-at=" + start.Format(time.RFC3339Nano), "--duration=30s",
				"--interval=3s", "--timeout=60s", "--tag=" + p.tag, "--resource=" + resourceFor(id, "storm")}})
		}()
	}
	wg.Wait()
	byTag := map[string][]journal.Entry{}
	for _, e := range r.journal(ctx) {
		if e.Face != "imds" {
			continue
		}
		// Whole tokens only: the tag of pod 1 is a prefix of pod 10's.
		for _, tok := range strings.Fields(e.Headers["User-Agent"]) {
			if strings.HasPrefix(tok, "idharness-storm/") {
				byTag[tok] = append(byTag[tok], e)
			}
		}
	}
	type tally struct {
		pods, withToken, late, throttled, maxPerCall int
		shortestWait                                 time.Duration
	}
	tallies := map[string]*tally{}
	var results []probe.Result
	var problems []string
	for _, p := range pods {
		t := tallies[p.client]
		if t == nil {
			t = &tally{shortestWait: time.Hour}
			tallies[p.client] = t
		}
		t.pods++
		results = append(results, p.run.Results...)
		got := false
		for _, res := range p.run.Results {
			got = got || res.OK()
			t.maxPerCall = max(t.maxPerCall, res.Requests)
			if res.Requests > retryBudget[p.client] {
				problems = append(problems, fmt.Sprintf("%s: one call sent %d token requests, more than its %d (first + documented retries)", p.tag, res.Requests, retryBudget[p.client]))
			}
		}
		if got {
			t.withToken++
		} else {
			last := p.run.Results[len(p.run.Results)-1]
			problems = append(problems, fmt.Sprintf("%s: no token in %d calls: %s", p.tag, len(p.run.Results), firstLine(last.Error)))
		}
		if first := p.run.Results[0].Time; first.Sub(start) > time.Second {
			t.late++
		}
		es := byTag[p.tag]
		sort.Slice(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
		for i, e := range es {
			if e.Status != 429 {
				continue
			}
			t.throttled++
			if i+1 < len(es) {
				wait := es[i+1].Time.Sub(e.Time.Add(time.Duration(e.LatencyMS * float64(time.Millisecond))))
				t.shortestWait = min(t.shortestWait, wait)
				// Scheduling on a busy node can start a retry a little
				// early on the server's clock; 100 ms covers it.
				if retryAfter > 0 && p.client == probe.ClientAzidentityMI && wait < retryAfter-100*time.Millisecond {
					problems = append(problems, fmt.Sprintf("%s: retried %s after a 429 with Retry-After: %d", p.tag, wait.Round(10*time.Millisecond), int(retryAfter.Seconds())))
				}
			}
		}
	}
	outcomes := map[string]clientOutcome{}
	total429 := 0
	var late []string
	for c, t := range tallies {
		total429 += t.throttled
		late = append(late, fmt.Sprintf("%s %d", c, t.late))
		wait := "-"
		if t.shortestWait < time.Hour {
			wait = t.shortestWait.Round(10 * time.Millisecond).String()
		}
		note := fmt.Sprintf("%d of %d pods got a token; %d 429s; at most %d requests in a call (budget %d); shortest wait after a 429 %s; %d pods started late",
			t.withToken, t.pods, t.throttled, t.maxPerCall, retryBudget[c], wait, t.late)
		outcomes[c] = clientOutcome{verdictOf(t.withToken == t.pods && t.maxPerCall <= retryBudget[c]), note}
	}
	AddReportEntry("storm", fmt.Sprintf("%d pods, first calls at %s, %d answered 429", len(pods), start.Format(time.RFC3339Nano), total429))
	// Without a single 429 the spec tested nothing: the pods started too
	// far apart for a storm.
	if total429 == 0 {
		problems = append(problems, fmt.Sprintf("no request was throttled: the %d pods did not storm (late starters per client: %s)", len(pods), strings.Join(late, ", ")))
	}
	sort.SliceStable(results, func(i, j int) bool { return results[i].Time.Before(results[j].Time) })
	return results, outcomes, problems
}
