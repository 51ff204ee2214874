package scenario

import (
	"fmt"
	"time"
)

// ExpectRequestsPerCall: every call of every client sent between Min and
// Max requests.
const ExpectRequestsPerCall = "requests-per-call"

func init() {
	registerExpect(ExpectRequestsPerCall, "every attempt started in the window sent at most `max` (at least `min`) requests to the fake while it ran",
		func() ExpectKind { return &RequestsPerCall{} })
}

// RequestsPerCall is the requests-per-call expectation: a bound on the
// requests one call sends (its first try and its retries), as the fake's
// journal attributes them to the attempt (Attempt.Requests). Each client
// is judged on its own calls. An attempt whose requests were not
// measured (Requests < 0) fails the client: a bound cannot hold on what
// was not counted.
type RequestsPerCall struct {
	Window
	Counts
}

func (k *RequestsPerCall) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	return k.Counts.validate("requests per call")
}

func (k *RequestsPerCall) describe(s *Scenario, who string) string {
	return fmt.Sprintf("each call of %s sent %s requests %s", who, k.Counts.describe(), k.Window.describe(s))
}

func (k *RequestsPerCall) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	return judgePerCall(s, r, &k.Window, cs, func(*ClientResult) Counts { return k.Counts })
}

// judgePerCall judges the requests of every call started in w against
// each client's bounds.
func judgePerCall(s *Scenario, r *Result, w *Window, cs []*ClientResult, bounds func(*ClientResult) Counts) judgement {
	calls, most := 0, 0
	var vs []ClientVerdict
	for _, c := range cs {
		b := bounds(c)
		n, mine := 0, 0
		var problem string
		for _, a := range c.Attempts {
			if !w.started(s, r, a) {
				continue
			}
			n++
			if a.Requests < 0 {
				problem = fmt.Sprintf("requests not measured for %s: its attempt at %v has no request count, so no bound can be checked", c.Name, a.Start.D().Round(time.Millisecond))
				break
			}
			mine = max(mine, a.Requests)
			if !b.holds(a.Requests) && problem == "" {
				problem = fmt.Sprintf("its attempt at %v sent %d requests, want %s", a.Start.D().Round(time.Millisecond), a.Requests, b.describe())
			}
		}
		calls += n
		most = max(most, mine)
		switch {
		case problem != "":
			vs = append(vs, clientVerdict(c, false, "%s", problem))
		case n > 0:
			vs = append(vs, clientVerdict(c, true, "%d calls, at most %d requests in one (%s allowed)", n, mine, b.describe()))
		}
	}
	if calls == 0 {
		return judgement{detail: "no attempts in the window"}
	}
	if bad := failedOf(vs); len(bad) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d clients: %s", len(bad), len(vs), abbreviate(bad, 5))}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d calls of %d clients, at most %d requests in one", calls, len(vs), most)}
}
