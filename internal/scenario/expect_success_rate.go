package scenario

import "fmt"

// ExpectSuccessRate: at least MinPercent of the attempts succeeded.
const ExpectSuccessRate = "success-rate"

func init() {
	registerExpect(ExpectSuccessRate, "at least `minPercent` (and at most `maxPercent`) of the attempts ending in the window (`by: start`: starting in it) succeeded",
		func() ExpectKind { return &SuccessRate{} })
}

// The times success-rate may count an attempt by.
const (
	// ByEnd counts an attempt when it ends, the default: a call that
	// starts in an outage and succeeds after it is no success during the
	// outage.
	ByEnd = "end"
	// ByStart counts an attempt when it starts.
	ByStart = "start"
)

// SuccessRate is the success-rate expectation. Each client also gets a
// verdict of its own: its own rate against the same bound.
type SuccessRate struct {
	Window
	// MinPercent is the lower bound, 0 to 100.
	MinPercent float64 `json:"minPercent,omitempty"`
	// MaxPercent is the upper bound, 0 to 100: maxPercent: 0 states that
	// every call in the window failed, as a client without a cache must
	// during an outage (or the outage did not reach it).
	MaxPercent *float64 `json:"maxPercent,omitempty"`
	// By is when an attempt counts: end (default) or start.
	By string `json:"by,omitempty"`
}

func (k *SuccessRate) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if k.MaxPercent == nil && (k.MinPercent <= 0 || k.MinPercent > 100) {
		return bad("minPercent", "want a percentage above 0 and at most 100, got %v", k.MinPercent)
	}
	if k.MinPercent < 0 || k.MinPercent > 100 {
		return bad("minPercent", "want a percentage from 0 to 100, got %v", k.MinPercent)
	}
	if m := k.MaxPercent; m != nil && (*m < 0 || *m > 100 || *m < k.MinPercent) {
		return bad("maxPercent", "want a percentage from minPercent (%v) to 100, got %v", k.MinPercent, *m)
	}
	switch k.By {
	case "", ByEnd, ByStart:
	default:
		return bad("by", "want %s (an attempt counts when it ends, the default) or %s, got %q", ByEnd, ByStart, k.By)
	}
	return nil
}

func (k *SuccessRate) describe(s *Scenario, _ string) string {
	switch {
	case k.MaxPercent != nil && *k.MaxPercent == 0:
		return fmt.Sprintf("every attempt failed %s", k.Window.describe(s))
	case k.MaxPercent != nil:
		return fmt.Sprintf("between %v%% and %v%% of attempts succeeded %s", k.MinPercent, *k.MaxPercent, k.Window.describe(s))
	}
	return fmt.Sprintf("at least %v%% of attempts succeeded %s", k.MinPercent, k.Window.describe(s))
}

// counts reports whether a counts for the window.
func (k *SuccessRate) counts(s *Scenario, r *Result, a Attempt) bool {
	if k.By == ByStart {
		return k.started(s, r, a)
	}
	return !a.Cancelled && k.has(s, r, a.End.D())
}

func (k *SuccessRate) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	n, ok := 0, 0
	var vs []ClientVerdict
	for _, c := range cs {
		cn, cok := 0, 0
		for _, a := range c.Attempts {
			if k.counts(s, r, a) {
				cn++
				if a.OK {
					cok++
				}
			}
		}
		if cn > 0 {
			pct := 100 * float64(cok) / float64(cn)
			vs = append(vs, clientVerdict(c, k.within(pct), "%d of %d attempts succeeded (%.1f%%)", cok, cn, pct))
		}
		n, ok = n+cn, ok+cok
	}
	if n == 0 {
		return judgement{detail: "no attempts in the window"}
	}
	pct := 100 * float64(ok) / float64(n)
	return judgement{held: k.within(pct), clients: vs, detail: fmt.Sprintf("%d of %d attempts succeeded (%.1f%%)", ok, n, pct)}
}

// within reports whether a success percentage is within the bounds.
func (k *SuccessRate) within(pct float64) bool {
	return pct >= k.MinPercent && (k.MaxPercent == nil || pct <= *k.MaxPercent)
}
