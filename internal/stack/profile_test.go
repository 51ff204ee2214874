package stack

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
		{profile: "reference", want: append(slices.Clone(defaults), NodeAgentComponent)},
		{profile: "aad-pod-identity", want: nil}, // a sut.yaml beside the defaults
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

// TestProfileSUT holds each profile declared as data to a file that
// exists and claims the profile's modes.
func TestProfileSUT(t *testing.T) {
	for _, p := range Profiles() {
		if p.SUT == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("..", "..", p.SUT))
		if err != nil {
			t.Errorf("profile %s: %v", p.Name, err)
			continue
		}
		for _, m := range p.Modes {
			if !strings.Contains(string(b), m) {
				t.Errorf("profile %s claims %s, which %s does not mention", p.Name, m, p.SUT)
			}
		}
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
