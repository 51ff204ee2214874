package scenario

import (
	"fmt"
	"net/http"
)

// ExpectStatuses: the fake answered between Min and Max requests with
// Status, per client or in total.
const ExpectStatuses = "statuses"

func init() {
	registerExpect(ExpectStatuses, "the fake answered each client's requests in the window (`total`: all together) with `status` (0: no answer) at least `min`, at most `max` times",
		func() ExpectKind { return &Statuses{} })
}

// Statuses is the statuses expectation, counted on the fake's journal:
// requests attributed to a client of the scope, received in the window,
// whose answer had Status. It shows that a fault did its work ("the
// storm produced at least one 429": total, min 1) or that clients did
// not provoke it. Without Total each client is judged on its own count.
type Statuses struct {
	Window
	Counts
	// Status is the HTTP status counted; 0 counts requests that got no
	// answer (a reset, a blackhole, a client that gave up).
	Status int `json:"status"`
	// Total counts all the clients' requests together.
	Total bool `json:"total,omitempty"`
}

func (k *Statuses) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if k.Status != 0 && (k.Status < 100 || k.Status > 599) {
		return bad("status", "want an HTTP status (100 to 599), or 0 for requests that got no answer, got %d", k.Status)
	}
	return k.Counts.validate("answers with the status")
}

// label names the status: "429 Too Many Requests", or "no answer".
func (k *Statuses) label() string {
	if k.Status == 0 {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", k.Status, http.StatusText(k.Status))
}

// noun names what is counted: "answers 429 Too Many Requests", or
// "requests unanswered".
func (k *Statuses) noun() string {
	if k.Status == 0 {
		return "requests unanswered"
	}
	return "answers " + k.label()
}

func (k *Statuses) describe(s *Scenario, who string) string {
	if k.Total {
		return fmt.Sprintf("the clients together got %s %s %s", k.Counts.describe(), k.noun(), k.Window.describe(s))
	}
	return fmt.Sprintf("%s got %s %s %s", who, k.Counts.describe(), k.noun(), k.Window.describe(s))
}

func (k *Statuses) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	count := map[string]int{}
	scope := map[string]bool{}
	for _, c := range cs {
		scope[c.Name] = true
	}
	total, requests := 0, 0
	for _, q := range r.Requests {
		if !scope[q.Client] || !k.has(s, r, q.At.D()) {
			continue
		}
		requests++
		if q.Status == k.Status {
			count[q.Client]++
			total++
		}
	}
	if k.Total {
		return judgement{held: k.holds(total), detail: fmt.Sprintf("%d of %d requests got %s, want %s", total, requests, k.label(), k.Counts.describe())}
	}
	var vs []ClientVerdict
	for _, c := range cs {
		vs = append(vs, clientVerdict(c, k.holds(count[c.Name]), "%d %s", count[c.Name], k.noun()))
	}
	if bad := failedOf(vs); len(bad) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d clients outside %s: %s", len(bad), len(vs), k.Counts.describe(), abbreviate(bad, 5))}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d clients, %d of %d requests got %s", len(vs), total, requests, k.label())}
}
