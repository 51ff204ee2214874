package boundary

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot finds the directory of the module's go.mod above the test's
// directory and the module path it declares.
func moduleRoot(t *testing.T) (root, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatalf("%s/go.mod declares no module", dir)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// TestModuleBoundaries checks every package of the module against Rules.
func TestModuleBoundaries(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs, err := Load(root, module)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p.Path] = true
	}
	// A loader that finds nothing would pass every rule: make sure it saw
	// the packages the rules are about.
	for _, p := range []string{"pkg/api/podidentity", "pkg/api/workloadidentity", "pkg/cluster", "suites/conformance", "internal/scenario", "internal/nodeagent", "internal/wiwebhook", "fakeimds", "cmd/idharness"} {
		if !have[p] {
			t.Errorf("Load found no package %s (found %d packages)", p, len(pkgs))
		}
	}
	for _, v := range Check(Rules(), pkgs) {
		t.Error(v)
	}
	// A rule whose packages are gone (a rename) guards nothing, and an
	// exception no longer used is a debt paid: both must be edited.
	for _, r := range Rules() {
		governed := false
		for p := range have {
			governed = governed || Under(p, r.From)
		}
		if !governed {
			t.Errorf("rule for %q governs no package", r.From)
		}
		for _, a := range r.Allow {
			used := false
			for _, p := range pkgs {
				for _, imp := range p.Imports {
					used = used || (Under(p.Path, r.From) && Under(imp.Path, a))
				}
			}
			if !used {
				t.Errorf("rule for %q allows %s, which no package there imports any more: remove the exception", r.From, a)
			}
		}
		for _, e := range r.Except {
			if !Under(e, r.From) {
				t.Errorf("rule for %q excepts %s, which it does not govern anyway", r.From, e)
			}
			wraps := false
			for _, p := range pkgs {
				for _, imp := range p.Imports {
					wraps = wraps || (Under(p.Path, e) && underAny(imp.Path, r.Forbid))
				}
			}
			if !wraps {
				t.Errorf("rule for %q excepts %s, which imports nothing the rule forbids any more: remove the exception", r.From, e)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	rules := []Rule{
		{From: "pkg", Forbid: []string{"internal"}, Why: "public"},
		{From: "suites", Forbid: []string{"internal/nodeagent"}, Allow: []string{"internal/nodeagent/ok"}, Why: "neutral"},
		{From: "", Forbid: []string{"cmd"}, Why: "thin"},
		{From: "app", Forbid: []string{"internal/engine"}, Except: []string{"app/handle"}, Why: "through the handle"},
	}
	imp := func(path string) Import { return Import{Path: path, File: "f.go"} }
	for _, tc := range []struct {
		name string
		pkg  Package
		want []string // the From of each rule violated, in order
	}{
		{"pkg imports internal", Package{Path: "pkg/api/x", Imports: []Import{imp("internal/stack")}}, []string{"pkg"}},
		{"pkg imports pkg", Package{Path: "pkg/api/x", Imports: []Import{imp("pkg/api/y")}}, nil},
		{"a suite imports a reference implementation", Package{Path: "suites/conformance", Imports: []Import{imp("internal/nodeagent")}}, []string{"suites"}},
		{"and below it", Package{Path: "suites/conformance", Imports: []Import{imp("internal/nodeagent/sub")}}, []string{"suites"}},
		{"an allowed exception", Package{Path: "suites/conformance", Imports: []Import{imp("internal/nodeagent/ok")}}, nil},
		{"prefixes match whole segments", Package{Path: "suites/conformance", Imports: []Import{imp("internal/nodeagentx")}}, nil},
		{"From matches whole segments", Package{Path: "suitesx", Imports: []Import{imp("internal/nodeagent")}}, nil},
		{"the empty From governs every package", Package{Path: "internal/run", Imports: []Import{imp("cmd/idharness")}}, []string{""}},
		{"two rules at once", Package{Path: "pkg/x", Imports: []Import{imp("internal/a"), imp("cmd/b")}}, []string{"pkg", ""}},
		{"a package may import its own parts", Package{Path: "cmd/idharness", Imports: []Import{imp("cmd/idharness/sub")}}, nil},
		{"the root package is not exempt from everything", Package{Path: "", Imports: []Import{imp("cmd/x")}}, []string{""}},
		{"a package beside the excepted one", Package{Path: "app/spec", Imports: []Import{imp("internal/engine")}}, []string{"app"}},
		{"the excepted package", Package{Path: "app/handle", Imports: []Import{imp("internal/engine")}}, nil},
		{"and below it", Package{Path: "app/handle/sub", Imports: []Import{imp("internal/engine")}}, nil},
		{"exceptions match whole segments", Package{Path: "app/handlex", Imports: []Import{imp("internal/engine")}}, []string{"app"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(rules, []Package{tc.pkg}) {
				got = append(got, v.Rule.From)
				if !strings.Contains(v.String(), v.Rule.Why) || !strings.Contains(v.String(), v.Import.File) {
					t.Errorf("violation %q lacks the reason or the file", v)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(got) != len(tc.want) {
				t.Errorf("violated %q, want %q", got, tc.want)
			}
		})
	}
}

// Specs reach the stack only through the public handle: the module's
// own rules report a suite's import of the stack or the deployer (the
// imports Framework.Stack's removal took away), and not the handle's, nor
// the chaos suite's import of the scenario engine that holds a stack of
// its own.
func TestSuitesReachTheStackThroughTheHandle(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkg  Package
		want string // the forbidden import reported under the suites' rule; empty: none
	}{
		{"the chaos suite imports the stack", Package{Path: "suites/chaos", Imports: []Import{{Path: "internal/stack", File: "suites/chaos/scenarios.go"}}}, "internal/stack"},
		{"a conformance test imports the stack", Package{Path: "suites/conformance", Imports: []Import{{Path: "internal/stack", File: "suites/conformance/x_test.go", Test: true}}}, "internal/stack"},
		{"a new suite imports the deployer", Package{Path: "suites/mine", Imports: []Import{{Path: "internal/deploy", File: "suites/mine/m.go"}}}, "internal/deploy"},
		{"the handle wraps the stack", Package{Path: "suites/framework", Imports: []Import{{Path: "internal/stack", File: "suites/framework/framework.go"}}}, ""},
		{"the chaos suite plays through the scenario engine", Package{Path: "suites/chaos", Imports: []Import{{Path: "internal/scenario", File: "suites/chaos/scenarios.go"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := []Package{tc.pkg, {Path: "internal/scenario", Imports: []Import{{Path: "internal/stack", File: "internal/scenario/incluster.go"}}}}
			var got []string
			for _, v := range Check(Rules(), pkgs) {
				if v.Package == tc.pkg.Path {
					got = append(got, v.Import.Path)
					if !strings.Contains(v.String(), "through the public handle") {
						t.Errorf("violation %q does not say to go through the handle", v)
					}
				}
			}
			want := []string{}
			if tc.want != "" {
				want = []string{tc.want}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("violations %q, want %q", got, want)
			}
		})
	}
}

// A transitive rule follows the imports of imported packages (not their
// tests) and says through which; a direct rule does not.
func TestCheckTransitive(t *testing.T) {
	pkgs := []Package{
		{Path: "suites/a", Imports: []Import{{Path: "internal/stack", File: "suites/a/a.go"}, {Path: "internal/h", File: "suites/a/h_test.go", Test: true}}},
		{Path: "internal/stack", Imports: []Import{{Path: "internal/mid", File: "internal/stack/s.go"}, {Path: "internal/wiwebhook", File: "internal/stack/s_test.go", Test: true}}},
		{Path: "internal/mid", Imports: []Import{{Path: "internal/nodeagent", File: "internal/mid/m.go"}, {Path: "internal/stack", File: "internal/mid/cycle.go"}}},
		{Path: "internal/h", Imports: []Import{{Path: "internal/wiwebhook/sub", File: "internal/h/h.go"}}},
	}
	for _, tc := range []struct {
		transitive bool
		want       []string
	}{
		{false, nil},
		// Breadth first: what is one package away comes first.
		{true, []string{
			"internal/wiwebhook/sub via internal/h (internal/h/h.go)",
			"internal/nodeagent via internal/stack,internal/mid (internal/mid/m.go)",
		}},
	} {
		rules := []Rule{{From: "suites", Forbid: []string{"internal/nodeagent", "internal/wiwebhook"}, Transitive: tc.transitive, Why: "neutral"}}
		var got []string
		for _, v := range Check(rules, pkgs) {
			if v.Package != "suites/a" {
				t.Errorf("violation in %s, which the rule does not govern", v.Package)
			}
			got = append(got, v.Import.Path+" via "+strings.Join(v.Via, ",")+" ("+v.Import.File+")")
		}
		if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
			t.Errorf("transitive %v: violations %q, want %q", tc.transitive, got, tc.want)
		}
	}
}

// Every rule of the module must be able to fail: a package it governs
// importing each prefix it forbids is reported, under that rule.
func TestEveryRuleCanFail(t *testing.T) {
	for _, r := range Rules() {
		from := strings.TrimPrefix(r.From+"/boundary-test", "/")
		for _, f := range r.Forbid {
			bad := Package{Path: from, Imports: []Import{{Path: f + "/boundary-test-violation", File: from + "/x.go"}}}
			found := false
			for _, v := range Check(Rules(), []Package{bad}) {
				found = found || (v.Rule.From == r.From && v.Import.Path == bad.Imports[0].Path)
			}
			if !found {
				t.Errorf("rule for %q: %s importing %s is not reported", r.From, from, bad.Imports[0].Path)
			}
		}
		if r.Why == "" {
			t.Errorf("rule for %q gives no reason", r.From)
		}
	}
}

// Load must see imports in test files and behind build tags, and only
// the module's own.
func TestLoad(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) { writeFile(t, root, rel, src) }
	write("go.mod", "module example.com/m\n")
	write("suites/a/a.go", "package a\nimport (\n\t\"fmt\"\n\t\"example.com/m/pkg/api/x\"\n)\n")
	write("suites/a/a_e2e_test.go", "//go:build e2e\n\npackage a_test\nimport \"example.com/m/internal/nodeagent\"\n")
	write("suites/a/testdata/t.go", "package t\nimport \"example.com/m/internal/nodeagent\"\n")
	write("_output/o.go", "package o\nimport \"example.com/m/cmd/x\"\n")
	write("nested/go.mod", "module example.com/n\n")
	write("nested/n.go", "package n\nimport \"example.com/m/cmd/x\"\n")
	pkgs, err := Load(root, "example.com/m")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Path != "suites/a" {
		t.Fatalf("packages %+v, want only suites/a", pkgs)
	}
	got := pkgs[0].Imports
	want := []Import{{Path: "pkg/api/x", File: "suites/a/a.go"}, {Path: "internal/nodeagent", File: "suites/a/a_e2e_test.go", Test: true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("imports %+v, want %+v", got, want)
	}
	if v := Check(Rules(), pkgs); len(v) != 1 || v[0].Rule.From != "suites" {
		t.Errorf("violations %v, want the e2e test's import of the reference agent", v)
	}
}

// writeFile writes src to rel below root, making its directories.
func writeFile(t *testing.T, root, rel, src string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}
