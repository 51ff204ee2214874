package chaos

import (
	"strings"
	"testing"

	"github.com/idharness/idharness/pkg/report"
	"github.com/idharness/idharness/suites/framework"
)

// TestHostless: a run inside the cluster leaves out
// exactly the specs whose scenario needs it, saying why; any other run
// leaves out none.
func TestHostless(t *testing.T) {
	// As internal/scenario's TestNeedsHost: the machine behind a node, or
	// rights the in-cluster runner's role does not grant.
	needs := map[string]bool{"podidentity-apiserver-partition": true, "podidentity-node-restart": true,
		"wi-reinvocation": true, "wi-slow-webhook-fail": true, "wi-slow-webhook-ignore": true, "wi-token-rotation-fast": true}
	specs := shippedSpecs()
	for _, tc := range []struct {
		noHost string
		want   func(id string) bool
	}{
		{"", func(string) bool { return false }},
		{"the run is a pod", func(id string) bool { return needs[id] }},
	} {
		for _, s := range specs {
			got := hostless(tc.noHost, s)
			if (got != "") != tc.want(s.ID) {
				t.Errorf("noHost %q, %s: hostless = %q", tc.noHost, s.ID, got)
			}
			if got != "" && (!strings.Contains(got, tc.noHost) || !strings.Contains(got, s.File())) {
				t.Errorf("hostless(%s) = %q: want the reason %q and the file", s.ID, got, tc.noHost)
			}
		}
	}
}

// TestNotApplicable: with a vendor's workload identity webhook under
// test (the input that used to fail them), the specs that reach the
// reference webhook's test paths are skipped as not applicable, with
// the reason and file; with the reference webhook, or a stack that does
// not say, none is. The report then lists them among the MUST specs
// that did not run: Partial, with no MUST failure, never Conformant.
func TestNotApplicable(t *testing.T) {
	reference := map[string]bool{"wi-reinvocation": true, "wi-slow-webhook-fail": true, "wi-slow-webhook-ignore": true}
	specs := shippedSpecs()
	for _, webhook := range []string{"", framework.WIWebhookReference, "acme-wi"} {
		rep := &report.Report{Claims: []string{"workload-identity"}}
		for _, s := range specs {
			got := unplayable("", webhook, s)
			want := webhook == "acme-wi" && reference[s.ID]
			if (got != "") != want {
				t.Errorf("webhook %q, %s: unplayable = %q", webhook, s.ID, got)
			}
			if want && (!strings.HasPrefix(got, "not applicable to this implementation: "+s.File()+": ") || !strings.Contains(got, "acme-wi's")) {
				t.Errorf("%s: reason %q, want it to say not applicable, with the file and the webhook", s.ID, got)
			}
			sp := report.Spec{ID: s.Spec.ID, Level: s.Spec.Level, Labels: s.Spec.Labels, State: report.Passed}
			if got != "" {
				sp.State, sp.Failure = report.Skipped, got
			}
			rep.Specs = append(rep.Specs, sp)
		}
		rep.Finalize()
		wantVerdict := report.VerdictConformant
		if webhook == "acme-wi" {
			wantVerdict = report.VerdictPartial
		}
		if rep.Verdict != wantVerdict || rep.Summary.MustFailed != 0 {
			t.Errorf("webhook %q: verdict %s with %d MUST failures, want %s with none", webhook, rep.Verdict, rep.Summary.MustFailed, wantVerdict)
		}
		if webhook == "acme-wi" && len(rep.Unrun) != len(reference) {
			t.Errorf("specs not run: %+v, want the %d that need the reference webhook", rep.Unrun, len(reference))
		}
	}
}
