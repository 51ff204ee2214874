package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/pkg/report"
)

func TestReportCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, seed int64, suite, rawOutcome string) string {
		r := &report.Report{SchemaVersion: report.SchemaVersion, Suite: suite, Seed: seed, Verdict: report.VerdictConformant,
			Specs: []report.Spec{{ID: "IDH-CONF-0001", Level: report.MUST, State: report.Passed, Clients: map[string]string{"raw": rawOutcome}}}}
		p := filepath.Join(dir, name)
		if err := r.WriteDir(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a", 1, "conformance", "passed")
	b := write("b", 2, "conformance", "passed")
	c := write("c", 3, "conformance", "failed")
	chaos := write("chaos", 4, "chaos", "passed")
	for _, tc := range []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"same outcomes, other seed", []string{a, b}, "same outcomes: verdict Conformant, 1 specs, 1 client outcomes (seeds 1 and 2)", ""},
		{"a client's outcome differs", []string{a, c}, "IDH-CONF-0001 raw: passed → failed", "1 outcomes differ"},
		{"another suite", []string{a, chaos}, "", "compare reports of the same suite"},
		{"one argument", []string{a}, "", "accepts 2 arg(s)"},
		{"no report there", []string{a, filepath.Join(dir, "none")}, "", "no such report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newRootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"report", "compare"}, tc.args...))
			err := cmd.Execute()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("output %q, want it to say %q", out.String(), tc.wantOut)
			}
		})
	}
}
