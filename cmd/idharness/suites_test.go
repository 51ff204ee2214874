package main

import (
	"slices"
	"testing"

	"github.com/idharness/idharness/internal/sut"
	"github.com/idharness/idharness/pkg/report"
)

func TestSuiteLabelFilter(t *testing.T) {
	for _, tt := range []struct {
		suite, user, want string
		wantErr           bool
	}{
		{"conformance", "", "conformance", false},
		{"chaos", "", "(chaos && !conformance) && (!scheduled)", false},
		{"chaos", "scheduled", "(chaos && !conformance) && (scheduled)", false},
		{"chaos", "status-429 || refuse", "(chaos && !conformance) && (status-429 || refuse)", false},
		{"conformance", "  ", "conformance", false},
		{"soak", "", "", true},
		{"conformance", "MUST &&", "", true},
		{"chaos", "imds) || (refuse", "", true},
		{"chaos", "!", "", true},
		{"chaos", "/[/", "", true},
	} {
		got, err := suiteLabelFilter(tt.suite, tt.user)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("suiteLabelFilter(%q, %q) = %q, %v; want %q, error %v", tt.suite, tt.user, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestSUTLabelFilter: an implementation that intercepts every pod narrows
// a run to its claimed modes, always within the suite's own filter (a
// filter of the claims alone would let the chaos specs into a
// conformance run), and a user's filter wins.
func TestSUTLabelFilter(t *testing.T) {
	all, err := sut.Load("../../fixtures/sut/aad-pod-identity/sut.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		suite, user, want string
	}{
		{"conformance", "", "(conformance) && (pod-identity)"},
		{"chaos", "", "(chaos && !conformance) && ((pod-identity) && (!scheduled))"},
		{"conformance", "MUST", "(conformance) && (MUST)"},
	} {
		got, err := sutLabelFilter(tt.suite, tt.user, all)
		if err != nil || got != tt.want {
			t.Errorf("sutLabelFilter(%q, %q) = %q, %v; want %q", tt.suite, tt.user, got, err, tt.want)
		}
	}
}

func TestOnlySuite(t *testing.T) {
	specs := func() []report.Spec {
		return []report.Spec{
			{ID: "IDH-CONF-0001", Labels: []string{"conformance", "MUST"}, State: report.Skipped},
			{ID: "IDH-CONF-0108", Labels: []string{"conformance", "chaos"}, State: report.Passed},
			{ID: "IDH-CHAOS-0001", Labels: []string{"imds", "chaos"}, State: report.Passed},
			{ID: "IDH-CHAOS-0002", Labels: []string{"chaos"}, State: report.Failed},
		}
	}
	for _, tt := range []struct {
		suite   string
		wantIDs []string
	}{
		{"chaos", []string{"IDH-CHAOS-0001", "IDH-CHAOS-0002"}},
		{"conformance", []string{"IDH-CONF-0001", "IDH-CONF-0108"}},
	} {
		rep := &report.Report{Specs: specs()}
		onlySuite(rep, tt.suite)
		var got []string
		for _, sp := range rep.Specs {
			got = append(got, sp.ID)
		}
		if len(got) != len(tt.wantIDs) || got[0] != tt.wantIDs[0] || got[1] != tt.wantIDs[1] || rep.Summary.Total != 2 {
			t.Errorf("onlySuite(%s) kept %v (summary %+v), want %v", tt.suite, got, rep.Summary, tt.wantIDs)
		}
	}
}

// TestChaosClientPrograms checks the chaos suite's default
// --client-images: the programs its specs run (the token rotation specs
// run every language's workload identity client), never the az CLI,
// which none names.
func TestChaosClientPrograms(t *testing.T) {
	got, err := chaosClientPrograms()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"java-azure-identity", "node-azure-identity", "python-azure-identity"}
	if !slices.Equal(got, want) {
		t.Errorf("chaosClientPrograms() = %v, want %v", got, want)
	}
}
