package scenario

import (
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// ExpectMaxLatency: no attempt, failed or not, took longer than MaxLatency.
const ExpectMaxLatency = "max-latency"

func init() {
	registerExpect(ExpectMaxLatency, "no attempt started in the window, failed or not, took longer than `maxLatency`",
		func() ExpectKind { return &MaxLatency{} })
}

// MaxLatency is the max-latency expectation. Each client is judged by
// its own slowest attempt.
type MaxLatency struct {
	Window
	// MaxLatency is the bound.
	MaxLatency duration.Duration `json:"maxLatency,omitempty"`
}

func (k *MaxLatency) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if err := checkTimes(s, timeParam{"maxLatency", k.MaxLatency.Duration}); err != nil {
		return err
	}
	if k.MaxLatency.Duration <= 0 {
		return bad("maxLatency", "required: the longest an attempt may take, e.g. 10s")
	}
	return nil
}

func (k *MaxLatency) describe(s *Scenario, _ string) string {
	return fmt.Sprintf("no attempt took longer than %v %s", k.MaxLatency.Duration, k.Window.describe(s))
}

func (k *MaxLatency) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	var worst Attempt
	var who string
	n := 0
	var vs []ClientVerdict
	for _, c := range cs {
		var mine Attempt
		cn := 0
		for _, a := range c.Attempts {
			if !k.started(s, r, a) {
				continue
			}
			cn++
			if a.Took() > mine.Took() {
				mine = a
			}
			if a.Took() > worst.Took() {
				worst, who = a, c.Name
			}
		}
		n += cn
		if cn > 0 {
			vs = append(vs, clientVerdict(c, mine.Took() <= k.MaxLatency.Duration, "slowest of %d attempts: started at %v took %v (ok=%v)",
				cn, mine.Start.D().Round(time.Millisecond), mine.Took().Round(time.Millisecond), mine.OK))
		}
	}
	if n == 0 {
		return judgement{detail: "no attempts in the window"}
	}
	return judgement{held: worst.Took() <= k.MaxLatency.Duration, clients: vs, detail: fmt.Sprintf("slowest of %d attempts: %s started at %v took %v (ok=%v)",
		n, who, worst.Start.D().Round(time.Millisecond), worst.Took().Round(time.Millisecond), worst.OK)}
}
