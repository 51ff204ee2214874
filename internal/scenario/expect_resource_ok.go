package scenario

import (
	"fmt"
	"time"
)

// ExpectResourceOK: every attempt got a token that the protected resource
// accepted.
const ExpectResourceOK = "resource-ok"

func init() {
	registerExpect(ExpectResourceOK, "every attempt ending in the window got a token and the protected resource answered its use 200 (groups with `useToken`)",
		func() ExpectKind { return &ResourceOK{} })
}

// ResourceOK is the resource-ok expectation: what an application sees
// when it uses its token, judged call by call. A call that got no token
// fails it as surely as a token the resource refused (an expired one: a
// 401): either way the application's request failed. Each client is
// judged on its own calls.
type ResourceOK struct {
	Window
}

func (k *ResourceOK) validate(s *Scenario, scope []ClientGroup) error {
	if err := k.Window.validate(s); err != nil {
		return err
	}
	for _, g := range scope {
		if g.UseToken == "" {
			return bad("clients", "group %s does not use its tokens: set useToken: %s on it, or scope the expectation to the groups that do (clients: GROUP)", g.Name, UseTokenVault)
		}
	}
	return nil
}

func (k *ResourceOK) describe(s *Scenario, who string) string {
	return fmt.Sprintf("every call of %s got a token the protected resource accepted %s", who, k.Window.describe(s))
}

func (k *ResourceOK) judge(s *Scenario, r *Result, cs []*ClientResult) judgement {
	n, bad := 0, 0
	var vs []ClientVerdict
	for _, c := range cs {
		cn, first := 0, ""
		cbad := 0
		for _, a := range c.Attempts {
			if a.Cancelled || !k.has(s, r, a.End.D()) {
				continue
			}
			cn++
			why := ""
			switch {
			case !a.OK:
				why = "no token: " + truncate(a.Error, 160)
			case a.ResourceStatus != 200 && a.ResourceError != "":
				why = fmt.Sprintf("resource %d: %s", a.ResourceStatus, truncate(a.ResourceError, 160))
			case a.ResourceStatus != 200:
				why = fmt.Sprintf("resource answered %d", a.ResourceStatus)
			}
			if why != "" {
				cbad++
				if first == "" {
					first = fmt.Sprintf("call at %v: %s", a.Start.D().Round(time.Millisecond), why)
				}
			}
		}
		switch {
		case cbad > 0:
			vs = append(vs, clientVerdict(c, false, "%d of %d calls failed; first %s", cbad, cn, first))
		case cn > 0:
			vs = append(vs, clientVerdict(c, true, "%d calls, every token accepted", cn))
		}
		n, bad = n+cn, bad+cbad
	}
	if n == 0 {
		return judgement{detail: "no attempts in the window"}
	}
	if failed := failedOf(vs); len(failed) > 0 {
		return judgement{clients: vs, detail: fmt.Sprintf("%d of %d calls failed, of %d clients: %s", bad, n, len(failed), abbreviate(failed, 5))}
	}
	return judgement{held: true, clients: vs, detail: fmt.Sprintf("%d calls of %d clients, every token accepted", n, len(vs))}
}
