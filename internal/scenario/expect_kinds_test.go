package scenario

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/journal"
)

// kindCase is one expectation judged on healthy() changed by edit.
type kindCase struct {
	name        string
	expectation string
	edit        func(r *Result)
	held        bool
	detail      string
	// clients, when set, are the per-client verdicts wanted, as
	// "CLIENT:held" or "CLIENT:failed".
	clients []string
}

func runKindCases(t *testing.T, cases []kindCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := expectScenario(t, tc.expectation)
			r := healthy()
			if tc.edit != nil {
				tc.edit(r)
			}
			v := Evaluate(s, r)[0]
			if v.Held != tc.held || !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("held=%v detail %q; want held=%v and detail containing %q", v.Held, v.Detail, tc.held, tc.detail)
			}
			if tc.clients != nil {
				var got []string
				for _, c := range v.Clients {
					state := "held"
					if !c.Held {
						state = "failed"
					}
					got = append(got, c.Client+":"+state)
					if c.Group == "" || c.Detail == "" {
						t.Errorf("client verdict %+v lacks its group or detail", c)
					}
				}
				if !reflect.DeepEqual(got, tc.clients) {
					t.Errorf("client verdicts %v, want %v (%+v)", got, tc.clients, v.Clients)
				}
			}
		})
	}
}

// answers are requests of client name answered with status at each time
// (seconds), taking latency seconds, with the Retry-After header ra.
func answers(name string, status int, ra string, latency float64, at ...float64) []Request {
	var out []Request
	for _, s := range at {
		out = append(out, Request{At: sec(s), Client: name, Entry: journal.Entry{Status: status, RetryAfter: ra, LatencyMS: latency * 1000}})
	}
	return out
}

var all3 = []string{"a-1:held", "a-2:held", "b-1:held"}

func TestExpectRecoversPerClient(t *testing.T) {
	runKindCases(t, []kindCase{
		{"every client recovers", "{kind: recovers, step: outage, within: 5s}", nil, true, "3 clients recovered", all3},
		{"one client late", "{kind: recovers, step: outage, within: 5s}", func(r *Result) {
			r.Clients[1].Attempts = []Attempt{att(1, 1.1, true, 1), att(12, 24, false, 6), att(24, 27, true, 2)}
		}, false, "a-2 (+7s)", []string{"a-1:held", "a-2:failed", "b-1:held"}},
	})
}

func TestExpectNeverRecovers(t *testing.T) {
	failAfter := func(name string, from float64) func(r *Result) {
		return func(r *Result) {
			for i := range r.Clients {
				c := &r.Clients[i]
				if c.Name != name {
					continue
				}
				for j := range c.Attempts {
					if c.Attempts[j].Start.D() >= sec(from).D() {
						c.Attempts[j] = att(c.Attempts[j].Start.D().Seconds(), c.Attempts[j].End.D().Seconds(), false, 1)
					}
				}
			}
		}
	}
	runKindCases(t, []kindCase{
		{"every call of b fails after the outage", "{kind: never-recovers, clients: b, step: outage}", failAfter("b-1", 20), true, "1 clients, 8 calls after 20s, all failed", []string{"b-1:held"}},
		{"healthy clients recover", "{kind: never-recovers, step: outage}", nil, false, "3 of 3 clients did not fail every call after 20s", []string{"a-1:failed", "a-2:failed", "b-1:failed"}},
		{"one client still gets a token", "{kind: never-recovers, clients: a, after: 30s}", failAfter("a-1", 30), false, "a-2 (got a token at 30.001s)", []string{"a-1:held", "a-2:failed"}},
		{"from the start", "{kind: never-recovers, clients: b}", failAfter("b-1", 0), true, "12 calls after 0s, all failed", nil},
		{"no attempt after the time proves nothing", "{kind: never-recovers, clients: b, after: 59s}", nil, false, "b-1 (no attempt ended after 59s: it proves nothing)", nil},
	})
}

func TestExpectRequestsPerCall(t *testing.T) {
	runKindCases(t, []kindCase{
		{"at most one request a call", "{kind: requests-per-call, max: 1}", nil, true, "36 calls of 3 clients, at most 1 requests in one", all3},
		{"a call retried", "{kind: requests-per-call, max: 1}", func(r *Result) { r.Clients[0].Attempts[2].Requests = 4 },
			false, "a-1 (its attempt at 10s sent 4 requests, want at most 1)", []string{"a-1:failed", "a-2:held", "b-1:held"}},
		{"the first call asks the server", "{kind: requests-per-call, min: 1, to: 2s}", nil, true, "3 calls of 3 clients", all3},
		{"cached calls send none", "{kind: requests-per-call, min: 1}", nil, false, "3 of 3 clients", []string{"a-1:failed", "a-2:failed", "b-1:failed"}},
		{"window leaves the retried call out", "{kind: requests-per-call, max: 1, from: 20s}", func(r *Result) { r.Clients[0].Attempts[2].Requests = 4 }, true, "24 calls", nil},
		{"one group", "{kind: requests-per-call, clients: b, max: 1}", func(r *Result) { r.Clients[0].Attempts[2].Requests = 4 }, true, "12 calls of 1 clients", []string{"b-1:held"}},
		{"unmeasured requests fail", "{kind: requests-per-call, max: 10}", func(r *Result) { r.Clients[1].Attempts[3].Requests = -1 },
			false, "requests not measured for a-2: its attempt at 15s", []string{"a-1:held", "a-2:failed", "b-1:held"}},
		{"no attempts", "{kind: requests-per-call, max: 1, from: 59.5s}", nil, false, "no attempts in the window", nil},
	})
}

func TestExpectRetryBudget(t *testing.T) {
	// The scenario's clients are raw, whose budget is 1: no retry.
	runKindCases(t, []kindCase{
		{"within the documented budget", "{kind: retry-budget}", nil, true, "at most 1 requests in one", all3},
		{"over the documented budget", "{kind: retry-budget}", func(r *Result) { r.Clients[2].Attempts[0].Requests = 2 },
			false, "b-1 (its attempt at 1s sent 2 requests, want at most 1)", []string{"a-1:held", "a-2:held", "b-1:failed"}},
		{"max overrides the budget", "{kind: retry-budget, max: 3}", func(r *Result) { r.Clients[2].Attempts[0].Requests = 2 }, true, "at most 2 requests in one", all3},
		{"unmeasured requests fail", "{kind: retry-budget}", func(r *Result) { r.Clients[2].Attempts[0].Requests = -1 }, false, "requests not measured for b-1", nil},
	})
}

func TestRetryBudgetNeedsAKnownClient(t *testing.T) {
	src := `id: e
title: retry budget
links: [https://example.com/x]
workload:
  duration: 10s
  clients:
    - {name: dac, client: azidentity-default, every: 1s}
    - {name: mi, client: azidentity-mi, every: 1s}
expect:
  - {kind: retry-budget, clients: CLIENTS}
`
	if _, err := Parse("e.yaml", []byte(strings.Replace(src, "CLIENTS", "mi", 1))); err != nil {
		t.Errorf("azidentity-mi has a budget: %v", err)
	}
	_, err := Parse("e.yaml", []byte(strings.Replace(src, "CLIENTS", "dac", 1)))
	want := "e.yaml:10: expect[0].max: required for group dac: azidentity-default has no documented retry budget (known: azidentity-mi 7, msal-mi 3, raw 1)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	if _, err := Parse("e.yaml", []byte(strings.Replace(src, "CLIENTS", "dac, max: 4", 1))); err != nil {
		t.Errorf("max gives the budget: %v", err)
	}
}

func TestExpectStatuses(t *testing.T) {
	throttled := func(r *Result) { r.Requests = append(r.Requests, answers("a-1", 429, "", 0.01, 15)...) }
	runKindCases(t, []kindCase{
		{"every client got a 200", "{kind: statuses, status: 200, min: 1}", nil, true, "3 clients, 3 of 3 requests got 200 OK", all3},
		{"no 429 in the storm", "{kind: statuses, status: 429, total: true, min: 1}", nil, false, "0 of 3 requests got 429 Too Many Requests, want at least 1", nil},
		{"a 429 in the storm", "{kind: statuses, status: 429, total: true, min: 1}", throttled, true, "1 of 4 requests got 429", nil},
		{"a client throttled", "{kind: statuses, status: 429, max: 0}", throttled, false, "a-1 (1 answers 429 Too Many Requests)", []string{"a-1:failed", "a-2:held", "b-1:held"}},
		{"throttled outside the window", "{kind: statuses, status: 429, max: 0, from: 20s}", throttled, true, "3 clients, 0 of 0 requests", nil},
		{"unanswered requests", "{kind: statuses, status: 0, max: 0, step: outage}", func(r *Result) {
			r.Requests = append(r.Requests, answers("b-1", 0, "", 3, 12)...)
		}, false, "b-1 (1 requests unanswered)", nil},
		{"unattributed requests do not count", "{kind: statuses, status: 429, total: true, max: 0}", func(r *Result) {
			r.Requests = append(r.Requests, answers("", 429, "", 0, 12)...)
		}, true, "0 of 3 requests", nil},
	})
}

func TestExpectHonoursRetryAfter(t *testing.T) {
	// One call of a-1 from 1.9 s: a 429 at 2 s, its retry at next.
	told := func(next float64) func(r *Result) {
		return func(r *Result) {
			r.Clients[0].Attempts = append(r.Clients[0].Attempts, att(1.9, next+0.1, true, 2))
			r.Requests = append(r.Requests, answers("a-1", 429, "2", 0.01, 2)...)
			r.Requests = append(r.Requests, answers("a-1", 200, "", 0.01, next)...)
		}
	}
	runKindCases(t, []kindCase{
		{"waited", "{kind: honours-retry-after}", told(4.1), true, "1 clients waited after 1 answers with Retry-After; shortest wait 2.09s (tolerance 100ms)", []string{"a-1:held"}},
		{"asked again too soon", "{kind: honours-retry-after}", told(3), false, "a-1 (asked again 990ms after a 429 with Retry-After: 2 (at 2.01s))", []string{"a-1:failed"}},
		{"within the tolerance", "{kind: honours-retry-after}", told(3.95), true, "shortest wait 1.94s", nil},
		{"tolerance set", "{kind: honours-retry-after, tolerance: 10ms}", told(3.95), false, "asked again 1.94s after a 429", nil},
		{"no Retry-After proves nothing", "{kind: honours-retry-after}", nil, false, "proves nothing", nil},
		{"Retry-After on the last request proves nothing", "{kind: honours-retry-after}", func(r *Result) {
			r.Requests = append(r.Requests, answers("a-1", 429, "2", 0.01, 50)...)
		}, false, "proves nothing", nil},
		{"outside the window", "{kind: honours-retry-after, from: 30s}", told(3), false, "proves nothing", nil},
		{"the application's next call is not a retry", "{kind: honours-retry-after}", func(r *Result) {
			// The call gives up with the 429; the next call starts at once.
			r.Clients[0].Attempts = append(r.Clients[0].Attempts, att(1.9, 2.02, false, 1), att(2.5, 2.6, true, 1))
			r.Requests = append(r.Requests, answers("a-1", 429, "2", 0.01, 2)...)
			r.Requests = append(r.Requests, answers("a-1", 200, "", 0.01, 2.5)...)
		}, false, "proves nothing", nil},
		{"a 503 with Retry-After counts too", "{kind: honours-retry-after}", func(r *Result) {
			r.Clients[2].Attempts = append(r.Clients[2].Attempts, att(1.9, 4.1, true, 2))
			r.Requests = append(r.Requests, answers("b-1", 503, "5", 0, 2)...)
			r.Requests = append(r.Requests, answers("b-1", 200, "", 0, 4)...)
		}, false, "b-1 (asked again 2s after a 503 with Retry-After: 5", []string{"b-1:failed"}},
	})
}

func TestExpectSuccessRateBy(t *testing.T) {
	// a-1's call starts before the outage and fails in it; b-1's starts in
	// it and succeeds after it.
	edit := func(r *Result) {
		r.Clients[0].Attempts[1] = att(5, 12, false, 3)
		r.Clients[2].Attempts[3] = att(15, 21, true, 2)
	}
	runKindCases(t, []kindCase{
		{"counted when they end", "{kind: success-rate, step: outage, minPercent: 100}", edit, false, "5 of 6 attempts succeeded (83.3%)",
			[]string{"a-1:failed", "a-2:held", "b-1:held"}},
		{"counted when they start", "{kind: success-rate, step: outage, minPercent: 100, by: start}", edit, true, "6 of 6 attempts succeeded", nil},
		{"by end, the late success is not one during the outage", "{kind: success-rate, clients: b, step: outage, minPercent: 100}", edit, true, "1 of 1 attempts", nil},
		{"by start, it is", "{kind: success-rate, clients: b, step: outage, minPercent: 100, by: start}", edit, true, "2 of 2 attempts", nil},
		{"every call failed: not so", "{kind: success-rate, step: outage, maxPercent: 0}", edit, false, "5 of 6 attempts succeeded",
			[]string{"a-1:failed", "a-2:failed", "b-1:failed"}},
		{"at most 80%: held", "{kind: success-rate, clients: a, step: outage, maxPercent: 80}", edit, true, "4 of 5 attempts", nil},
		{"at most 70%: not so", "{kind: success-rate, clients: a, step: outage, maxPercent: 70}", edit, false, "4 of 5 attempts", []string{"a-1:held", "a-2:failed"}},
	})
}

// TestExpectationJSONRoundTrip: MarshalJSON writes what UnmarshalJSON
// reads, for every kind.
func TestExpectationJSONRoundTrip(t *testing.T) {
	for _, e := range []string{
		"{kind: recovers, clients: a, step: outage, within: 5s, description: back soon}",
		"{kind: never-recovers, after: 30s, finding: a finding long enough to explain itself}",
		"{kind: max-rate, max: 2, window: 5s, total: true, from: 5s, to: 30s}",
		"{kind: cached, step: outage}",
		"{kind: success-rate, minPercent: 99.5, by: start}",
		"{kind: own-identity}",
		"{kind: max-latency, maxLatency: 2s}",
		"{kind: token-lifetime-left, minRemaining: 5m}",
		"{kind: requests-per-call, min: 0, max: 3}",
		"{kind: retry-budget, max: 4}",
		"{kind: statuses, status: 0, max: 0}",
		"{kind: honours-retry-after, tolerance: 50ms}",
		"{kind: fault-reached, step: outage, min: 3}",
	} {
		s := expectScenario(t, e)
		b, err := json.Marshal(s.Expect[0])
		if err != nil {
			t.Fatal(err)
		}
		var back Expectation
		if err := json.Unmarshal(b, &back); err != nil || back.invalid != nil {
			t.Fatalf("%s: %s does not read back: %v %+v", e, b, err, back.invalid)
		}
		if !reflect.DeepEqual(back, s.Expect[0]) {
			t.Errorf("%s: %s reads back as %+v, want %+v", e, b, back, s.Expect[0])
		}
	}
}

// TestEveryKindIsDocumented: every registered kind has a summary and a
// struct of parameters that the generated table lists.
func TestEveryKindIsDocumented(t *testing.T) {
	docs := ExpectKindDocs()
	if len(docs) < 12 {
		t.Errorf("only %d expectation kinds: %v", len(docs), ExpectKinds())
	}
	for _, d := range docs {
		if len(d.Summary) < 20 || strings.Contains(d.Summary, "|") {
			t.Errorf("kind %s: summary %q: say in one line, without |, when it holds", d.Name, d.Summary)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	registerExpect(ExpectRecovers, "again", func() ExpectKind { return &Recovers{} })
}
