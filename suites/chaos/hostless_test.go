package chaos

import (
	"strings"
	"testing"
)

// TestHostless: a run inside the cluster leaves out
// exactly the specs whose scenario needs it, saying why; any other run
// leaves out none.
func TestHostless(t *testing.T) {
	// As internal/scenario's TestNeedsHost: the machine behind a node, or
	// rights the in-cluster runner's role does not grant.
	needs := map[string]bool{"authority-dns-nxdomain": true, "authority-dns-slow": true, "podidentity-apiserver-partition": true, "podidentity-node-restart": true,
		"wi-reinvocation": true, "wi-slow-webhook-fail": true, "wi-slow-webhook-ignore": true, "wi-token-rotation-fast": true}
	specs := shippedSpecs()
	for _, tc := range []struct {
		noHost string
		want   func(id string) bool
	}{
		{"", func(string) bool { return false }},
		{"the run is a pod", func(id string) bool { return needs[id] }},
	} {
		for _, s := range specs {
			got := hostless(tc.noHost, s)
			if (got != "") != tc.want(s.ID) {
				t.Errorf("noHost %q, %s: hostless = %q", tc.noHost, s.ID, got)
			}
			if got != "" && (!strings.Contains(got, tc.noHost) || !strings.Contains(got, s.File())) {
				t.Errorf("hostless(%s) = %q: want the reason %q and the file", s.ID, got, tc.noHost)
			}
		}
	}
}
