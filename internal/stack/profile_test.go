package stack

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/idharness/idharness/fixtures"
)

// TestProfileSUTs holds each profile to declarations idharness ships,
// the reference workload identity webhook last (cmd/idharness's
// TestDeclarations loads each and holds the first one's claims to the
// profile's modes).
func TestProfileSUTs(t *testing.T) {
	want := map[string][]string{
		"imds":             {"reference-webhook"},
		"reference":        {"reference", "reference-webhook"},
		"aad-pod-identity": {"aad-pod-identity", "reference-webhook"},
	}
	for _, p := range Profiles() {
		got, err := ProfileSUTs(p.Name)
		if err != nil || !slices.Equal(got, want[p.Name]) {
			t.Errorf("ProfileSUTs(%s) = %q, %v; want %q", p.Name, got, err, want[p.Name])
		}
		for _, n := range got {
			if !slices.Contains(fixtures.ShippedSUTs(), n) {
				t.Errorf("profile %s: %q is not a shipped declaration (%v)", p.Name, n, fixtures.ShippedSUTs())
			}
		}
	}
	if got, err := ProfileSUTs(""); err != nil || !slices.Equal(got, want["imds"]) {
		t.Errorf("the empty profile is imds: %v, %v", got, err)
	}
	if _, err := ProfileSUTs("nope"); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestSUTSelector: a run removes the objects of every implementation
// declared as data but those it deploys.
func TestSUTSelector(t *testing.T) {
	for _, tc := range []struct {
		keep []string
		want string
	}{
		{nil, SUTLabel},
		{[]string{"reference", "reference-webhook"}, SUTLabel + "," + SUTLabel + " notin (reference,reference-webhook)"},
	} {
		got := sutSelector(tc.keep)
		if got != tc.want {
			t.Errorf("sutSelector(%v) = %q, want %q", tc.keep, got, tc.want)
		}
		if _, err := labels.Parse(got); err != nil {
			t.Errorf("sutSelector(%v) = %q: the API server would refuse it: %v", tc.keep, got, err)
		}
	}
}
