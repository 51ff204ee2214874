package report

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() *Report {
	return &Report{Suite: "conformance", Seed: 42, StartedAt: time.Unix(1_800_000_000, 0), Duration: 12.5,
		Phases: []Phase{{Name: "cluster", Duration: 30}, {Name: "suites", Duration: 12}},
		Specs: []Spec{
			{ID: "IDH-CONF-0001", Level: MUST, Statement: "a | pipe", State: Passed, Clients: map[string]string{"azidentity-mi": Passed, "msal-mi": Passed}},
			{ID: "IDH-CONF-0002", Level: SHOULD, Statement: "b", State: Failed, Failure: "expected x\nsecond line", Clients: map[string]string{"msal-mi": Failed}},
			{ID: "IDH-CONF-0003", Level: MUST, Statement: "c", State: Skipped},
		}}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Report)
		want string
	}{
		{func(*Report) {}, "Partial"}, // only a SHOULD failed, but a MUST did not run
		{func(r *Report) { r.Specs[2].State = Passed }, "Conformant"},
		{func(r *Report) { r.Specs[0].State = Failed }, "Not conformant"},
		{func(r *Report) { r.Specs = r.Specs[2:] }, "No verdict: no spec ran"},
		// A spec of a mode the profile does not claim is out of scope...
		{func(r *Report) { r.Claims, r.Specs[2].Labels = []string{"imds"}, []string{"pod-identity"} }, "Conformant"},
		// ...one of a claimed mode is not, under either label.
		{func(r *Report) { r.Claims, r.Specs[2].Labels = []string{"imds"}, []string{"chaos", "imds-mode"} }, "Partial"},
		// A spec of no mode is always in scope.
		{func(r *Report) { r.Claims, r.Specs[2].Labels = []string{"pod-identity"}, []string{"security"} }, "Partial"},
		// A failed MUST outranks any unrun one.
		{func(r *Report) { r.Specs[0].State = Failed; r.Claims = []string{"imds"} }, "Not conformant"},
	} {
		r := sample()
		tc.mut(r)
		r.Finalize()
		if r.Verdict != tc.want {
			t.Errorf("verdict %q, want %q (%+v)", r.Verdict, tc.want, r.Summary)
		}
	}
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	if err := r.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.Summary.ShouldFailed != 1 || back.Specs[1].Failure == "" {
		t.Fatalf("report.json: %v %+v", err, back.Summary)
	}
	x, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	var js junitSuites
	if err := xml.Unmarshal(x, &js); err != nil {
		t.Fatal(err)
	}
	if js.Tests != 3 || js.Failures != 1 || js.Skipped != 1 || js.Suites[0].Cases[1].Failure.Message != "expected x" ||
		js.Suites[0].Cases[0].Name != "[IDH-CONF-0001] MUST a | pipe" {
		t.Fatalf("junit: %+v", js)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	for _, want := range []string{"**Verdict: Partial**", "- IDH-CONF-0003: not selected (label filter or focus)", "| IDH-CONF-0001 | MUST | a \\| pipe | ✅ pass | ✅ pass | ✅ pass |",
		"| IDH-CONF-0002 | SHOULD | b | ❌ FAIL | | ❌ FAIL |", "### IDH-CONF-0002 (SHOULD) b", "| cluster | 30.0 | ok |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

// TestVersionRecorded: the version of idharness that gave a verdict is in
// every format that carries the run's provenance (JSON, JUnit properties,
// the summary), beside the spec set's; a report without one (a library
// caller that sets none) writes no empty field.
func TestVersionRecorded(t *testing.T) {
	for _, tc := range []struct {
		version string
		json    string
		md      string
	}{
		{version: "v0.4.0-2-g1a2b3c4-dirty", json: `"idharnessVersion": "v0.4.0-2-g1a2b3c4-dirty"`, md: "idharness v0.4.0-2-g1a2b3c4-dirty. Spec set 1.0. Seed 42"},
		{version: "", md: "Spec set 1.0. Seed 42"},
	} {
		dir := t.TempDir()
		r := sample()
		r.Version, r.SpecSet = tc.version, "1.0"
		if err := r.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		j, _ := os.ReadFile(filepath.Join(dir, "report.json"))
		if tc.json != "" && !strings.Contains(string(j), tc.json) {
			t.Errorf("version %q: report.json lacks %s", tc.version, tc.json)
		}
		if tc.version == "" && strings.Contains(string(j), "idharnessVersion") {
			t.Errorf("no version: report.json has an empty idharnessVersion")
		}
		md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
		if !strings.Contains(string(md), tc.md) {
			t.Errorf("version %q: summary.md lacks %q:\n%s", tc.version, tc.md, md)
		}
		x, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
		var js junitSuites
		if err := xml.Unmarshal(x, &js); err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, p := range js.Suites[0].Properties {
			if p.Name == "idharnessVersion" {
				got = p.Value
			}
		}
		if got != tc.version {
			t.Errorf("junit property idharnessVersion = %q, want %q", got, tc.version)
		}
	}
}

// TestMarkdownImplementations: the summary names the implementation under
// test and, after it, the companions deployed beside it with their own
// claims.
func TestMarkdownImplementations(t *testing.T) {
	r := &Report{Suite: "conformance", Profile: "reference", Claims: []string{"pod-identity", "workload-identity"},
		Implementation: &Implementation{Name: "reference", File: "/c/reference/sut.yaml", Claims: []string{"pod-identity"}},
		Companions:     []Implementation{{Name: "reference-webhook", File: "/c/wh/sut.yaml", Claims: []string{"workload-identity"}}}}
	md := r.Markdown()
	for _, want := range []string{"Implementation under test: **reference**", "Deployed beside it: **reference-webhook**, from `/c/wh/sut.yaml`, claims workload-identity."} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "reference-webhook") < strings.Index(md, "Implementation under test") {
		t.Errorf("a companion comes before the implementation under test:\n%s", md)
	}
}
