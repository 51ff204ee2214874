package scenario

import (
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// ExpectTokenLeft: every token handed to a client had at least
// MinRemaining of its lifetime left (by default: was not expired).
const ExpectTokenLeft = "token-lifetime-left"

func init() {
	registerExpect(ExpectTokenLeft, "every token handed to a client in the window had `minRemaining` left, as the client believes (default: not expired)",
		func() ExpectKind { return &TokenLifetimeLeft{} })
}

// TokenLifetimeLeft is the token-lifetime-left expectation. It is judged
// from what each client believes (its SDK's expiry), not from the JWT: a
// client that misreads expires_on holds a token it thinks is expiring
// whatever the JWT says. Each client is judged on its own tokens.
type TokenLifetimeLeft struct {
	Window
	// MinRemaining is the bound.
	MinRemaining duration.Duration `json:"minRemaining,omitempty"`
}

func (k *TokenLifetimeLeft) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if k.MinRemaining.Duration < 0 {
		return bad("minRemaining", "must not be negative")
	}
	if k.MinRemaining.Duration > MaxTokenLifetime {
		return bad("minRemaining", "%v: at most %v, the lifetime of Azure's managed identity tokens", k.MinRemaining.Duration, MaxTokenLifetime)
	}
	return nil
}

func (k *TokenLifetimeLeft) describe(*Scenario, string) string {
	if k.MinRemaining.Duration == 0 {
		return "no client was handed an expired token"
	}
	return fmt.Sprintf("every token handed out had at least %v left", k.MinRemaining.Duration)
}

// ok reports whether a token with left to live meets the bound.
func (k *TokenLifetimeLeft) ok(left time.Duration) bool {
	return left >= k.MinRemaining.Duration && left > 0
}

func (k *TokenLifetimeLeft) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	n := 0
	least := time.Duration(1<<63 - 1)
	var who string
	var unknown []string
	var vs []ClientVerdict
	for _, c := range cs {
		mine, noExpiry := 0, false
		mineLeast := time.Duration(1<<63 - 1)
		for _, a := range c.Attempts {
			if !a.OK || !k.started(s, r, a) {
				continue
			}
			if a.ExpiresOn.IsZero() {
				noExpiry = true
				continue
			}
			mine++
			left := a.ExpiresOn.Sub(r.Started.Add(a.End.D()))
			mineLeast = min(mineLeast, left)
			if left < least {
				least, who = left, fmt.Sprintf("%s at %v", c.Name, a.End.D().Round(time.Millisecond))
			}
		}
		n += mine
		switch {
		case noExpiry:
			unknown = append(unknown, c.Name)
			vs = append(vs, clientVerdict(c, false, "reported no expiry for a token (its SDK gave none)"))
		case mine > 0:
			vs = append(vs, clientVerdict(c, k.ok(mineLeast), "least left of %d tokens: %v", mine, mineLeast.Round(time.Second)))
		}
	}
	if len(unknown) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%s reported no expiry for a token (its SDK gave none)", abbreviate(unknown, 5))}
	}
	if n == 0 {
		return judgement{detail: "no tokens handed out in the window"}
	}
	return judgement{held: k.ok(least), clients: vs, detail: fmt.Sprintf("least left of %d tokens, as the clients believe: %v (%s)", n, least.Round(time.Second), who)}
}
