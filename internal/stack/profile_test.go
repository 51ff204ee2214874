package stack

import (
	"slices"
	"strings"
	"testing"

	"github.com/idharness/idharness/fixtures"
)

func TestProfileComponents(t *testing.T) {
	var defaults []string
	for _, c := range Components() {
		if c.Default {
			defaults = append(defaults, c.Name)
		}
	}
	tests := []struct {
		profile string
		want    []string // nil: the run's defaults (nil)
		wantErr bool
	}{
		{profile: "", want: nil},
		{profile: "imds", want: nil},
		{profile: "reference", want: nil},        // a shipped sut.yaml beside the defaults
		{profile: "aad-pod-identity", want: nil}, // likewise
		{profile: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			got, err := ProfileComponents(tt.profile)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("components %v, want %v", got, tt.want)
			}
			if _, err := Selected(got); err != nil {
				t.Errorf("the run cannot select them: %v", err)
			}
		})
	}
}

// TestProfileWithout shows how a vendor's profile replaces the reference
// workload identity webhook and keeps the fake authority.
func TestProfileWithout(t *testing.T) {
	profiles["vendor-test"] = Profile{Name: "vendor-test", Without: []string{WorkloadIdentityComponent}, Modes: []string{"workload-identity"}}
	defer delete(profiles, "vendor-test")
	got, err := ProfileComponents("vendor-test")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, WorkloadIdentityComponent) || !slices.Contains(got, WIAuthorityComponent) {
		t.Fatalf("components %v: want the authority without the reference webhook", got)
	}
	sel, err := Selected(got)
	if err != nil || len(sel) != len(got) {
		t.Fatalf("Selected(%v) = %d components, %v", got, len(sel), err)
	}
}

// TestProfileSUT holds each profile declared as data to a declaration
// idharness ships (cmd/idharness's TestProfileSUTClaims loads each and
// holds its claims to the profile's modes).
func TestProfileSUT(t *testing.T) {
	for _, p := range Profiles() {
		got, err := ProfileSUT(p.Name)
		if err != nil || got != p.SUT {
			t.Errorf("ProfileSUT(%s) = %q, %v; want %q", p.Name, got, err, p.SUT)
		}
		if p.SUT != "" && !slices.Contains(fixtures.ShippedSUTs(), p.SUT) {
			t.Errorf("profile %s: %q is not a shipped declaration (%v)", p.Name, p.SUT, fixtures.ShippedSUTs())
		}
	}
	if _, err := ProfileSUT("nope"); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestSUTComponents: an implementation that claims workload identity
// brings its own webhook, so the reference one is not deployed beside it
// (both would mutate the specs' pods); the authority stays. Others get
// the defaults.
func TestSUTComponents(t *testing.T) {
	if got := SUTComponents([]string{"pod-identity"}); got != nil {
		t.Errorf("pod-identity: %v, want the defaults (nil)", got)
	}
	got := SUTComponents([]string{"pod-identity", "workload-identity"})
	if got == nil || slices.Contains(got, WorkloadIdentityComponent) || !slices.Contains(got, WIAuthorityComponent) {
		t.Errorf("workload-identity: %v, want the defaults without %s, with %s", got, WorkloadIdentityComponent, WIAuthorityComponent)
	}
	if _, err := Selected(got); err != nil {
		t.Errorf("the run cannot select them: %v", err)
	}
}
