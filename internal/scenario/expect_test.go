package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/journal"
)

// expectScenario has groups a and b, a step "outage" from 10s to 20s,
// and one expectation, given as a YAML flow mapping.
func expectScenario(t *testing.T, expectation string) *Scenario {
	t.Helper()
	src := `id: e
title: expectations
links: [https://example.com/x]
timeline:
  - {name: outage, at: 10s, for: 10s, fault: {name: down, action: {type: refuse}}}
workload:
  duration: 60s
  clients:
    - {name: a, client: raw, count: 2, every: 1s}
    - {name: b, client: raw, every: 1s}
expect:
  - ` + expectation + "\n"
	s, err := Parse("e.yaml", []byte(src))
	if err != nil {
		t.Fatalf("expectation %s: %v", expectation, err)
	}
	return s
}

const ownID = "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01"

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func sec(s float64) Millis { return Millis(time.Duration(s * float64(time.Second))) }

// att is an attempt from start to end seconds; ok with requests sent.
func att(start, end float64, ok bool, requests int) Attempt {
	a := Attempt{Start: sec(start), End: sec(end), OK: ok, Requests: requests}
	if ok {
		a.TokenAppID = ownID
		a.TokenExp = t0.Add(24 * time.Hour)
		a.ExpiresOn = a.TokenExp
	} else {
		a.Error = "refused"
	}
	return a
}

func cres(name string, attempts ...Attempt) ClientResult {
	group := name[:strings.LastIndex(name, "-")]
	return ClientResult{Name: name, Group: group, Client: "raw", Identity: ownID, Attempts: attempts}
}

func reqs(name string, at ...float64) []Request {
	var out []Request
	for _, s := range at {
		out = append(out, Request{At: sec(s), Client: name, Entry: journal.Entry{Status: 200}})
	}
	return out
}

// healthy is a run where every client gets a token at 1s, from cache
// every 5s after, and again from the server at 21s.
func healthy() *Result {
	r := &Result{Started: t0}
	for _, n := range []string{"a-1", "a-2", "b-1"} {
		c := cres(n, att(1, 1.1, true, 1))
		for s := 5.0; s < 60; s += 5 {
			c.Attempts = append(c.Attempts, att(s, s+0.001, true, 0))
		}
		r.Clients = append(r.Clients, c)
		r.Requests = append(r.Requests, reqs(n, 1.05)...)
	}
	return r
}

func TestExpectations(t *testing.T) {
	cases := []struct {
		name        string
		expectation string
		edit        func(r *Result)
		held        bool
		detail      string
	}{
		{"recovers: cached clients answer at once", "{kind: recovers, step: outage, within: 5s}", nil, true, "3 clients recovered"},
		{"recovers: one client late", "{kind: recovers, step: outage, within: 5s}", func(r *Result) {
			r.Clients[1].Attempts = []Attempt{att(1, 1.1, true, 1), att(12, 24, false, 6), att(24, 27, true, 2)}
		}, false, "a-2 (+7s)"},
		{"recovers: one client never", "{kind: recovers, step: outage, within: 5s}", func(r *Result) {
			r.Clients[2].Attempts = []Attempt{att(1, 1.1, true, 1), att(30, 31, false, 1)}
		}, false, "b-1 (none by the end)"},
		{"recovers: only group b", "{kind: recovers, clients: b, step: outage, within: 5s}", func(r *Result) {
			r.Clients[0].Attempts = nil
		}, true, "1 clients recovered"},
		{"recovers from the start", "{kind: recovers, within: 2s}", nil, true, "slowest 1.1s after 0s"},
		{"max-rate holds", "{kind: max-rate, max: 2}", func(r *Result) {
			r.Requests = append(r.Requests, reqs("a-1", 30, 30.5)...)
		}, true, "most in any 1s: 2"},
		{"max-rate exceeded", "{kind: max-rate, max: 2}", func(r *Result) {
			r.Requests = append(r.Requests, reqs("a-1", 30, 30.3, 30.6, 30.9)...)
		}, false, "most in any 1s: 4 (a-1 from 30s)"},
		{"max-rate window slides", "{kind: max-rate, max: 2}", func(r *Result) {
			r.Requests = append(r.Requests, reqs("a-1", 30, 30.9, 31.0, 31.95)...)
		}, true, "most in any 1s: 2"},
		{"max-rate total", "{kind: max-rate, max: 2, total: true}", nil, false, "most in any 1s: 3 (all clients"},
		{"max-rate outside the window", "{kind: max-rate, max: 1, from: 20s}", func(r *Result) {
			r.Requests = append(r.Requests, reqs("a-1", 15, 15.1, 15.2)...)
		}, true, "no requests in the window"},
		{"max-rate ignores unattributed requests", "{kind: max-rate, max: 1}", func(r *Result) {
			r.Requests = append(r.Requests, reqs("", 30, 30.1, 30.2)...)
		}, true, "most in any 1s: 1"},
		{"cached holds", "{kind: cached, step: outage}", nil, true, "3 clients, 6 attempts answered from cache"},
		{"cached: a request during the outage", "{kind: cached, step: outage}", func(r *Result) {
			r.Clients[0].Attempts[3].Requests = 1
		}, false, "a-1 held a token but its attempt at 15s sent 1 requests"},
		{"cached: a failure during the outage", "{kind: cached, step: outage}", func(r *Result) {
			r.Clients[2].Attempts[2] = att(10, 10.5, false, 1)
		}, false, "b-1 held a token but its attempt at 10s failed"},
		{"cached: nobody held a token", "{kind: cached, step: outage}", func(r *Result) {
			for i := range r.Clients {
				r.Clients[i].Attempts = []Attempt{att(25, 26, true, 1)}
			}
		}, false, "proves nothing"},
		{"success-rate holds", "{kind: success-rate, minPercent: 100}", nil, true, "36 of 36 attempts succeeded (100.0%)"},
		{"success-rate too low", "{kind: success-rate, minPercent: 99, step: outage}", func(r *Result) {
			r.Clients[0].Attempts[2] = att(10, 11, false, 1)
		}, false, "5 of 6 attempts succeeded (83.3%)"},
		{"success-rate ignores cancelled attempts", "{kind: success-rate, minPercent: 100}", func(r *Result) {
			r.Clients[0].Attempts = append(r.Clients[0].Attempts, Attempt{Start: sec(59), End: sec(60), Cancelled: true})
		}, true, "36 of 36"},
		{"success-rate with no attempts", "{kind: success-rate, minPercent: 50, from: 59.5s}", nil, false, "no attempts in the window"},
		{"own identity", "{kind: own-identity}", nil, true, "36 tokens checked"},
		{"another identity's token", "{kind: own-identity}", func(r *Result) {
			r.Clients[1].Attempts[4].TokenAppID = "11111111-1111-4111-8111-111111111111"
		}, false, "a-2 got a token for 11111111-1111-4111-8111-111111111111 at 20.001s"},
		{"max-latency holds", "{kind: max-latency, maxLatency: 1s}", nil, true, "slowest of 36 attempts: a-1 started at 1s took 100ms"},
		{"max-latency counts failures", "{kind: max-latency, maxLatency: 1s}", func(r *Result) {
			r.Clients[2].Attempts[3] = att(15, 45, false, 3)
		}, false, "b-1 started at 15s took 30s (ok=false)"},
		{"token left holds", "{kind: token-lifetime-left, minRemaining: 5m}", nil, true, "least left of 36 tokens, as the clients believe: 23h59m"},
		{"expired token handed out", "{kind: token-lifetime-left}", func(r *Result) {
			r.Clients[0].Attempts[5].ExpiresOn = t0.Add(20 * time.Second)
		}, false, "least left of 36 tokens, as the clients believe: -5s (a-1 at 25.001s)"},
		{"too little left", "{kind: token-lifetime-left, minRemaining: 5m}", func(r *Result) {
			r.Clients[0].Attempts[5].ExpiresOn = t0.Add(4 * time.Minute)
		}, false, "least left of 36 tokens, as the clients believe: 3m35s"},
		// The JWT says 24 h; the client believes 4 minutes (as @azure/identity
		// does when expires_on is missing): the client's belief is judged.
		{"client misreads expiry, JWT fine", "{kind: token-lifetime-left, minRemaining: 5m}", func(r *Result) {
			a := &r.Clients[1].Attempts[2]
			a.ExpiresOn = t0.Add(4 * time.Minute)
			a.TokenExp = t0.Add(24 * time.Hour)
		}, false, "as the clients believe: 3m50s (a-2 at 10.001s)"},
		{"client reports no expiry", "{kind: token-lifetime-left}", func(r *Result) {
			r.Clients[2].Attempts[0].ExpiresOn = time.Time{}
		}, false, "b-1 reported no expiry"},
		{"no clients in scope", "{kind: own-identity, clients: b}", func(r *Result) {
			r.Clients = r.Clients[:2]
		}, false, "no clients ran"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := expectScenario(t, tc.expectation)
			r := healthy()
			if tc.edit != nil {
				tc.edit(r)
			}
			vs := Evaluate(s, r)
			if len(vs) != 1 {
				t.Fatalf("%d verdicts, want 1", len(vs))
			}
			v := vs[0]
			if v.Held != tc.held || !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("held=%v detail %q; want held=%v and detail containing %q", v.Held, v.Detail, tc.held, tc.detail)
			}
			wantOutcome := OutcomePass
			if !tc.held {
				wantOutcome = OutcomeFail
			}
			if v.Outcome != wantOutcome || r.Passed != tc.held || v.Expectation == "" {
				t.Errorf("outcome %s passed %v expectation %q; want %s", v.Outcome, r.Passed, v.Expectation, wantOutcome)
			}
		})
	}
}

func TestFindingOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(r *Result)
		outcome string
		passed  bool
	}{
		{"finding reproduces", func(r *Result) { r.Clients[0].Attempts[0].OK = false }, OutcomeKnownFailure, true},
		{"finding no longer reproduces", nil, OutcomeUnexpectedPass, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := expectScenario(t, `{kind: success-rate, minPercent: 100, finding: "the client gives up on its first attempt"}`)
			r := healthy()
			if tc.edit != nil {
				tc.edit(r)
			}
			v := Evaluate(s, r)[0]
			if v.Outcome != tc.outcome || r.Passed != tc.passed || v.OK() != tc.passed || v.Finding == "" {
				t.Errorf("outcome %s passed %v finding %q; want %s, passed %v", v.Outcome, r.Passed, v.Finding, tc.outcome, tc.passed)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	cases := []struct{ expectation, want string }{
		{"{kind: recovers, step: outage, within: 15s}", "every client has a token again within 15s after outage ends"},
		{"{kind: recovers, clients: a, within: 15s}", "every a client has a token within 15s of the start"},
		{"{kind: recovers, after: 30s, within: 15s}", "every client has a token again within 15s after 30s"},
		{"{kind: max-rate, max: 5}", "no client sent more than 5 requests in any 1s from 0s to 1m0s"},
		{"{kind: max-rate, max: 20, total: true, step: outage}", "all clients together sent at most 20 requests in any 1s during outage"},
		{"{kind: cached, step: outage}", "every client holding a token kept getting it from its cache during outage"},
		{"{kind: success-rate, minPercent: 95, from: 5s, to: 30s}", "at least 95% of attempts succeeded from 5s to 30s"},
		{"{kind: own-identity}", "no client got another identity's token"},
		{"{kind: max-latency, maxLatency: 2s}", "no attempt took longer than 2s from 0s to 1m0s"},
		{"{kind: token-lifetime-left}", "no client was handed an expired token"},
		{"{kind: token-lifetime-left, minRemaining: 5m}", "every token handed out had at least 5m0s left"},
		{"{kind: own-identity, description: tokens are the right ones}", "tokens are the right ones"},
		{"{kind: never-recovers, step: outage}", "every client fails every call ending after outage ends"},
		{"{kind: never-recovers, clients: b}", "every b client fails every call"},
		{"{kind: requests-per-call, max: 3}", "each call of every client sent at most 3 requests from 0s to 1m0s"},
		{"{kind: requests-per-call, min: 1, max: 3, step: outage}", "each call of every client sent 1 to 3 requests during outage"},
		{"{kind: retry-budget}", "each call of every client sent no more requests than its client's documented retries allow from 0s to 1m0s"},
		{"{kind: retry-budget, max: 2, clients: a}", "each call of every a client sent at most 2 requests from 0s to 1m0s"},
		{"{kind: statuses, status: 429, total: true, min: 1}", "the clients together got at least 1 answers 429 Too Many Requests from 0s to 1m0s"},
		{"{kind: statuses, status: 0, max: 0, step: outage}", "every client got no requests unanswered during outage"},
		{"{kind: honours-retry-after, clients: a}", "every a client waited as long as Retry-After said before its next request from 0s to 1m0s"},
	}
	for _, tc := range cases {
		s := expectScenario(t, tc.expectation)
		if got := s.Expect[0].Describe(s); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.expectation, got, tc.want)
		}
	}
}

func TestAttribute(t *testing.T) {
	r := &Result{
		Clients: []ClientResult{cres("a-1", att(1, 2, true, 9), att(5, 5.1, true, 9)), cres("b-1", att(1, 3, false, 9))},
	}
	r.Requests = append(reqs("a-1", 1.2, 1.5, 4), reqs("b-1", 1.1, 2.9, 3.5)...)
	r.Requests = append(r.Requests, reqs("", 1.3)...)
	attribute(r)
	got := []int{r.Clients[0].Attempts[0].Requests, r.Clients[0].Attempts[1].Requests, r.Clients[1].Attempts[0].Requests}
	if got[0] != 2 || got[1] != 0 || got[2] != 2 {
		t.Errorf("requests per attempt %v, want [2 0 2]", got)
	}
}

func TestClientOf(t *testing.T) {
	cases := map[string]string{
		"azsdk-go-azidentity/v1.15.0 (go1.26.8; linux) idharness-client/mi-12": "mi-12",
		"idharness-client/raw-1":   "raw-1",
		"curl/8.0":                 "",
		"":                         "",
		"idharness-client/":        "",
		"x idharness-client/a-b-3": "a-b-3",
	}
	for ua, want := range cases {
		if got := clientOf(ua); got != want {
			t.Errorf("clientOf(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestReadClaims(t *testing.T) {
	cases := []struct {
		name, tok string
		appid     string
		exp       int64
		err       bool
	}{
		{"claims", "e30.eyJhcHBpZCI6ImFiYyIsImV4cCI6MTIzfQ.sig", "abc", 123, false},
		{"not a JWT", "opaque", "", 0, true},
		{"bad base64", "e30.!!!.sig", "", 0, true},
		{"not JSON", "e30.bm90IGpzb24.sig", "", 0, true},
	}
	for _, tc := range cases {
		c, err := readClaims(tc.tok)
		if (err != nil) != tc.err || c.AppID != tc.appid || c.Exp != tc.exp {
			t.Errorf("%s: %+v, %v", tc.name, c, err)
		}
	}
}

func TestJudgeSteps(t *testing.T) {
	cases := []struct {
		name   string
		steps  []StepRecord
		passed bool
	}{
		{"all applied", []StepRecord{{Index: 0, Detail: "fault a (refuse)"}}, true},
		{"one failed", []StepRecord{{Index: 0}, {Index: 1, Detail: "attach identity api", Error: "409 already attached"}}, false},
	}
	for _, tc := range cases {
		r := &Result{Passed: true, Steps: tc.steps}
		judgeSteps(r)
		if r.Passed != tc.passed || (len(r.Verdicts) == 1) == tc.passed {
			t.Errorf("%s: passed %v with verdicts %+v", tc.name, r.Passed, r.Verdicts)
		}
		if !tc.passed && !strings.Contains(r.Verdicts[0].Detail, "step 1 (attach identity api): 409 already attached") {
			t.Errorf("%s: detail %q", tc.name, r.Verdicts[0].Detail)
		}
	}
}

// TestJudgeAttribution: a client that got tokens with no request
// attributed to it fails the run (its requests were not tied to it);
// one with attributed requests, or with no token, does not.
func TestJudgeAttribution(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Result)
		pass bool
	}{
		{"attributed", nil, true},
		{"a client's requests lost", func(r *Result) {
			var keep []Request
			for _, q := range r.Requests {
				if q.Client != "b-1" {
					keep = append(keep, q)
				}
			}
			r.Requests = keep
		}, false},
		{"no token, no request", func(r *Result) {
			r.Clients[2].Attempts = []Attempt{att(1, 2, false, 0)}
			var keep []Request
			for _, q := range r.Requests {
				if q.Client != "b-1" {
					keep = append(keep, q)
				}
			}
			r.Requests = keep
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := healthy()
			r.Passed = true
			if tc.edit != nil {
				tc.edit(r)
			}
			judgeAttribution(r)
			if r.Passed != tc.pass {
				t.Errorf("passed %v, want %v: %+v", r.Passed, tc.pass, r.Verdicts)
			}
		})
	}
}

// TestCountsRequests: the attribution check applies to scenarios with an
// expectation judged on requests, and only to those.
func TestCountsRequests(t *testing.T) {
	for _, tc := range []struct {
		expectation string
		counts      bool
	}{
		{"{kind: max-rate, max: 3}", true},
		{"{kind: retry-budget, max: 3}", true},
		{"{kind: statuses, status: 429, min: 1}", true},
		{"{kind: own-identity}", false},
		{"{kind: never-recovers}", false},
		{"{kind: recovers, within: 5s}", false},
	} {
		s := expectScenario(t, tc.expectation)
		if got := s.countsRequests(); got != tc.counts {
			t.Errorf("%s: counts requests %v, want %v", tc.expectation, got, tc.counts)
		}
	}
}
