package nodeimage

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's two commands must be the whole set-up on a fresh machine:
// these tests keep the install script, the build's preflight, the README
// and CI in agreement, so that none of them drifts silently.

// scriptPrereqs returns hack/prereqs.sh's "command package" list.
func scriptPrereqs(t *testing.T) []prerequisite {
	t.Helper()
	out, err := exec.Command("bash", "../../hack/prereqs.sh", "--list").Output()
	if err != nil {
		t.Fatalf("hack/prereqs.sh --list: %v", err)
	}
	var got []prerequisite
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("hack/prereqs.sh --list: line %q is not \"command package\"", line)
		}
		got = append(got, prerequisite{f[0], f[1]})
	}
	return got
}

func TestPrereqsScriptMatchesPreflight(t *testing.T) {
	got := scriptPrereqs(t)
	if !slices.Equal(got, prerequisites) {
		t.Fatalf("hack/prereqs.sh installs %v but the node image preflight checks %v: change both", got, prerequisites)
	}
}

// readmeSection returns the text of the README section with this heading.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	s = s[i+len(heading)+2:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

func TestPrereqsNamedInREADME(t *testing.T) {
	setup := readmeSection(t, "## Set-up")
	for _, p := range scriptPrereqs(t) {
		if !strings.Contains(setup, "`"+p.pkg+"`") {
			t.Errorf("README's Set-up section does not name `%s`, which make e2e installs (hack/prereqs.sh)", p.pkg)
		}
	}
	if !strings.Contains(setup, "make prereqs") {
		t.Errorf("README's Set-up section does not name `make prereqs`")
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"e2e", "chaos"} {
		re := regexp.MustCompile(`(?m)^` + target + `:([^#\n]*)`)
		m := re.FindSubmatch(mk)
		if m == nil || !slices.Contains(strings.Fields(string(m[1])), "prereqs") {
			t.Errorf("Makefile target %s does not depend on prereqs: a fresh machine would lack its tools", target)
		}
	}
}

// TestCIRunsTheREADME checks that .ci/run's first commands are the README's
// two commands, exactly, with no step before them that the README does not
// show, so that CI fails whenever a newcomer would.
func TestCIRunsTheREADME(t *testing.T) {
	two := readmeSection(t, "## The two commands")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(two)
	if block == nil {
		t.Fatal("README's \"The two commands\" section has no sh block")
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(block[1]), "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		want = append(want, strings.TrimSpace(cmd))
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	// Commands: lines that are not comments, blank, shell set-up or the
	// progress helper.
	benign := regexp.MustCompile(`^(set |cd |t0=|step\(\)|step |#|echo |\[ -f |fi$|cat |exit |then$)`)
	var got []string
	for _, line := range strings.Split(string(ci), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || benign.MatchString(line) {
			continue
		}
		// `if ! make e2e; then` runs make e2e too.
		line = strings.TrimSuffix(strings.TrimPrefix(line, "if ! "), "; then")
		got = append(got, line)
		if len(got) == len(want) {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf(".ci/run's first commands are %q, the README's two commands are %q: CI must run them first, exactly as written", got, want)
	}
}
