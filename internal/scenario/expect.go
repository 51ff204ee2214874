package scenario

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// The expectation kinds.
const (
	// ExpectRecovers: every client gets a token again within Within after
	// a time (After, or the end of Step).
	ExpectRecovers = "recovers"
	// ExpectMaxRate: no client (or, with Total, all clients together)
	// sent more than Max requests in any Window (default 1s).
	ExpectMaxRate = "max-rate"
	// ExpectCached: clients that held a token before the window kept
	// getting one from their cache, without a request, throughout it.
	ExpectCached = "cached"
	// ExpectSuccessRate: at least MinPercent of the attempts succeeded.
	ExpectSuccessRate = "success-rate"
	// ExpectOwnIdentity: no client got a token of another identity.
	ExpectOwnIdentity = "own-identity"
	// ExpectMaxLatency: no attempt, failed or not, took longer than MaxLatency.
	ExpectMaxLatency = "max-latency"
	// ExpectTokenLeft: every token handed to a client had at least
	// MinRemaining of its lifetime left (by default: was not expired).
	ExpectTokenLeft = "token-lifetime-left"
)

// Expectation is a condition on the run's attempts and requests. Which
// fields apply depends on Kind; setting one that does not is an error.
type Expectation struct {
	// Kind is recovers, max-rate, cached, success-rate, own-identity,
	// max-latency or token-lifetime-left.
	Kind string `json:"kind"`
	// Description replaces the generated description in the output.
	Description string `json:"description,omitempty"`
	// Clients limits the expectation to one client group; empty is all.
	Clients string `json:"clients,omitempty"`
	// Step names a timeline step: the window is from its at to its end
	// (at+for), and recovers counts from its end.
	Step string `json:"step,omitempty"`
	// From and To bound the window instead of Step; To 0 is the end of the run.
	From duration.Duration `json:"from,omitempty"`
	To   duration.Duration `json:"to,omitempty"`
	// After is when recovery is measured from, instead of Step; with
	// neither, it is the start of the run (the first token).
	After duration.Duration `json:"after,omitempty"`
	// Within bounds the recovery.
	Within duration.Duration `json:"within,omitempty"`
	// Max is the max-rate bound in requests per Window.
	Max int `json:"max,omitempty"`
	// Window is max-rate's sliding window (default 1s).
	Window duration.Duration `json:"window,omitempty"`
	// Total makes max-rate count all the clients' requests together.
	Total bool `json:"total,omitempty"`
	// MinPercent is success-rate's bound, 0 to 100.
	MinPercent float64 `json:"minPercent,omitempty"`
	// MaxLatency is max-latency's bound.
	MaxLatency duration.Duration `json:"maxLatency,omitempty"`
	// MinRemaining is token-lifetime-left's bound.
	MinRemaining duration.Duration `json:"minRemaining,omitempty"`
	// Finding, when set, records that real clients do not meet the
	// expectation and why: the run then expects it to fail, and passing
	// is reported as the finding no longer reproducing.
	Finding string `json:"finding,omitempty"`
}

// expectFields lists the fields each kind accepts besides kind,
// description, clients and finding.
var expectFields = map[string][]string{
	ExpectRecovers:    {"step", "after", "within"},
	ExpectMaxRate:     {"step", "from", "to", "max", "window", "total"},
	ExpectCached:      {"step", "from", "to"},
	ExpectSuccessRate: {"step", "from", "to", "minPercent"},
	ExpectOwnIdentity: {},
	ExpectMaxLatency:  {"step", "from", "to", "maxLatency"},
	ExpectTokenLeft:   {"step", "from", "to", "minRemaining"},
}

// setFields returns the kind-specific fields that are set.
func (e *Expectation) setFields() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("step", e.Step != "")
	add("from", e.From.Duration != 0)
	add("to", e.To.Duration != 0)
	add("after", e.After.Duration != 0)
	add("within", e.Within.Duration != 0)
	add("max", e.Max != 0)
	add("window", e.Window.Duration != 0)
	add("total", e.Total)
	add("minPercent", e.MinPercent != 0)
	add("maxLatency", e.MaxLatency.Duration != 0)
	add("minRemaining", e.MinRemaining.Duration != 0)
	return out
}

func (e *Expectation) validate(s *Scenario, f string) error {
	allowed, ok := expectFields[e.Kind]
	if !ok {
		return bad(f+".kind", "want one of %s, got %q", strings.Join(sortedKeys(expectFields), ", "), e.Kind)
	}
	for _, name := range e.setFields() {
		if !contains(allowed, name) {
			return bad(f+"."+name, "does not apply to %s expectations (they take %s)", e.Kind, strings.Join(allowed, ", "))
		}
	}
	if e.Clients != "" {
		found := false
		for _, g := range s.Workload.Clients {
			found = found || g.Name == e.Clients
		}
		if !found {
			return bad(f+".clients", "%q is not a workload client group", e.Clients)
		}
	}
	if e.Step != "" {
		if _, ok := s.StepByName(e.Step); !ok {
			return bad(f+".step", "no timeline step is named %q", e.Step)
		}
		if e.From.Duration != 0 || e.To.Duration != 0 || e.After.Duration != 0 {
			return bad(f+".step", "give either step or from/to/after, not both")
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"from", e.From.Duration}, {"to", e.To.Duration}, {"after", e.After.Duration}, {"within", e.Within.Duration},
		{"window", e.Window.Duration}, {"maxLatency", e.MaxLatency.Duration}, {"minRemaining", e.MinRemaining.Duration}} {
		if d.v < 0 {
			return bad(f+"."+d.name, "must not be negative")
		}
		if d.v > s.Duration() && d.name != "minRemaining" {
			return bad(f+"."+d.name, "%v is beyond the end of the run (%v)", d.v, s.Duration())
		}
	}
	if e.MinRemaining.Duration > MaxTokenLifetime {
		return bad(f+".minRemaining", "%v: at most %v, the lifetime of Azure's managed identity tokens", e.MinRemaining.Duration, MaxTokenLifetime)
	}
	if e.To.Duration != 0 && e.To.Duration <= e.From.Duration {
		return bad(f+".to", "must be after from")
	}
	switch e.Kind {
	case ExpectRecovers:
		if e.Within.Duration <= 0 {
			return bad(f+".within", "required: how soon clients must have a token again, e.g. 15s")
		}
		if e.end(s)+e.Within.Duration > s.Duration() {
			return bad(f+".within", "recovery is checked until %v, after the end of the run (%v); lengthen workload.duration", e.end(s)+e.Within.Duration, s.Duration())
		}
	case ExpectMaxRate:
		if e.Max <= 0 {
			return bad(f+".max", "required: the most requests allowed per window, e.g. 5")
		}
	case ExpectSuccessRate:
		if e.MinPercent <= 0 || e.MinPercent > 100 {
			return bad(f+".minPercent", "want a percentage above 0 and at most 100, got %v", e.MinPercent)
		}
	case ExpectMaxLatency:
		if e.MaxLatency.Duration <= 0 {
			return bad(f+".maxLatency", "required: the longest an attempt may take, e.g. 10s")
		}
	case ExpectCached:
		if e.Step == "" && e.From.Duration == 0 && e.To.Duration == 0 {
			return bad(f+".step", "required: the window (step, or from/to) in which cached tokens must keep working")
		}
	}
	return nil
}

// end returns when recovery is measured from.
func (e *Expectation) end(s *Scenario) time.Duration {
	if e.Step != "" {
		st, _ := s.StepByName(e.Step)
		return st.End()
	}
	return e.After.Duration
}

// window returns the [from, to) window of the expectation.
func (e *Expectation) window(s *Scenario) (time.Duration, time.Duration) {
	if e.Step != "" {
		st, _ := s.StepByName(e.Step)
		end := st.End()
		if end == st.At.Duration {
			end = s.Duration()
		}
		return st.At.Duration, end
	}
	to := e.To.Duration
	if to == 0 {
		to = s.Duration()
	}
	return e.From.Duration, to
}

// Describe returns the expectation in words.
func (e *Expectation) Describe(s *Scenario) string {
	if e.Description != "" {
		return e.Description
	}
	who := "every client"
	if e.Clients != "" {
		who = "every " + e.Clients + " client"
	}
	from, to := e.window(s)
	win := fmt.Sprintf("from %v to %v", from, to)
	if e.Step != "" {
		win = "during " + e.Step
	}
	switch e.Kind {
	case ExpectRecovers:
		after := fmt.Sprintf("%v", e.After.Duration)
		if e.Step == "" && e.After.Duration == 0 {
			after = "the start"
		}
		if e.Step != "" {
			after = e.Step + " ends"
		}
		if after == "the start" {
			return fmt.Sprintf("%s has a token within %v of the start", who, e.Within.Duration)
		}
		return fmt.Sprintf("%s has a token again within %v after %s", who, e.Within.Duration, after)
	case ExpectMaxRate:
		w := e.Window.Duration
		if w == 0 {
			w = time.Second
		}
		if e.Total {
			return fmt.Sprintf("all clients together sent at most %d requests in any %v %s", e.Max, w, win)
		}
		return fmt.Sprintf("no client sent more than %d requests in any %v %s", e.Max, w, win)
	case ExpectCached:
		return fmt.Sprintf("%s holding a token kept getting it from its cache %s", who, win)
	case ExpectSuccessRate:
		return fmt.Sprintf("at least %v%% of attempts succeeded %s", e.MinPercent, win)
	case ExpectOwnIdentity:
		return "no client got another identity's token"
	case ExpectMaxLatency:
		return fmt.Sprintf("no attempt took longer than %v %s", e.MaxLatency.Duration, win)
	case ExpectTokenLeft:
		if e.MinRemaining.Duration == 0 {
			return "no client was handed an expired token"
		}
		return fmt.Sprintf("every token handed out had at least %v left", e.MinRemaining.Duration)
	}
	return e.Kind
}

// Evaluate judges every expectation of s on r, sets r.Verdicts and
// r.Passed, and returns the verdicts.
func Evaluate(s *Scenario, r *Result) []Verdict {
	r.Verdicts = r.Verdicts[:0]
	r.Passed = true
	for i := range s.Expect {
		e := &s.Expect[i]
		held, detail := e.check(s, r)
		v := Verdict{Expectation: e.Describe(s), Kind: e.Kind, Held: held, Detail: detail, Finding: e.Finding}
		switch {
		case held && e.Finding == "":
			v.Outcome = OutcomePass
		case !held && e.Finding == "":
			v.Outcome = OutcomeFail
		case !held:
			v.Outcome = OutcomeKnownFailure
		default:
			v.Outcome = OutcomeUnexpectedPass
			v.Detail += "; the recorded finding no longer reproduces: check the client version and update the scenario"
		}
		r.Passed = r.Passed && v.OK()
		r.Verdicts = append(r.Verdicts, v)
	}
	return r.Verdicts
}

// clients returns the clients the expectation concerns.
func (e *Expectation) clients(r *Result) []*ClientResult {
	var out []*ClientResult
	for i := range r.Clients {
		if e.Clients == "" || r.Clients[i].Group == e.Clients {
			out = append(out, &r.Clients[i])
		}
	}
	return out
}

func (e *Expectation) check(s *Scenario, r *Result) (bool, string) {
	cs := e.clients(r)
	if len(cs) == 0 {
		return false, "no clients ran"
	}
	from, to := e.window(s)
	inWindow := func(a Attempt) bool { return !a.Cancelled && a.Start.D() >= from && a.Start.D() < to }
	switch e.Kind {
	case ExpectRecovers:
		return e.checkRecovers(s, cs)
	case ExpectMaxRate:
		return e.checkMaxRate(r, cs, from, to)
	case ExpectCached:
		return checkCached(cs, from, to)
	case ExpectSuccessRate:
		n, ok := 0, 0
		for _, c := range cs {
			for _, a := range c.Attempts {
				if inWindow(a) {
					n++
					if a.OK {
						ok++
					}
				}
			}
		}
		if n == 0 {
			return false, "no attempts in the window"
		}
		pct := 100 * float64(ok) / float64(n)
		return pct >= e.MinPercent, fmt.Sprintf("%d of %d attempts succeeded (%.1f%%)", ok, n, pct)
	case ExpectOwnIdentity:
		checked := 0
		for _, c := range cs {
			for _, a := range c.Attempts {
				if !a.OK {
					continue
				}
				checked++
				if !strings.EqualFold(a.TokenAppID, c.Identity) {
					return false, fmt.Sprintf("%s got a token for %s at %v, want %s", c.Name, a.TokenAppID, a.End.D().Round(time.Millisecond), c.Identity)
				}
			}
		}
		return checked > 0, fmt.Sprintf("%d tokens checked", checked)
	case ExpectMaxLatency:
		var worst Attempt
		var who string
		n := 0
		for _, c := range cs {
			for _, a := range c.Attempts {
				if inWindow(a) {
					n++
					if a.Took() > worst.Took() {
						worst, who = a, c.Name
					}
				}
			}
		}
		if n == 0 {
			return false, "no attempts in the window"
		}
		return worst.Took() <= e.MaxLatency.Duration, fmt.Sprintf("slowest of %d attempts: %s started at %v took %v (ok=%v)",
			n, who, worst.Start.D().Round(time.Millisecond), worst.Took().Round(time.Millisecond), worst.OK)
	case ExpectTokenLeft:
		// Judged from what each client believes (its SDK's expiry), not
		// from the JWT: a client that misreads expires_on holds a token it
		// thinks is expiring whatever the JWT says.
		n := 0
		least := time.Duration(1<<63 - 1)
		var who string
		var unknown []string
		for _, c := range cs {
			for _, a := range c.Attempts {
				if !a.OK || !inWindow(a) {
					continue
				}
				if a.ExpiresOn.IsZero() {
					unknown = append(unknown, c.Name)
					continue
				}
				n++
				left := a.ExpiresOn.Sub(r.Started.Add(a.End.D()))
				if left < least {
					least, who = left, fmt.Sprintf("%s at %v", c.Name, a.End.D().Round(time.Millisecond))
				}
			}
		}
		if len(unknown) > 0 {
			return false, fmt.Sprintf("%s reported no expiry for a token (its SDK gave none)", strings.Join(slices.Compact(unknown), ", "))
		}
		if n == 0 {
			return false, "no tokens handed out in the window"
		}
		return least >= e.MinRemaining.Duration && least > 0, fmt.Sprintf("least left of %d tokens, as the clients believe: %v (%s)", n, least.Round(time.Second), who)
	}
	return false, "unknown kind " + e.Kind
}

func (e *Expectation) checkRecovers(s *Scenario, cs []*ClientResult) (bool, string) {
	t := e.end(s)
	deadline := t + e.Within.Duration
	var late []string
	var slowest time.Duration
	for _, c := range cs {
		got := time.Duration(-1)
		for _, a := range c.Attempts {
			if a.OK && a.End.D() >= t {
				got = a.End.D()
				break
			}
		}
		if got < 0 || got > deadline {
			if got < 0 {
				late = append(late, c.Name+" (none by the end)")
			} else {
				late = append(late, fmt.Sprintf("%s (+%v)", c.Name, (got-t).Round(time.Millisecond)))
			}
			continue
		}
		slowest = max(slowest, got-t)
	}
	if len(late) > 0 {
		return false, fmt.Sprintf("%d of %d clients had no token within %v after %v: %s", len(late), len(cs), e.Within.Duration, t, abbreviate(late, 5))
	}
	return true, fmt.Sprintf("%d clients recovered; slowest %v after %v", len(cs), slowest.Round(time.Millisecond), t)
}

func (e *Expectation) checkMaxRate(r *Result, cs []*ClientResult, from, to time.Duration) (bool, string) {
	w := e.Window.Duration
	if w == 0 {
		w = time.Second
	}
	scope := map[string]bool{}
	for _, c := range cs {
		scope[c.Name] = true
	}
	times := map[string][]time.Duration{}
	for _, q := range r.Requests {
		if !scope[q.Client] || q.At.D() < from || q.At.D() >= to {
			continue
		}
		key := q.Client
		if e.Total {
			key = "all clients"
		}
		times[key] = append(times[key], q.At.D())
	}
	worst, who, at := 0, "", time.Duration(0)
	for _, k := range sortedKeys(times) {
		ts := times[k]
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		j := 0
		for i := range ts {
			for ts[i]-ts[j] >= w {
				j++
			}
			if n := i - j + 1; n > worst {
				worst, who, at = n, k, ts[j]
			}
		}
	}
	if worst == 0 {
		return true, "no requests in the window"
	}
	return worst <= e.Max, fmt.Sprintf("most in any %v: %d (%s from %v)", w, worst, who, at.Round(time.Millisecond))
}

func checkCached(cs []*ClientResult, from, to time.Duration) (bool, string) {
	holders, served := 0, 0
	for _, c := range cs {
		had := false
		for _, a := range c.Attempts {
			if a.OK && a.End.D() <= from {
				had = true
			}
			if !had || a.Cancelled || a.Start.D() < from || a.Start.D() >= to {
				continue
			}
			if !a.OK {
				return false, fmt.Sprintf("%s held a token but its attempt at %v failed: %s", c.Name, a.Start.D().Round(time.Millisecond), a.Error)
			}
			if a.Requests > 0 {
				return false, fmt.Sprintf("%s held a token but its attempt at %v sent %d requests", c.Name, a.Start.D().Round(time.Millisecond), a.Requests)
			}
			served++
		}
		if had {
			holders++
		}
	}
	if holders == 0 || served == 0 {
		return false, "no client held a token before the window and asked during it: the expectation proves nothing"
	}
	return true, fmt.Sprintf("%d clients, %d attempts answered from cache", holders, served)
}

func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:n], ", ") + fmt.Sprintf(" and %d more", len(list)-n)
}
