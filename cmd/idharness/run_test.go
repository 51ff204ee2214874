package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/internal/run"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/sut"
	"github.com/idharness/idharness/pkg/report"
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

// TestDeclarations: the declarations a run deploys, the implementation
// under test first. A profile's are shipped, the first claims no more
// than the profile's modes (the verdict covers those), and the reference
// webhook comes last; a file (--sut) gets the reference webhook beside
// it unless it claims workload identity, and may not take its name.
func TestDeclarations(t *testing.T) {
	cache := t.TempDir()
	for _, p := range stack.Profiles() {
		suts, err := declarations(p.Name, "", cache)
		if err != nil {
			t.Fatalf("profile %s: %v", p.Name, err)
		}
		if got := sut.Names(suts); !slices.Equal(got, p.SUTs) {
			t.Errorf("profile %s: declarations %v, want %v", p.Name, got, p.SUTs)
		}
		if last := suts[len(suts)-1]; last.Shipped() != sut.ReferenceWebhook {
			t.Errorf("profile %s: the last declaration is %s, want the reference webhook", p.Name, last.Name)
		}
		for _, c := range suts[0].Claims {
			if !slices.Contains(p.Modes, c) {
				t.Errorf("profile %s: %s claims %s, which the profile's modes %v leave out", p.Name, suts[0].File(), c, p.Modes)
			}
		}
		if got := sut.WIWebhook(suts); got != stack.WIWebhookReference {
			t.Errorf("profile %s: webhook under test %q, want the reference one", p.Name, got)
		}
	}
	if _, err := declarations("nope", "", cache); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown profile: %v", err)
	}

	dir := t.TempDir()
	write := func(name, claims string) string {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(d, "manifests"), 0o755); err != nil {
			t.Fatal(err)
		}
		m := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hook, namespace: \"{{ .Namespace }}\"}\n"
		decl := "apiVersion: idharness.io/v1alpha1\nkind: Implementation\nname: " + name + "\nclaims: " + claims + "\nintercepts: none\nmanifests: manifests\nreadiness: {deployments: [hook]}\n"
		for f, body := range map[string]string{"manifests/hook.yaml": m, "sut.yaml": decl} {
			if err := os.WriteFile(filepath.Join(d, f), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(d, "sut.yaml")
	}
	for _, tc := range []struct {
		name, claims string
		want         []string
		webhook      string
		err          string
	}{
		{name: "acme-wi", claims: "[workload-identity]", want: []string{"acme-wi"}, webhook: "acme-wi"},
		{name: "acme-imds", claims: "[imds]", want: []string{"acme-imds", sut.ReferenceWebhook}, webhook: stack.WIWebhookReference},
		{name: sut.ReferenceWebhook, claims: "[imds]", err: "rename it"},
	} {
		suts, err := declarations("", write(tc.name, tc.claims), cache)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--sut %s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--sut %s: %v", tc.name, err)
		}
		if got := sut.Names(suts); !slices.Equal(got, tc.want) {
			t.Errorf("--sut %s claiming %s: declarations %v, want %v", tc.name, tc.claims, got, tc.want)
		}
		if got := sut.WIWebhook(suts); got != tc.webhook {
			t.Errorf("--sut %s claiming %s: webhook under test %q, want %q", tc.name, tc.claims, got, tc.webhook)
		}
	}
}

// TestRecordImplementations: the report names the implementation under
// test and, apart, its companions, each with its own images and claims.
func TestRecordImplementations(t *testing.T) {
	suts, err := declarations("reference", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res := &run.Result{SUTImages: [][]sut.Loaded{{{Name: "nodeagent", Ref: "a", ID: "1"}}, {{Name: "wiwebhook", Ref: "b", ID: "2"}}}}
	rep := &report.Report{}
	recordImplementations(rep, suts, res)
	if rep.Implementation == nil || rep.Implementation.Name != "reference" || len(rep.Implementation.Images) != 1 || rep.Implementation.Images[0].Ref != "a" {
		t.Errorf("implementation %+v, want reference with its image a", rep.Implementation)
	}
	if len(rep.Companions) != 1 || rep.Companions[0].Name != sut.ReferenceWebhook || rep.Companions[0].Images[0].Ref != "b" ||
		!slices.Equal(rep.Companions[0].Claims, []string{"workload-identity"}) {
		t.Errorf("companions %+v, want the reference webhook with its image b, claiming workload-identity", rep.Companions)
	}
}
