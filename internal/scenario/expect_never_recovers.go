package scenario

import (
	"fmt"
	"time"
)

// ExpectNeverRecovers: no client gets a token after a time (the end of
// Step, or After; neither is the start of the run).
const ExpectNeverRecovers = "never-recovers"

func init() {
	registerExpect(ExpectNeverRecovers, "no client has a successful attempt ending after the step's end (or `after`; neither: the start): every call fails",
		func() ExpectKind { return &NeverRecovers{} })
}

// NeverRecovers is the never-recovers expectation: every call of every
// client fails from the time on, as with a fault no client can get past.
// It states the "every call fails" case directly, where success-rate
// with a finding would say it only as a failure. Each client is judged
// on its own; a client with no attempt after the time proves nothing and
// fails.
type NeverRecovers struct {
	Since
}

func (k *NeverRecovers) validate(s *Scenario, _ []ClientGroup) error { return k.Since.validate(s) }

func (k *NeverRecovers) describe(_ *Scenario, who string) string {
	after := k.Since.describe()
	if after == "" {
		return who + " fails every call"
	}
	return fmt.Sprintf("%s fails every call ending after %s", who, after)
}

func (k *NeverRecovers) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	t := k.at(s, r)
	var vs []ClientVerdict
	failedCalls := 0
	for _, c := range cs {
		failed := 0
		for _, a := range c.Attempts {
			if !a.Cancelled && !a.OK && a.End.D() >= t {
				failed++
			}
		}
		got := firstToken(c, t)
		switch {
		case got >= 0:
			vs = append(vs, clientVerdict(c, false, "got a token at %v", got.Round(time.Millisecond)))
		case failed == 0:
			vs = append(vs, clientVerdict(c, false, "no attempt ended after %v: it proves nothing", t))
		default:
			failedCalls += failed
			vs = append(vs, clientVerdict(c, true, "%d calls failed", failed))
		}
	}
	if bad := failedOf(vs); len(bad) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d clients did not fail every call after %v: %s", len(bad), len(cs), t, abbreviate(bad, 5))}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d clients, %d calls after %v, all failed", len(cs), failedCalls, t)}
}
