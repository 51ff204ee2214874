package scenario

import (
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// ExpectRecovers: every client gets a token again within Within after a
// time (the end of Step, or After; neither is the start of the run).
const ExpectRecovers = "recovers"

func init() {
	registerExpect(ExpectRecovers, "every client's first successful attempt ending after the step's end (or `after`; neither: the start) ends within `within`",
		func() ExpectKind { return &Recovers{} })
}

// Recovers is the recovers expectation: each client is judged on its
// own, by when its first token after the time came.
type Recovers struct {
	Since
	// Within bounds the recovery.
	Within duration.Duration `json:"within,omitempty"`
}

func (k *Recovers) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Since.validate(s); err != nil {
		return err
	}
	if err := checkTimes(s, timeParam{"within", k.Within.Duration}); err != nil {
		return err
	}
	if k.Within.Duration <= 0 {
		return bad("within", "required: how soon clients must have a token again, e.g. 15s")
	}
	if end := k.at(s, nil) + k.Within.Duration; end > s.Duration() {
		return bad("within", "recovery is checked until %v, after the end of the run (%v); lengthen workload.duration", end, s.Duration())
	}
	return nil
}

func (k *Recovers) describe(_ *Scenario, who string) string {
	after := k.Since.describe()
	if after == "" {
		return fmt.Sprintf("%s has a token within %v of the start", who, k.Within.Duration)
	}
	return fmt.Sprintf("%s has a token again within %v after %s", who, k.Within.Duration, after)
}

func (k *Recovers) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	t := k.at(s, r)
	var vs []ClientVerdict
	var slowest time.Duration
	for _, c := range cs {
		got := firstToken(c, t)
		switch {
		case got < 0:
			vs = append(vs, clientVerdict(c, false, "none by the end"))
		case got-t > k.Within.Duration:
			vs = append(vs, clientVerdict(c, false, "+%v", (got-t).Round(time.Millisecond)))
		default:
			slowest = max(slowest, got-t)
			vs = append(vs, clientVerdict(c, true, "+%v", (got-t).Round(time.Millisecond)))
		}
	}
	if late := failedOf(vs); len(late) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d clients had no token within %v after %v: %s", len(late), len(cs), k.Within.Duration, t, abbreviate(late, 5))}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d clients recovered; slowest %v after %v", len(cs), slowest.Round(time.Millisecond), t)}
}
