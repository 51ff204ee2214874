package scenario

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ExpectRetryBudget: no call of a client sent more requests than its
// documented retries allow.
const ExpectRetryBudget = "retry-budget"

func init() {
	registerExpect(ExpectRetryBudget, "every attempt started in the window sent at most its client's documented budget of requests (first try and retries), or `max`",
		func() ExpectKind { return &RetryBudget{} })
}

// RetryBudgets is the most token requests one call of a registry client
// may send when the endpoint keeps failing (a 429, a 5xx): its first try
// plus the retries its SDK documents. azidentity's IMDS policy retries 6
// times, MSAL Go 2 (for 429 only with Retry-After), the raw client not
// at all. They are the chaos storm spec's numbers (suites/chaos/storm.go
// retryBudget). The client registry (clients/*/client.yaml) has no field
// for them yet; when it gains one, read them from there.
var RetryBudgets = map[string]int{"azidentity-mi": 7, "msal-mi": 3, "raw": 1}

// RetryBudget is the retry-budget expectation: requests-per-call with
// each client's budget from RetryBudgets, unless Max overrides it. Each
// client is judged on its own calls.
type RetryBudget struct {
	Window
	// Max, when set, is the budget of every client in scope.
	Max *int `json:"max,omitempty"`
}

func (k *RetryBudget) validate(s *Scenario, scope []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if k.Max != nil {
		if *k.Max <= 0 {
			return bad("max", "want at least 1 request per call, got %d", *k.Max)
		}
		return nil
	}
	for _, g := range scope {
		if _, ok := RetryBudgets[g.Client]; !ok {
			name := g.Client
			if name == "" {
				name = "an exec workload"
			}
			return bad("max", "required for group %s: %s has no documented retry budget (known: %s); give max, the most requests one call may send",
				g.Name, name, budgetList())
		}
	}
	return nil
}

func budgetList() string {
	var out []string
	for _, c := range slices.Sorted(maps.Keys(RetryBudgets)) {
		out = append(out, fmt.Sprintf("%s %d", c, RetryBudgets[c]))
	}
	return strings.Join(out, ", ")
}

// budget returns c's budget.
func (k *RetryBudget) budget(c *ClientResult) Counts {
	if k.Max != nil {
		return Counts{Max: k.Max}
	}
	b, ok := RetryBudgets[c.Client]
	if !ok {
		// validate refused this; a zero budget fails every call loudly.
		b = 0
	}
	return Counts{Max: &b}
}

func (k *RetryBudget) describe(s *Scenario, who string) string {
	if k.Max != nil {
		return fmt.Sprintf("each call of %s sent at most %d requests %s", who, *k.Max, k.Window.describe(s))
	}
	return fmt.Sprintf("each call of %s sent no more requests than its client's documented retries allow %s", who, k.Window.describe(s))
}

func (k *RetryBudget) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	return judgePerCall(s, r, &k.Window, cs, k.budget)
}
