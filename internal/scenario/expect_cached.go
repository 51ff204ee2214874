package scenario

import (
	"fmt"
	"time"
)

// ExpectCached: clients that held a token before the window kept getting
// one from their cache, without a request, throughout it.
const ExpectCached = "cached"

func init() {
	registerExpect(ExpectCached, "every attempt in the window by a client that already held a token succeeded with no request",
		func() ExpectKind { return &Cached{} })
}

// Cached is the cached expectation. Only clients that held a token
// before the window and asked during it are judged; with none, it proves
// nothing and fails.
type Cached struct {
	Window
}

func (k *Cached) validate(s *Scenario, _ []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	if !k.set() {
		return bad("step", "required: the window (step, or from/to) in which cached tokens must keep working")
	}
	return nil
}

func (k *Cached) describe(s *Scenario, who string) string {
	return fmt.Sprintf("%s holding a token kept getting it from its cache %s", who, k.Window.describe(s))
}

func (k *Cached) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	from, _ := k.bounds(s, r)
	holders, served := 0, 0
	var vs []ClientVerdict
	var first string
	for _, c := range cs {
		had, mine := false, 0
		var problem string
		for _, a := range c.Attempts {
			if a.OK && a.End.D() <= from {
				had = true
			}
			if !had || !k.started(s, r, a) {
				continue
			}
			switch {
			case !a.OK:
				problem = fmt.Sprintf("%s held a token but its attempt at %v failed: %s", c.Name, a.Start.D().Round(time.Millisecond), a.Error)
			case a.Requests < 0:
				problem = fmt.Sprintf("requests not measured for %s: its attempt at %v cannot be shown to come from its cache", c.Name, a.Start.D().Round(time.Millisecond))
			case a.Requests > 0:
				problem = fmt.Sprintf("%s held a token but its attempt at %v sent %d requests", c.Name, a.Start.D().Round(time.Millisecond), a.Requests)
			default:
				mine++
				continue
			}
			break
		}
		if !had {
			continue
		}
		holders++
		served += mine
		if problem != "" {
			vs = append(vs, clientVerdict(c, false, "%s", problem))
			if first == "" {
				first = problem
			}
			continue
		}
		if mine > 0 {
			vs = append(vs, clientVerdict(c, true, "%d attempts answered from cache", mine))
		}
	}
	if first != "" {
		return judgement{clients: vs, detail: first}
	}
	if holders == 0 || served == 0 {
		return judgement{clients: vs, detail: "no client held a token before the window and asked during it: the expectation proves nothing"}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d clients, %d attempts answered from cache", holders, served)}
}
