package incluster_test

// What TestInClusterE2E (incluster_e2e_test.go, build tag e2e) judges
// with, kept out of its build tag so that the judging itself is tested
// on every `go test`: a comparison that passes on nothing would prove
// nothing.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/pkg/report"
)

// sonobuoyVersion is the Sonobuoy the e2e test and docs/in-cluster.md
// were checked with (its aggregator-address workaround is for it).
const sonobuoyVersion = "v0.57.3"

// buildSonobuoy is how to get the binary IDHARNESS_E2E_SONOBUOY names.
const buildSonobuoy = "build it outside this module (the Go proxy refuses `go install` of it): " +
	"cd $(mktemp -d) && go mod init tmp && go get github.com/vmware-tanzu/sonobuoy@" + sonobuoyVersion +
	" && CGO_ENABLED=0 go build -o /tmp/sono-bin/sonobuoy github.com/vmware-tanzu/sonobuoy" +
	", then IDHARNESS_E2E_SONOBUOY=/tmp/sono-bin/sonobuoy (docs/in-cluster.md)"

// checkSonobuoyBinary returns the version of the sonobuoy binary at path,
// or why it cannot be the one the test puts alone on an empty root as
// Sonobuoy's image: missing, not an executable, dynamically linked.
func checkSonobuoyBinary(ctx context.Context, path string) (string, error) {
	bad := func(why string, args ...any) (string, error) {
		return "", fmt.Errorf("IDHARNESS_E2E_SONOBUOY=%s: %s; %s", path, fmt.Sprintf(why, args...), buildSonobuoy)
	}
	st, err := os.Stat(path)
	if err != nil {
		return bad("%v", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return bad("not an executable file (mode %s)", st.Mode())
	}
	f, err := elf.Open(path)
	if err != nil {
		return bad("not an ELF executable (%v)", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return bad("dynamically linked (built with cgo), but Sonobuoy's image here has no libc")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version", "--short").CombinedOutput()
	if err != nil {
		return bad("`version --short`: %v: %s", err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
}

// result is what the comparison looks at: the verdict and each spec's
// outcome, by ID.
type result struct {
	Verdict string
	Specs   map[string]string
}

// readReport reads the verdict and the spec outcomes of a report.json.
func readReport(path string) (result, error) {
	rep, err := report.Read(path)
	if err != nil {
		return result{}, err
	}
	r := result{Verdict: rep.Verdict, Specs: map[string]string{}}
	for _, s := range rep.Specs {
		r.Specs[s.ID] = s.State
	}
	return r, nil
}

// count returns how many specs of r are in state.
func (r result) count(state string) int {
	n := 0
	for _, s := range r.Specs {
		if s == state {
			n++
		}
	}
	return n
}

// checkReference fails a local run the others cannot be compared with:
// one where no spec passed would let an empty Sonobuoy result, or a
// runner that ran nothing, compare equal.
func checkReference(local result) error {
	if len(local.Specs) == 0 || local.count(report.Passed) == 0 || local.Verdict == report.VerdictNone {
		return fmt.Errorf("the local run is no reference: verdict %q, %d specs, %d passed (does --label-filter imds select specs?)",
			local.Verdict, len(local.Specs), local.count(report.Passed))
	}
	return nil
}

// compare returns how got differs from local: the verdict, and every
// spec ID either lists with another outcome or lists alone
// (report.Compare, on reports without clients: Sonobuoy's have none).
func compare(what string, local, got result) []string {
	var diffs []string
	for _, d := range report.Compare(local.report(), got.report()) {
		if d.ID == "" {
			diffs = append(diffs, fmt.Sprintf("%s verdict %q, local %q", what, d.B, d.A))
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s %s: %q, local %q", what, d.ID, d.B, d.A))
	}
	return diffs
}

// report is r as a report of its verdict and spec states.
func (r result) report() *report.Report {
	out := &report.Report{Verdict: r.Verdict}
	for id, state := range r.Specs {
		out.Specs = append(out.Specs, report.Spec{ID: id, State: state})
	}
	return out
}

var specID = regexp.MustCompile(`IDH-[A-Z]+-\d{4}`)

// sonobuoyReport reads the spec outcomes from `sonobuoy results --mode
// detailed` (a JSON object per test) and the verdict from the JUnit file
// the plugin left in the retrieved archive. A spec ID listed twice is an
// error: its outcome would be whichever came last.
func sonobuoyReport(detailed string, archive io.Reader) (result, error) {
	r := result{Specs: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(detailed))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var item struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &item) != nil {
			continue
		}
		if id := specID.FindString(item.Name); id != "" {
			if _, dup := r.Specs[id]; dup {
				return r, fmt.Errorf("sonobuoy results list %s twice", id)
			}
			r.Specs[id] = item.Status
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("sonobuoy results: %w", err)
	}
	zr, err := gzip.NewReader(archive)
	if err != nil {
		return r, fmt.Errorf("retrieved archive: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("retrieved archive: %w", err)
		}
		if !strings.HasPrefix(h.Name, "plugins/idharness/") || !strings.HasSuffix(h.Name, "junit.xml") {
			continue
		}
		var j struct {
			Suites []struct {
				Properties []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"properties>property"`
			} `xml:"testsuite"`
		}
		if err := xml.NewDecoder(tr).Decode(&j); err != nil {
			return r, fmt.Errorf("%s in the retrieved archive: %w", h.Name, err)
		}
		for _, s := range j.Suites {
			for _, p := range s.Properties {
				if p.Name == "verdict" {
					r.Verdict = p.Value
				}
			}
		}
	}
	if r.Verdict == "" {
		return r, errors.New("no junit.xml with a verdict under plugins/idharness/ in the retrieved archive")
	}
	return r, nil
}

// checkSonobuoySummary compares `sonobuoy results`'s summary (Status,
// Total, Passed, Failed, Skipped) with the local run: Sonobuoy's status
// is failed exactly when a spec failed.
func checkSonobuoySummary(summary string, local result) []string {
	want := map[string]string{
		"Status":  "passed",
		"Total":   strconv.Itoa(len(local.Specs)),
		"Passed":  strconv.Itoa(local.count(report.Passed)),
		"Failed":  strconv.Itoa(local.count(report.Failed)),
		"Skipped": strconv.Itoa(len(local.Specs) - local.count(report.Passed) - local.count(report.Failed)),
	}
	if local.count(report.Failed) > 0 {
		want["Status"] = "failed"
	}
	got := map[string]string{}
	for _, line := range strings.Split(summary, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			if _, ok := want[k]; ok {
				got[k] = strings.TrimSpace(v)
			}
		}
	}
	var diffs []string
	for _, k := range []string{"Status", "Total", "Passed", "Failed", "Skipped"} {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("sonobuoy results %s: %q, want %q (local run %s)", k, got[k], want[k], local.Verdict))
		}
	}
	return diffs
}

func TestCheckReference(t *testing.T) {
	tests := []struct {
		name  string
		local result
		ok    bool
	}{
		{"passed specs", result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}, true},
		{"no spec", result{report.VerdictNone, map[string]string{}}, false},
		{"none passed", result{report.VerdictNotConformant, map[string]string{"IDH-CONF-0001": "failed"}}, false},
		{"all skipped", result{report.VerdictNone, map[string]string{"IDH-CONF-0001": "skipped"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkReference(tt.local); (err == nil) != tt.ok {
				t.Errorf("checkReference: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	local := result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}
	tests := []struct {
		name  string
		got   result
		diffs int
	}{
		{"same", result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}, 0},
		{"empty", result{"", map[string]string{}}, 3},
		{"same verdict, nothing ran", result{report.VerdictPartial, map[string]string{}}, 2},
		{"other outcome", result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "skipped", "IDH-CONF-0002": "skipped"}}, 1},
		{"one more", result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped", "IDH-CONF-0003": "passed"}}, 1},
		{"other verdict", result{report.VerdictConformant, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := compare("x", local, tt.got); len(d) != tt.diffs {
				t.Errorf("compare: %d differences %q, want %d", len(d), d, tt.diffs)
			}
		})
	}
}

// retrievedArchive is a `sonobuoy retrieve` tarball holding files.
func retrievedArchive(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSonobuoyReport(t *testing.T) {
	rep := report.Report{Suite: "conformance", Specs: []report.Spec{
		{ID: "IDH-CONF-0001", Level: report.MUST, Statement: "a", State: report.Passed},
		{ID: "IDH-CONF-0002", Level: report.MUST, Statement: "b", State: report.Skipped, Failure: "not selected"},
	}}
	junit, err := rep.JUnit()
	if err != nil {
		t.Fatal(err)
	}
	local := result{rep.Verdict, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}
	const detailed = `{"name":"[IDH-CONF-0001] MUST a","status":"passed","meta":{"path":"idharness|global|junit.xml"}}
{"name":"[IDH-CONF-0002] MUST b","status":"skipped","meta":{"path":"idharness|global|junit.xml"}}
`
	withJUnit := map[string][]byte{"plugins/idharness/results/global/junit.xml": junit, "plugins/idharness/results/global/report.json": []byte("{}")}
	tests := []struct {
		name     string
		detailed string
		files    map[string][]byte
		diffs    int
		err      string
	}{
		{"same", detailed, withJUnit, 0, ""},
		{"no results", "", withJUnit, 2, ""},
		{"no junit", detailed, map[string][]byte{"plugins/idharness/results/global/out.tar.gz": nil}, 1, "no junit.xml"},
		{"listed twice", detailed + detailed, withJUnit, 0, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sonobuoyReport(tt.detailed, bytes.NewReader(retrievedArchive(t, tt.files)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("sonobuoyReport: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := compare("sonobuoy", local, got); len(d) != tt.diffs {
				t.Errorf("compare: %d differences %q, want %d", len(d), d, tt.diffs)
			}
		})
	}
}

func TestCheckSonobuoySummary(t *testing.T) {
	partial := result{report.VerdictPartial, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "skipped"}}
	failed := result{report.VerdictNotConformant, map[string]string{"IDH-CONF-0001": "passed", "IDH-CONF-0002": "failed"}}
	tests := []struct {
		name    string
		summary string
		local   result
		diffs   int
	}{
		{"same", "Plugin: idharness\nStatus: passed\nTotal: 2\nPassed: 1\nFailed: 0\nSkipped: 1\n", partial, 0},
		{"failed", "Plugin: idharness\nStatus: failed\nTotal: 2\nPassed: 1\nFailed: 1\nSkipped: 0\n", failed, 0},
		{"empty results", "Plugin: idharness\nStatus: passed\nTotal: 0\nPassed: 0\nFailed: 0\nSkipped: 0\n", partial, 3},
		{"status passed on a failure", "Plugin: idharness\nStatus: passed\nTotal: 2\nPassed: 1\nFailed: 1\nSkipped: 0\n", failed, 1},
		{"nothing", "", partial, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := checkSonobuoySummary(tt.summary, tt.local); len(d) != tt.diffs {
				t.Errorf("checkSonobuoySummary: %d differences %q, want %d", len(d), d, tt.diffs)
			}
		})
	}
}

// dynamicBinary returns a dynamically linked executable of this machine,
// or "".
func dynamicBinary() string {
	for _, p := range []string{"/bin/sh", "/bin/ls", "/usr/bin/env"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		for _, pr := range f.Progs {
			if pr.Type == elf.PT_INTERP {
				return p
			}
		}
	}
	return ""
}

func TestCheckSonobuoyBinary(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "sonobuoy.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho v0.57.3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, err string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"directory", dir, "not an executable"},
		{"not executable", plain, "not an executable"},
		{"script", script, "not an ELF executable"},
		{"dynamic", dynamicBinary(), "dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path == "" {
				t.Skip("no dynamically linked executable here")
			}
			_, err := checkSonobuoyBinary(context.Background(), tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "go get github.com/vmware-tanzu/sonobuoy@"+sonobuoyVersion) {
				t.Errorf("checkSonobuoyBinary(%s): %v, want an error with %q and how to build it", tt.path, err, tt.err)
			}
		})
	}
}
