package fakeimds

import (
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
)

// TestAuthorityClockSkewFault checks that a clock-skew rule on the
// authority face makes it judge assertions by the skewed clock: an
// assertion valid now is expired to an authority two hours ahead and not
// yet valid to one two hours behind, while a small offset within the
// configured leeway changes nothing.
func TestAuthorityClockSkewFault(t *testing.T) {
	iss, _ := newTestIssuer(t, false)
	now := time.Now()
	for _, tt := range []struct {
		offset string
		ok     bool
	}{
		{"2h", false},
		{"-2h", false},
		{"1m", true},
	} {
		t.Run(tt.offset, func(t *testing.T) {
			s := newServer(t, func(c *config.Config) {
				withFederation(iss.url)(c)
				c.Chaos.Faults = []chaos.Rule{rule(t, `{"name":"skew","match":{"faces":["authority"]},"action":{"type":"clock-skew","offset":"`+tt.offset+`"}}`)}
			})
			w := postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{nbf: now.Add(-time.Minute), exp: now.Add(time.Hour)})))
			if tt.ok {
				checkAADToken(t, s, w, uaClient, uaObject)
				return
			}
			checkAADError(t, w, 400, "invalid_client", 700024)
		})
	}
}
