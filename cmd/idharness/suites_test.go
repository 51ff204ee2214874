package main

import (
	"testing"

	"github.com/idharness/idharness/internal/report"
)

func TestSuiteLabelFilter(t *testing.T) {
	for _, tt := range []struct {
		suite, user, want string
		wantErr           bool
	}{
		{"conformance", "", "conformance", false},
		{"chaos", "", "chaos", false},
		{"chaos", "status-429 || refuse", "chaos && (status-429 || refuse)", false},
		{"conformance", "  ", "conformance", false},
		{"soak", "", "", true},
	} {
		got, err := suiteLabelFilter(tt.suite, tt.user)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("suiteLabelFilter(%q, %q) = %q, %v; want %q, error %v", tt.suite, tt.user, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOnlySuite(t *testing.T) {
	rep := &report.Report{Specs: []report.Spec{
		{ID: "IDH-CONF-0001", Labels: []string{"conformance", "MUST"}, State: report.Skipped},
		{ID: "IDH-CHAOS-0001", Labels: []string{"imds", "chaos"}, State: report.Passed},
		{ID: "IDH-CHAOS-0002", Labels: []string{"chaos"}, State: report.Failed},
	}}
	onlySuite(rep, "chaos")
	if len(rep.Specs) != 2 || rep.Specs[0].ID != "IDH-CHAOS-0001" || rep.Summary.Skipped != 0 || rep.Summary.Total != 2 {
		t.Errorf("onlySuite kept %+v, summary %+v", rep.Specs, rep.Summary)
	}
}
