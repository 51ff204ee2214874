package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
)

// ExpectFaultReached: a fault step's rule faulted at least Min requests.
const ExpectFaultReached = "fault-reached"

func init() {
	registerExpect(ExpectFaultReached, "the fault rule of the `fault` step `step` faulted at least `min` (default 1) requests (of the scope's clients, with `clients`), as the fake that held it recorded them: its journal, or the rule's own counter",
		func() ExpectKind { return &FaultReached{} })
}

// FaultReached is the fault-reached expectation: the fault of a timeline
// step met the workload. A fault that no request met tests nothing, yet
// every expectation on what the clients saw passes: IDH-CHAOS-0021's
// authority answered 5 s late while its clients answered from their
// token caches (slowest call 297 ms), and the spec passed. The dns step
// fails by itself when its fault hit no query; other faults leave that
// to this expectation, because some scenarios need clients that never
// meet the fault (cached tokens through an outage,
// outage-30s-cached-tokens), so a rule for every fault would be wrong.
//
// A request counts when the journal of the fake that held the rule (the
// node's fakeimds, or in a workload identity run the stack's authority)
// names the rule among the faults applied to it: the rule exists only
// for the step's time, so every such request is in the step's window.
// The rule's counter, read as the step ended, stands in when the journal
// lost entries (a wrapped ring) or records a fault once rather than per
// connection (refuse).
type FaultReached struct {
	// Step names the timeline's fault step.
	Step string `json:"step"`
	// Min is the fewest faulted requests that hold; nil is 1.
	Min *int `json:"min,omitempty"`
}

func (k *FaultReached) validate(s *Scenario, _ []ClientGroup) error {
	if k.Step == "" {
		return bad("step", "required: the fault step whose rule must meet the workload, e.g. step: slow-exchange")
	}
	st, ok := s.StepByName(k.Step)
	if !ok {
		return bad("step", "no timeline step is named %q", k.Step)
	}
	if _, ok := st.Action.(*faultStep); !ok {
		why := ""
		if st.Kind == "dns" {
			why = " (a dns step fails by itself when its fault hit no query)"
		}
		return bad("step", "%q is a %s step; %s judges the rule of a fault step%s", k.Step, st.Kind, ExpectFaultReached, why)
	}
	if k.Min != nil && *k.Min < 1 {
		return bad("min", "want at least 1 request, got %d (a bound of 0 always holds: leave the expectation out)", *k.Min)
	}
	return nil
}

// least is the fewest faulted requests that hold.
func (k *FaultReached) least() int {
	if k.Min == nil {
		return 1
	}
	return *k.Min
}

func (k *FaultReached) describe(_ *Scenario, who string) string {
	return fmt.Sprintf("the fault of %s reached at least %d requests of %s", k.Step, k.least(), who)
}

func (k *FaultReached) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	st, _ := s.StepByName(k.Step)
	f := st.Action.(*faultStep)
	var rec *StepRecord
	for i := range r.Steps {
		if r.Steps[i].Name == k.Step {
			rec = &r.Steps[i]
		}
	}
	if rec == nil || rec.Applied == 0 {
		return judgement{detail: fmt.Sprintf("step %s never applied its fault, so it reached nothing", k.Step)}
	}
	rule := f.Name
	if rec.Rule != "" {
		rule = rec.Rule
	}
	// With every client in scope, a request no client is known to have
	// sent (a node agent's own) met the fault all the same.
	everyone := len(cs) == len(r.Clients)
	scope := map[string]bool{}
	for _, c := range cs {
		scope[c.Name] = true
	}
	from, to := (&Window{Step: k.Step}).bounds(s, r)
	var hit []Request
	inWindow := 0
	for _, reqs := range [][]Request{r.Requests, r.Authority} {
		for _, q := range reqs {
			if !everyone && !scope[q.Client] {
				continue
			}
			if slices.Contains(q.Faults, rule) {
				hit = append(hit, q)
			} else if at := q.At.D(); at >= from && at < to {
				inWindow++
			}
		}
	}
	n, counted := len(hit), ""
	if rec.Hits != nil {
		counted = fmt.Sprintf("; the rule's own counter: %d", *rec.Hits)
		if !everyone {
			counted += " (every client's)"
		}
		if everyone && *rec.Hits > n {
			// The counter counts every hit; the journal may have lost
			// some, or records a listener fault once.
			n = *rec.Hits
		}
	}
	held := n >= k.least()
	if len(hit) == 0 {
		detail := fmt.Sprintf("rule %s faulted %d requests%s, want at least %d", rule, n, counted, k.least())
		if n == 0 {
			detail += fmt.Sprintf(": %d other requests reached the fake during %s, so the clients did not meet the fault (answered from their caches, or called outside it) and the step tested nothing", inWindow, k.Step)
		}
		return judgement{held: held, detail: detail}
	}
	return judgement{held: held, detail: fmt.Sprintf("rule %s faulted %d requests (%s)%s, want at least %d; answered %s; %s",
		rule, n, byClient(hit), counted, k.least(), statusesOf(hit), timesOf(hit, f.Action.Fault))}
}

// byClient counts requests by client: "go-1 3, msal-1 2, unattributed 1".
func byClient(qs []Request) string {
	n := map[string]int{}
	for _, q := range qs {
		c := q.Client
		if c == "" {
			c = "unattributed"
		}
		n[c]++
	}
	var parts []string
	for _, c := range sortedKeys(n) {
		parts = append(parts, fmt.Sprintf("%s %d", c, n[c]))
	}
	return abbreviate(parts, 8)
}

// statusesOf counts requests by status: "200×3 none×2".
func statusesOf(qs []Request) string {
	codes := map[int]int{}
	for _, q := range qs {
		codes[q.Status]++
	}
	return statusCounts(codes)
}

// timesOf says how long the fake took over the faulted requests, the
// delays seen for a latency fault, against the rule's delay.
func timesOf(qs []Request, fault chaos.Fault) string {
	ts := make([]time.Duration, len(qs))
	for i, q := range qs {
		ts[i] = time.Duration(q.LatencyMS * float64(time.Millisecond)).Round(time.Millisecond)
	}
	sortedDurations(ts)
	seen := fmt.Sprintf("%v to %v, median %v", ts[0], ts[len(ts)-1], ts[len(ts)/2])
	if l, ok := fault.(*chaos.Latency); ok {
		// A request whose client gave up during the delay ends sooner.
		return fmt.Sprintf("delays seen %s (the rule's delay: %v %s)", seen, l.Delay.Duration, strings.ReplaceAll(l.Where, "-", " "))
	}
	return "in the fake " + seen
}
