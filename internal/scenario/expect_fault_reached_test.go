package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/fakeimds/journal"
)

// TestExpectFaultReached judges fault-reached on healthy() with the
// outage step (rule down, 10 s to 20 s) played and the journal edited:
// each case that fails is the input that must fail it.
func TestExpectFaultReached(t *testing.T) {
	hits := func(n int) *int { return &n }
	played := func(rule string, counter *int) func(r *Result) {
		return func(r *Result) {
			r.Steps = append(r.Steps, StepRecord{Name: "outage", Kind: "fault", At: sec(10), Applied: sec(10.01), End: sec(20), Rule: rule, Hits: counter})
		}
	}
	faulted := func(rule, client string, status int, at ...float64) func(r *Result) {
		return func(r *Result) {
			for _, s := range at {
				r.Requests = append(r.Requests, Request{At: sec(s), Client: client, Entry: journal.Entry{Status: status, Faults: []string{rule}, LatencyMS: 2}})
			}
		}
	}
	both := func(edits ...func(r *Result)) func(r *Result) {
		return func(r *Result) {
			for _, e := range edits {
				e(r)
			}
		}
	}
	runKindCases(t, []kindCase{
		{"the fault hit nothing: cached clients", "{kind: fault-reached, step: outage}",
			both(played("", hits(0)), func(r *Result) { r.Requests = append(r.Requests, reqs("b-1", 12)...) }),
			false, "rule down faulted 0 requests; the rule's own counter: 0, want at least 1: 1 other requests reached the fake during outage, so the clients did not meet the fault", nil},
		{"faulted requests hold", "{kind: fault-reached, step: outage}",
			both(played("", hits(3)), faulted("down", "a-1", 0, 11, 12), faulted("down", "b-1", 0, 13)),
			true, "rule down faulted 3 requests (a-1 2, b-1 1); the rule's own counter: 3, want at least 1; answered none×3; in the fake 2ms to 2ms", nil},
		{"fewer than min", "{kind: fault-reached, step: outage, min: 3}",
			both(played("", hits(2)), faulted("down", "a-1", 0, 11, 12)),
			false, "rule down faulted 2 requests (a-1 2)", nil},
		{"another rule's faults do not count", "{kind: fault-reached, step: outage}",
			both(played("", nil), faulted("other", "a-1", 503, 11)),
			false, "rule down faulted 0 requests, want at least 1: 1 other requests", nil},
		{"the step never applied its fault", "{kind: fault-reached, step: outage}",
			faulted("down", "a-1", 0, 11), false, "step outage never applied its fault", nil},
		{"the counter stands in for a journal that lost them", "{kind: fault-reached, step: outage, min: 2}",
			played("", hits(4)), true, "rule down faulted 4 requests; the rule's own counter: 4", nil},
		{"one group: the other group's hits do not count", "{kind: fault-reached, step: outage, clients: b}",
			both(played("", hits(2)), faulted("down", "a-1", 0, 11, 12)),
			false, "rule down faulted 0 requests; the rule's own counter: 2 (every client's), want at least 1", nil},
		{"one group met it", "{kind: fault-reached, step: outage, clients: a}",
			both(played("", hits(2)), faulted("down", "a-1", 0, 11, 12)), true, "faulted 2 requests (a-1 2)", nil},
		{"at the stack's authority, under the run's name", "{kind: fault-reached, step: outage}",
			both(played("idh-scenario-abcde.down", hits(1)), func(r *Result) {
				r.Authority = append(r.Authority, Request{At: sec(12), Client: "a-2", Entry: journal.Entry{Face: "authority", Status: 200, Faults: []string{"idh-scenario-abcde.down"}, LatencyMS: 5003}})
			}), true, "rule idh-scenario-abcde.down faulted 1 requests (a-2 1); the rule's own counter: 1, want at least 1; answered 200×1; in the fake 5.003s", nil},
		{"the written name does not match the authority's", "{kind: fault-reached, step: outage}",
			both(played("idh-scenario-abcde.down", nil), faulted("down", "a-1", 0, 12)), false, "faulted 0 requests", nil},
	})
}

// TestFaultReachedValidate refuses what cannot be judged: no step, a
// step that is not a fault step, a bound that always holds.
func TestFaultReachedValidate(t *testing.T) {
	// base (scenario_test.go) with a step of another kind; the
	// expectation is on line 19.
	src := strings.Replace(base, "workload:", "  - {name: gone, at: 1s, for: 2s, detach: web}\nworkload:", 1)
	for _, tc := range []struct{ expect, want string }{
		{"{kind: fault-reached, step: outage}", ""},
		{"{kind: fault-reached, step: outage, min: 5, clients: mi}", ""},
		{"{kind: fault-reached}", "v.yaml:19: expect[0].step: required: the fault step"},
		{"{kind: fault-reached, step: storm}", `v.yaml:19: expect[0].step: no timeline step is named "storm"`},
		{"{kind: fault-reached, step: gone}", `v.yaml:19: expect[0].step: "gone" is a detach step; fault-reached judges the rule of a fault step`},
		{"{kind: fault-reached, step: outage, min: 0}", "v.yaml:19: expect[0].min: want at least 1 request, got 0"},
		{"{kind: fault-reached, step: outage, within: 2s}", "v.yaml:19: expect[0].within: does not apply to fault-reached expectations"},
	} {
		_, err := Parse("v.yaml", []byte(strings.Replace(src, "{kind: recovers, step: outage, within: 2s}", tc.expect, 1)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.expect, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want prefix %q", tc.expect, err, tc.want)
		}
	}
}

// TestFaultReachedLocally plays testdata/fault-reached.yaml: a 300 ms
// latency fault that the plain client meets on each call and the
// azidentity clients, answering from their caches, never meet. The
// expectation on the raw client holds with the delays seen; the one on
// the cached clients fails (its recorded finding), which is what a run
// whose fault met no client must do.
func TestFaultReachedLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clients for 7 s")
	}
	clearIdentityEnv(t)
	s, err := LoadFile(filepath.Join("testdata", "fault-reached.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration()+30*time.Second)
	defer cancel()
	var progress bytes.Buffer
	res, err := Run(ctx, s, Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ outcome, detail string }{
		{OutcomePass, "requests (raw-1 "},
		{OutcomePass, "; delays seen 3"},
		{OutcomeKnownFailure, "rule slow faulted 0 requests; the rule's own counter: "},
	}
	if v := res.Verdicts[1].Detail; !strings.Contains(v, "(the rule's delay: 300ms before headers)") {
		t.Errorf("verdict 1 %q does not give the rule's delay beside the delays seen", v)
	}
	if len(res.Verdicts) != len(want) || !res.Passed {
		t.Fatalf("passed %v, verdicts %+v", res.Passed, res.Verdicts)
	}
	for i, w := range want {
		t.Logf("%s: %s", res.Verdicts[i].Outcome, res.Verdicts[i].Detail)
		if v := res.Verdicts[i]; v.Outcome != w.outcome || !strings.Contains(v.Detail, w.detail) {
			t.Errorf("verdict %d: %s %q, want %s with %q", i, v.Outcome, v.Detail, w.outcome, w.detail)
		}
	}
	if len(res.Steps) != 1 || res.Steps[0].Rule != "slow" || res.Steps[0].Hits == nil || *res.Steps[0].Hits < 2 {
		t.Errorf("step record %+v, want rule slow with its counter of at least 2 hits", res.Steps)
	}
	// The result keeps the evidence through JSON, as the command writes it.
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Steps[0].Hits == nil || *back.Steps[0].Hits != *res.Steps[0].Hits {
		t.Errorf("hits do not round-trip through JSON: %v", err)
	}
}

// TestAuthorityJournal checks what a workload identity run reads of the
// shared authority's journal: its pods' exchanges and what its rule
// faulted, attributed to their clients, and not another run's pod's
// request; and that the rule's counter is read before the rule goes.
func TestAuthorityJournal(t *testing.T) {
	_, addrs := fakeimdstest.Start(t, func(c *config.Config) { c.Listen.Services = "127.0.0.1:0" })
	ctl, err := client.New("http://" + addrs.Control)
	if err != nil {
		t.Fatal(err)
	}
	ours, _, ourAddr := clients.LoopbackHTTPClient(addrs.Services)
	theirs, _, _ := clients.LoopbackHTTPClient(addrs.Services)
	r := &runner{authority: ctl, kube: &kubeEnv{runNamespace: "idh-scenario-abcde"}, source: map[string]string{ourAddr.String(): "go-1"}, start: time.Now()}
	ctx := context.Background()
	var rule chaos.Rule
	if err := json.Unmarshal([]byte(`{"name":"exchange-503","match":{"faces":["authority"],"methods":["POST"]},"action":{"type":"status","status":503}}`), &rule); err != nil {
		t.Fatal(err)
	}
	if r.authorityJournal(ctx) != nil {
		t.Error("read the authority's journal before the run added a rule there")
	}
	undo, err := r.addAuthorityFault(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(hc *http.Client) int {
		resp, err := hc.Post("http://"+addrs.Services+"/"+fakeimdstest.TenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := exchange(ours); got != http.StatusServiceUnavailable {
		t.Errorf("the run's pod got %d, want the rule's 503", got)
	}
	if got := exchange(theirs); got == http.StatusServiceUnavailable {
		t.Error("another run's pod met the run's rule")
	}
	if err := r.countingHits("exchange-503", undo)(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.authorityJournal(ctx)
	if len(got) != 1 || got[0].Client != "go-1" || !slices.Equal(got[0].Faults, []string{"idh-scenario-abcde.exchange-503"}) {
		t.Errorf("the run's authority journal: %+v, want go-1's faulted exchange alone", got)
	}
	steps := []StepRecord{{Index: 0, Name: "outage", Kind: "fault"}}
	r.s = &Scenario{Timeline: []Step{{Name: "outage", Kind: "fault", Action: &faultStep{Rule: rule}}}}
	r.recordRules(ctx, steps)
	if steps[0].Rule != "idh-scenario-abcde.exchange-503" || steps[0].Hits == nil || *steps[0].Hits != 1 {
		t.Errorf("step record %+v, want the authority's name and 1 hit (read before the undo removed the rule)", steps[0])
	}
}
