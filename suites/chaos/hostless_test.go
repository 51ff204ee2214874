package chaos

import (
	"strings"
	"testing"
)

// TestHostless: a run that cannot reach the nodes' machine leaves out
// exactly the specs whose scenario needs it, saying why; any other run
// leaves out none.
func TestHostless(t *testing.T) {
	needs := map[string]bool{"podidentity-apiserver-partition": true, "podidentity-node-restart": true}
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
