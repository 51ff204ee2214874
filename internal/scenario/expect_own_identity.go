package scenario

import (
	"fmt"
	"strings"
	"time"
)

// ExpectOwnIdentity: no client got a token of another identity.
const ExpectOwnIdentity = "own-identity"

func init() {
	registerExpect(ExpectOwnIdentity, "every token's `appid` is the client ID of the identity the client asked for",
		func() ExpectKind { return &OwnIdentity{} })
}

// OwnIdentity is the own-identity expectation; it takes no parameters.
// Each client is judged on its own tokens.
type OwnIdentity struct{}

func (k *OwnIdentity) validate(*Scenario, []ClientGroup) error { return nil }

func (k *OwnIdentity) describe(*Scenario, string) string {
	return "no client got another identity's token"
}

func (k *OwnIdentity) judge(_ *Scenario, _ *Result, cs []*ClientResult) judgement {
	checked := 0
	var vs []ClientVerdict
	var first string
	for _, c := range cs {
		mine := 0
		var wrong string
		for _, a := range c.Attempts {
			if !a.OK {
				continue
			}
			mine++
			if !strings.EqualFold(a.TokenAppID, c.Identity) {
				wrong = fmt.Sprintf("%s got a token for %s at %v, want %s", c.Name, a.TokenAppID, a.End.D().Round(time.Millisecond), c.Identity)
				break
			}
		}
		checked += mine
		switch {
		case wrong != "":
			vs = append(vs, clientVerdict(c, false, "%s", wrong))
			if first == "" {
				first = wrong
			}
		case mine > 0:
			vs = append(vs, clientVerdict(c, true, "%d tokens checked", mine))
		}
	}
	if first != "" {
		return judgement{clients: vs, detail: first}
	}
	return judgement{held: checked > 0, clients: vs, detail: fmt.Sprintf("%d tokens checked", checked)}
}
