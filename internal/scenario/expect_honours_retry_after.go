package scenario

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// ExpectHonoursRetryAfter: after an answer with Retry-After, a client's
// next request waited that long.
const ExpectHonoursRetryAfter = "honours-retry-after"

func init() {
	registerExpect(ExpectHonoursRetryAfter, "after each answer in the window carrying `Retry-After` (a 429 or any other), the client's next request in the same call came no earlier than that long after the answer ended, less `tolerance` (100ms)",
		func() ExpectKind { return &HonoursRetryAfter{} })
}

// DefaultRetryAfterTolerance is how much earlier than Retry-After a next
// request may come: on a busy machine a retry can start a little early on
// the fake's clock (the chaos storm spec's margin).
const DefaultRetryAfterTolerance = 100 * time.Millisecond

// HonoursRetryAfter is the honours-retry-after expectation, judged on the
// fake's journal (Entry.RetryAfter, the header as the fake sent it). Each
// client is judged on its own requests; it fails when no answer in scope
// carried Retry-After and was followed by a request, since it then
// proves nothing.
type HonoursRetryAfter struct {
	Window
	// Tolerance is how much earlier a next request may come (default 100ms).
	Tolerance duration.Duration `json:"tolerance,omitempty"`
}

func (k *HonoursRetryAfter) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	return checkTimes(s, timeParam{"tolerance", k.Tolerance.Duration})
}

func (k *HonoursRetryAfter) tolerance() time.Duration {
	if k.Tolerance.Duration == 0 {
		return DefaultRetryAfterTolerance
	}
	return k.Tolerance.Duration
}

func (k *HonoursRetryAfter) describe(s *Scenario, who string) string {
	return fmt.Sprintf("%s waited as long as Retry-After said before its next request %s", who, k.Window.describe(s))
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date counted
// from sent.
func retryAfter(v string, sent time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(sent), 0), true
	}
	return 0, false
}

func (k *HonoursRetryAfter) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	byClient := map[string][]Request{}
	for _, q := range r.Requests {
		if q.Client != "" {
			byClient[q.Client] = append(byClient[q.Client], q)
		}
	}
	tol := k.tolerance()
	checked := 0
	least := time.Duration(-1)
	var vs []ClientVerdict
	for _, c := range cs {
		qs := byClient[c.Name]
		sort.SliceStable(qs, func(i, j int) bool { return qs[i].At < qs[j].At })
		n := 0
		shortest := time.Duration(-1)
		var problem string
		for i, q := range qs {
			if q.RetryAfter == "" || !k.has(s, r, q.At.D()) || i+1 == len(qs) {
				continue
			}
			// Only a retry inside the call is the SDK's to delay: once the
			// call has returned its error, the application's next call
			// starts whenever the application says.
			if !sameCall(c, q.At.D(), qs[i+1].At.D()) {
				continue
			}
			ended := q.At.D() + time.Duration(q.LatencyMS*float64(time.Millisecond))
			want, ok := retryAfter(q.RetryAfter, r.Started.Add(ended))
			if !ok {
				problem = fmt.Sprintf("the answer at %v carried an unreadable Retry-After %q", q.At.D().Round(time.Millisecond), q.RetryAfter)
				break
			}
			n++
			wait := qs[i+1].At.D() - ended
			if shortest < 0 || wait < shortest {
				shortest = wait
			}
			if wait < want-tol && problem == "" {
				problem = fmt.Sprintf("asked again %v after a %d with Retry-After: %s (at %v)", wait.Round(10*time.Millisecond), q.Status, q.RetryAfter, ended.Round(time.Millisecond))
			}
		}
		checked += n
		if n > 0 && (least < 0 || shortest < least) {
			least = shortest
		}
		switch {
		case problem != "":
			vs = append(vs, clientVerdict(c, false, "%s", problem))
		case n > 0:
			vs = append(vs, clientVerdict(c, true, "%d answers with Retry-After; shortest wait after one %v", n, shortest.Round(10*time.Millisecond)))
		}
	}
	if bad := failedOf(vs); len(bad) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d clients did not wait: %s", len(bad), len(vs), abbreviate(bad, 5))}
	}
	if checked == 0 {
		return judgement{clients: vs, detail: "no answer in the window carried Retry-After and was followed by a request of its client: the expectation proves nothing"}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d clients waited after %d answers with Retry-After; shortest wait %v (tolerance %v)", len(vs), checked, least.Round(10*time.Millisecond), tol)}
}

// sameCall reports whether one attempt of c spans both times: two
// requests of one call.
func sameCall(c *ClientResult, t1, t2 time.Duration) bool {
	for _, a := range c.Attempts {
		if a.Start.D() <= t1 && t2 <= a.End.D() {
			return true
		}
	}
	return false
}
