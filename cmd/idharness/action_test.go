package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/pkg/report"
)

// actionFile is the part of a composite action.yml the test reads.
type actionFile struct {
	Name        string                                           `json:"name"`
	Description string                                           `json:"description"`
	Author      string                                           `json:"author"`
	Branding    map[string]string                                `json:"branding"`
	Inputs      map[string]struct{ Description, Default string } `json:"inputs"`
	Outputs     map[string]struct{ Description, Value string }   `json:"outputs"`
	Runs        struct {
		Using string `json:"using"`
		Steps []struct {
			Name  string            `json:"name"`
			If    string            `json:"if"`
			ID    string            `json:"id"`
			Uses  string            `json:"uses"`
			Shell string            `json:"shell"`
			Run   string            `json:"run"`
			Env   map[string]string `json:"env"`
			With  map[string]string `json:"with"`
		} `json:"steps"`
	} `json:"runs"`
}

// TestGitHubAction validates the repository's composite action: its
// inputs are the documented ones and each is used, its scripts parse,
// every idharness command and flag it runs exists, every make target it
// calls is defined, and the report fields it reads are the report's.
func TestGitHubAction(t *testing.T) {
	b, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	if err := yaml.UnmarshalStrict(b, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if a.Runs.Using != "composite" {
		t.Errorf("runs.using %q, want composite", a.Runs.Using)
	}
	var inputs []string
	for name, in := range a.Inputs {
		inputs = append(inputs, name)
		if in.Description == "" {
			t.Errorf("input %s has no description", name)
		}
	}
	sort.Strings(inputs)
	want := []string{"kubeconfig", "label-filter", "node-image", "profile", "report-dir", "seed", "suite", "sut"}
	if !slices.Equal(inputs, want) {
		t.Errorf("inputs %v, want %v", inputs, want)
	}
	all := string(b)
	for _, name := range inputs {
		if !strings.Contains(all, "inputs."+name+" }}") {
			t.Errorf("input %s is never used", name)
		}
	}
	if v := a.Outputs["verdict"].Value; v != "${{ steps.run.outputs.verdict }}" {
		t.Errorf("outputs.verdict is %q", v)
	}

	root := newRootCommand()
	flagRE := regexp.MustCompile(`--([a-z][a-z-]*)`)
	envRE := regexp.MustCompile(`\$\{?(IDH_[A-Z_]+)`)
	wroteVerdict := false
	for _, st := range a.Runs.Steps {
		if st.Run == "" {
			if st.Uses == "" {
				t.Errorf("step %q neither runs nor uses anything", st.Name)
			}
			continue
		}
		if st.Shell != "bash" {
			t.Errorf("step %q: shell %q, want bash", st.Name, st.Shell)
		}
		if out, err := exec.Command("bash", "-n", "-c", st.Run).CombinedOutput(); err != nil {
			t.Errorf("step %q does not parse: %v %s", st.Name, err, out)
		}
		for _, m := range envRE.FindAllStringSubmatch(st.Run, -1) {
			if _, ok := st.Env[m[1]]; !ok {
				t.Errorf("step %q uses $%s, which its env does not set", st.Name, m[1])
			}
		}
		for name := range st.Env {
			if !strings.Contains(st.Run, "$"+name) {
				t.Errorf("step %q sets %s and never uses it", st.Name, name)
			}
		}
		for _, line := range strings.Split(st.Run, "\n") {
			if strings.Contains(line, "make ") {
				checkMakeTargets(t, line)
			}
			if !strings.Contains(line, "args=(") && !strings.Contains(line, "args+=(") {
				continue
			}
			if i := strings.Index(line, "args=("); i >= 0 {
				sub := strings.Fields(line[i+len("args=("):])[0]
				cmd, _, err := root.Find([]string{sub})
				if err != nil || cmd == root {
					t.Errorf("the action runs `idharness %s`, which is no command", sub)
					continue
				}
			}
			run, _, _ := root.Find([]string{"run"})
			for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
				if run.Flags().Lookup(m[1]) == nil {
					t.Errorf("the action passes --%s, which `idharness run` does not take", m[1])
				}
			}
		}
		if st.ID == "run" && strings.Contains(st.Run, `verdict=$verdict" >> "$GITHUB_OUTPUT"`) {
			wroteVerdict = true
		}
	}
	if !wroteVerdict {
		t.Error("no step with id run writes verdict to $GITHUB_OUTPUT")
	}

	// The report fields the script reads with jq.
	r := report.Report{Specs: []report.Spec{{ID: "IDH-CONF-0001", Level: report.MUST, State: report.Passed}}}
	r.Finalize()
	j, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(j, &m)
	if _, ok := m["verdict"]; !ok {
		t.Error("report.json has no verdict, which the action reads")
	}
	if s, _ := m["summary"].(map[string]any); s == nil || s["mustFailed"] == nil {
		t.Error("report.json has no summary.mustFailed, which the action reads")
	}
	for _, f := range []string{"report.json", "summary.md"} {
		if !strings.Contains(all, f) {
			t.Errorf("the action does not use %s", f)
		}
	}
}

// checkMakeTargets fails for a target on a make command line that no
// makefile of the repository defines.
func checkMakeTargets(t *testing.T, line string) {
	t.Helper()
	files, _ := filepath.Glob("../../mk/*.mk")
	files = append(files, "../../Makefile")
	var defs strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		defs.Write(b)
	}
	fields := strings.Fields(line[strings.Index(line, "make ")+len("make "):])
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "-C" {
			i++
			continue
		}
		if strings.HasPrefix(f, "-") || strings.Contains(f, "=") {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f) + `:`).MatchString(defs.String()) {
			t.Errorf("the action runs make %s, which no makefile defines", f)
		}
	}
}
