package publicapi

import (
	"testing"

	"github.com/idharness/idharness/pkg/escape"
	"github.com/idharness/idharness/pkg/proberesult"
)

// TestJudgeProbeOutput judges the probe's output lines as a suite of
// another module judges the ProbeRun that suites/framework hands it:
// result lines by pkg/proberesult's types, escape lines by pkg/escape's
// own rule.
func TestJudgeProbeOutput(t *testing.T) {
	l, err := proberesult.ParseLine([]byte(`{"client":"msal-mi","mode":"imds","attempt":1,"status":"error","stage":"token","error":"no identity","requests":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if l.Summary != nil || l.OK() || l.Stage != proberesult.StageToken {
		t.Errorf("line %+v: want a failed token attempt", l)
	}
	foreign := escape.Result{Escape: "path variant", Kind: escape.KindToken, Addr: escape.MetadataAddr, Status: 200, Token: true, OID: "someone-else"}
	if escape.Violation(foreign, "mine") == "" {
		t.Error("a token for another identity is not a violation")
	}
	if v := escape.Violation(escape.Result{Escape: "control", Kind: escape.KindControl, Status: 403}, ""); v != "" {
		t.Errorf("a refused control call is a violation: %s", v)
	}
}
