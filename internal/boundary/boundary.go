// Package boundary holds the module's import boundaries and checks them,
// in the spirit of Kubernetes' .import-restrictions files: a table of
// rules, each naming the packages it governs, the import path prefixes
// they must not import (directly, or for a transitive rule through other
// packages too), and why. The test beside it checks every package of the
// module, parsing its files' imports with go/parser: test files and files
// behind build tags included, since a boundary crossed only by a test or
// an e2e build is still crossed.
//
// The rules are what keep the contract neutral: pkg/api holds Azure's
// documented contracts, which both the reference implementations
// (internal/nodeagent, internal/wiwebhook) and the judges (suites,
// internal/scenario) import, and neither side imports the other. The
// suites reach the deployed stack only through the public handle
// (suites/framework), the one suite package that imports internal/stack.
//
// A second table, APIRules, governs what the public packages (pkg/,
// fakeimds/, suites/framework) show other modules: no exported
// identifier of theirs may name a type from internal/, which another
// module could receive but never name. examples/public-api, a module of
// its own, is the same check from the outside: it must build.
package boundary

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Rule forbids a set of packages some imports. Paths are relative to the
// module ("internal/nodeagent") and match by whole path segments:
// "internal/nodeagent" matches itself and "internal/nodeagent/x", not
// "internal/nodeagentx"; "" matches every package.
type Rule struct {
	// From is the prefix of the packages the rule governs.
	From string
	// Forbid are the prefixes those packages must not import.
	Forbid []string
	// Allow are exceptions to Forbid: known debts, each to be paid, or
	// the one internal implementation a public package wraps, as kind's
	// pkg/cluster wraps its internal providers (the test fails once an
	// exception is no longer used, so that it goes).
	Allow []string
	// Except are packages under From that the rule does not govern: the
	// one package that wraps what the rule forbids the others, as
	// suites/framework's public handle wraps internal/stack (the test
	// fails once an exception no longer imports anything the rule
	// forbids, so that it goes).
	Except []string
	// Transitive forbids reaching Forbid through other packages too (a
	// package's own test files count; its dependencies' do not, as Go
	// does not build them).
	Transitive bool
	// Why is the reason, shown with every violation.
	Why string
}

// Rules returns the module's import boundaries.
func Rules() []Rule {
	// The reference implementations, which no judge may import.
	referenceImplementations := []string{"internal/nodeagent", "internal/wiwebhook"}
	return []Rule{
		{
			From:   "pkg/api",
			Forbid: []string{"internal", "cmd", "suites", "fakeimds", "clients", "fixtures", "scenarios", "hack", "pkg/cluster"},
			Why: "pkg/api is the public contract (Azure's documented names), imported by the reference implementations, " +
				"the suites and other modules alike; it must be neutral between implementation and judge, " +
				"so it imports nothing else of idharness's",
		},
		{
			From:   "pkg",
			Forbid: []string{"internal", "cmd", "suites", "clients", "fixtures", "scenarios", "hack"},
			// kind's shape: the public provider wraps the internal one,
			// so that there is one implementation and a small surface
			// (APIRules keeps internal types out of that surface).
			Allow: []string{"internal/cluster"},
			Why: "pkg/ is what other modules import (examples/public-api builds against it); a public package keeps its " +
				"surface small and wraps at most the one internal implementation listed for it, never the harness around it",
		},
		{
			From:       "suites",
			Forbid:     referenceImplementations,
			Transitive: true,
			Why: "the suites judge any implementation (aad-pod-identity, a vendor's webhook) by the contract in pkg/api; " +
				"taking names or behaviour from the reference implementations would make conformance mean \"behaves like ours\"",
		},
		{
			From:   "suites",
			Forbid: []string{"internal/stack", "internal/deploy"},
			// The public handle is the one package that wraps the stack,
			// as pkg/cluster wraps internal/cluster. Direct imports only:
			// the chaos suite plays its scenarios through
			// internal/scenario, which holds a stack of its own
			// (scenario.ConnectPool), and that is the engine, not a spec
			// reaching around the handle.
			Except: []string{"suites/framework"},
			Why: "specs reach the stack only through the public handle (suites/framework: f.Kube, f.FakeIMDS, " +
				"f.Identities, f.WorkloadIdentity…), in types another module can name, so that a suite written in another " +
				"module can do what ours do; a spec holding the stack or the deployer reaches the harness's internals " +
				"instead of what the handle documents. Add a handle method for what a spec needs",
		},
		{
			From:       "internal/scenario",
			Forbid:     referenceImplementations,
			Transitive: true,
			Why: "scenario runs judge any implementation by the contract in pkg/api, as the suites do; " +
				"deploying an implementation is internal/stack's job, not the judge's",
		},
		{
			From:   "internal/nodeagent",
			Forbid: []string{"suites", "internal/scenario", "internal/stack", "internal/run"},
			Why: "the reference pod identity agent is an implementation under test, built alone into its image; " +
				"it must not depend on the judges or on the harness that deploys it",
		},
		{
			From:   "internal/wiwebhook",
			Forbid: []string{"suites", "internal/scenario", "internal/stack", "internal/run"},
			Why: "the reference workload identity webhook is an implementation under test, built alone into its image; " +
				"it must not depend on the judges or on the harness that deploys it",
		},
		{
			From:   "fakeimds",
			Forbid: []string{"suites", "internal", "cmd"},
			// fakeimds/config decodes with the module's strict YAML
			// decoder, which is public (pkg/yamlfile) because the fake
			// is: a program built on fakeimds imports nothing internal.
			Why: "fakeimds is a public, standalone fake (its client and config are for other modules too); " +
				"it serves the suites and must not depend on them or on the harness's internals",
		},
		{
			From:   "",
			Forbid: []string{"cmd"},
			Why:    "cmd/ holds thin binaries (flags, then a package call); what two programs share belongs in a package",
		},
	}
}

// Import is one import of a package, with the file that makes it.
type Import struct {
	// Path is the imported package, relative to the module.
	Path string
	// File is the importing file, relative to the module.
	File string
	// Test is set for imports of _test.go files.
	Test bool
}

// Package is a package of the module and its imports of the module's
// packages (others are no boundary's concern).
type Package struct {
	// Path is relative to the module ("" for its root).
	Path    string
	Imports []Import
}

// Violation is an import a rule forbids.
type Violation struct {
	Package string
	// Import is the forbidden package and the file that imports it: in
	// Package, or for a transitive rule in the last package of Via.
	Import Import
	// Via are the packages between Package and Import, for a transitive
	// rule.
	Via  []string
	Rule Rule
}

func (v Violation) String() string {
	through := ""
	if len(v.Via) > 0 {
		through = " through " + strings.Join(v.Via, " → ")
	}
	return fmt.Sprintf("%s imports %s%s (%s): packages under %q must not import %s: %s",
		v.Package, v.Import.Path, through, v.Import.File, v.Rule.From, strings.Join(v.Rule.Forbid, ", "), v.Rule.Why)
}

// Under reports whether path is prefix or below it, by whole segments.
func Under(path, prefix string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if Under(path, p) {
			return true
		}
	}
	return false
}

// Check returns every import of pkgs that a rule forbids. A package may
// always import below its own path, so a rule never forbids a package
// its own parts.
func Check(rules []Rule, pkgs []Package) []Violation {
	byPath := make(map[string]Package, len(pkgs))
	for _, p := range pkgs {
		byPath[p.Path] = p
	}
	var out []Violation
	for _, p := range pkgs {
		var reached []reachedImport // computed once, for the first transitive rule
		for _, r := range rules {
			if !Under(p.Path, r.From) || underAny(p.Path, r.Except) {
				continue
			}
			imports := direct(p)
			if r.Transitive {
				if reached == nil {
					reached = reach(p, byPath)
				}
				imports = reached
			}
			for _, imp := range imports {
				if Under(imp.Path, p.Path) && p.Path != "" {
					continue
				}
				if underAny(imp.Path, r.Forbid) && !underAny(imp.Path, r.Allow) {
					out = append(out, Violation{Package: p.Path, Import: imp.Import, Via: imp.via, Rule: r})
				}
			}
		}
	}
	return out
}

// reachedImport is an import and the packages through which it is made.
type reachedImport struct {
	Import
	via []string
}

func direct(p Package) []reachedImport {
	out := make([]reachedImport, len(p.Imports))
	for i, imp := range p.Imports {
		out[i] = reachedImport{Import: imp}
	}
	return out
}

// reach returns every import reachable from p, breadth first so that
// each comes with a shortest chain: p's own imports (its test files'
// included), then the non-test imports of the packages they import, and
// so on.
func reach(p Package, byPath map[string]Package) []reachedImport {
	out := direct(p)
	listed := map[string]bool{}
	for _, imp := range out {
		listed[imp.Path] = true
	}
	seen := map[string]bool{p.Path: true}
	for i := 0; i < len(out); i++ {
		next := out[i]
		if seen[next.Path] {
			continue
		}
		seen[next.Path] = true
		via := append(append([]string(nil), next.via...), next.Path)
		for _, imp := range byPath[next.Path].Imports {
			if !imp.Test && !listed[imp.Path] {
				listed[imp.Path] = true
				out = append(out, reachedImport{Import: imp, via: via})
			}
		}
	}
	return out
}

// Load parses the imports of every Go file of the module rooted at root
// (module is its path, from go.mod) and returns its packages. Files are
// read whatever their build tags; test files count for their directory's
// package. Directories that are not the module's packages are skipped:
// hidden ones, testdata, vendor, _output and nested modules.
func Load(root, module string) ([]Package, error) {
	byDir := map[string]*Package{}
	err := walkGoFiles(root, func(path, rel string) error {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("parse imports: %w", err)
		}
		dir := packageOf(rel)
		p := byDir[dir]
		if p == nil {
			p = &Package{Path: dir}
			byDir[dir] = p
		}
		for _, s := range f.Imports {
			ip, err := strconv.Unquote(s.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", rel, s.Path.Value, err)
			}
			test := strings.HasSuffix(rel, "_test.go")
			if ip == module {
				p.Imports = append(p.Imports, Import{Path: "", File: rel, Test: test})
			} else if strings.HasPrefix(ip, module+"/") {
				p.Imports = append(p.Imports, Import{Path: strings.TrimPrefix(ip, module+"/"), File: rel, Test: test})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(byDir))
	for _, p := range byDir {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// walkGoFiles calls fn with the path and the module-relative path of
// every Go file of the module rooted at root, whatever its build tags,
// skipping directories that are not the module's packages: hidden ones,
// testdata, vendor, _output and nested modules (examples/public-api).
func walkGoFiles(root string, fn func(path, rel string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "node_modules" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		return fn(path, rel)
	})
}

// packageOf returns the module-relative package of a module-relative
// file ("" for the root).
func packageOf(rel string) string {
	dir := filepath.ToSlash(filepath.Dir(rel))
	if dir == "." {
		return ""
	}
	return dir
}
