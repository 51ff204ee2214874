package scenario

import (
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// ExpectMaxRate: no client (or, with Total, all clients together) sent
// more than Max requests in any Window (default 1s).
const ExpectMaxRate = "max-rate"

func init() {
	registerExpect(ExpectMaxRate, "no client (with `total`: all together) sent more than `max` requests in any sliding `window` (default 1s)",
		func() ExpectKind { return &MaxRate{} })
}

// MaxRate is the max-rate expectation, judged on the fake's journal.
type MaxRate struct {
	Window
	// Max is the bound in requests per Window.
	Max int `json:"max,omitempty"`
	// Per is the sliding window (default 1s); it is written "window".
	Per duration.Duration `json:"window,omitempty"`
	// Total counts all the clients' requests together.
	Total bool `json:"total,omitempty"`
}

func (k *MaxRate) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if err := checkTimes(s, timeParam{"window", k.Per.Duration}); err != nil {
		return err
	}
	if k.Max <= 0 {
		return bad("max", "required: the most requests allowed per window, e.g. 5")
	}
	return nil
}

func (k *MaxRate) per() time.Duration {
	if k.Per.Duration == 0 {
		return time.Second
	}
	return k.Per.Duration
}

func (k *MaxRate) describe(s *Scenario, _ string) string {
	if k.Total {
		return fmt.Sprintf("all clients together sent at most %d requests in any %v %s", k.Max, k.per(), k.Window.describe(s))
	}
	return fmt.Sprintf("no client sent more than %d requests in any %v %s", k.Max, k.per(), k.Window.describe(s))
}

func (k *MaxRate) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	w := k.per()
	from, to := k.bounds(s, r)
	scope := map[string]*ClientResult{}
	for _, c := range cs {
		scope[c.Name] = c
	}
	times := map[string][]time.Duration{}
	for _, q := range r.Requests {
		if scope[q.Client] == nil || q.At.D() < from || q.At.D() >= to {
			continue
		}
		key := q.Client
		if k.Total {
			key = "all clients"
		}
		times[key] = append(times[key], q.At.D())
	}
	worst, who, at := 0, "", time.Duration(0)
	var vs []ClientVerdict
	for _, name := range sortedKeys(times) {
		most, start := densest(sortedDurations(times[name]), w)
		if most > worst {
			worst, who, at = most, name, start
		}
		if c := scope[name]; c != nil {
			vs = append(vs, clientVerdict(c, most <= k.Max, "most in any %v: %d (from %v)", w, most, start.Round(time.Millisecond)))
		}
	}
	if worst == 0 {
		return judgement{held: true, detail: "no requests in the window"}
	}
	return judgement{held: worst <= k.Max, clients: vs, detail: fmt.Sprintf("most in any %v: %d (%s from %v)", w, worst, who, at.Round(time.Millisecond))}
}

// densest returns the most of the sorted times ts within any span w, and
// when that span starts.
func densest(ts []time.Duration, w time.Duration) (int, time.Duration) {
	most, start, j := 0, time.Duration(0), 0
	for i := range ts {
		for ts[i]-ts[j] >= w {
			j++
		}
		if n := i - j + 1; n > most {
			most, start = n, ts[j]
		}
	}
	return most, start
}
