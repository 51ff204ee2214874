package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/internal/stack"
)

// TestRunChecksFlagsUpFront: flags that would fail only after the
// cluster is up (minutes later) fail before any phase starts. The bad
// cluster name would fail the first phase: the error must be about the
// flag instead, and come at once.
func TestRunChecksFlagsUpFront(t *testing.T) {
	dir := t.TempDir()
	common := map[string][]string{
		"run":     {"--cluster", "Bad_Name", "--cache-dir", dir, "--report-dir", dir},
		"cluster": {"--name", "Bad_Name", "--cache-dir", dir},
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // parts of the error
	}{
		{"label filter operator without operand", []string{"run", "--label-filter", "MUST &&"}, []string{"--label-filter", `"MUST &&"`, "ends where a label should follow"}},
		{"label filter unbalanced", []string{"run", "--label-filter", "imds) || (chaos"}, []string{"--label-filter", "Mismatched ')'"}},
		{"label filter operator without left operand", []string{"run", "--label-filter", "|| MUST"}, []string{"--label-filter", "at character 1", "missing left hand operand"}},
		{"label filter bad regexp", []string{"run", "--label-filter", "/imds(/"}, []string{"--label-filter", "error parsing regexp"}},
		{"focus not a regexp", []string{"run", "--focus", "IDH-CONF-(0001"}, []string{"--focus", `"IDH-CONF-(0001"`, "missing closing )"}},
		{"in-cluster with parallel", []string{"run", "--in-cluster", "--parallel", "2"}, []string{"--in-cluster", "drop --parallel"}},
		{"empty node image", []string{"run", "--node-image", ""}, []string{"--node-image", "auto, offline, published"}},
		{"blank node image", []string{"run", "--node-image", "  "}, []string{"--node-image", "auto, offline, published"}},
		{"cluster create empty node image", []string{"cluster", "create", "--node-image="}, []string{"--node-image", "auto, offline, published"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := runCLI(t, append(tc.args, common[tc.args[0]]...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "cluster name") {
				t.Errorf("error %q came from the cluster phase, not the flag check", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestProfileSUTClaims: a profile that deploys a shipped declaration
// claims at least what the declaration claims (the verdict covers the
// profile's modes), and a profile of components has none.
func TestProfileSUTClaims(t *testing.T) {
	cache := t.TempDir()
	for _, p := range stack.Profiles() {
		s, err := profileSUT(p.Name, cache)
		if err != nil {
			t.Fatalf("profile %s: %v", p.Name, err)
		}
		if (s == nil) != (p.SUT == "") {
			t.Fatalf("profile %s: declaration %v, want one exactly when SUT (%q) is set", p.Name, s, p.SUT)
		}
		if s == nil {
			continue
		}
		for _, c := range s.Claims {
			if !slices.Contains(p.Modes, c) {
				t.Errorf("profile %s: %s claims %s, which the profile's modes %v leave out", p.Name, s.File(), c, p.Modes)
			}
		}
	}
	if _, err := profileSUT("nope", cache); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown profile: %v", err)
	}
}
