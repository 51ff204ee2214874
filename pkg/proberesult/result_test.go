package proberesult

import (
	"encoding/json"
	"testing"
	"time"
)

// A Result and a Summary written as the probe writes them come back
// from ParseLine as what they are, and Add counts what the summary says.
func TestParseLineRoundTrip(t *testing.T) {
	ok := Result{Time: time.Unix(1_800_000_000, 0).UTC(), Client: "msal-mi", Mode: "imds", Attempt: 1,
		IdentityAsked: "system", IdentityGot: "oid-a", Status: StatusOK, LatencyMs: Millis(12 * time.Millisecond), Requests: 1}
	failed := Result{Client: "raw", Mode: "imds", Attempt: 1, Status: StatusError, Stage: StageToken, Error: "400", Requests: RequestsUnmeasured}
	sum := Summary{Summary: true, Mode: "imds", Rounds: 1}
	for _, r := range []Result{ok, failed} {
		sum.Add(r)
	}
	if sum.Attempts != 2 || sum.OK != 1 || sum.Errors != 1 || sum.Clients["msal-mi"].Identities["oid-a"] != 1 {
		t.Fatalf("summary %+v, want 2 attempts, 1 ok, 1 error, one token for oid-a", sum)
	}
	for _, tc := range []struct {
		name string
		v    any
		want func(Line) bool
	}{
		{"result", ok, func(l Line) bool {
			return l.Summary == nil && l.OK() && l.IdentityGot == "oid-a" && l.LatencyMs == ok.LatencyMs
		}},
		{"failed result", failed, func(l Line) bool { return l.Summary == nil && !l.OK() && l.Requests == RequestsUnmeasured }},
		{"summary", sum, func(l Line) bool { return l.Summary != nil && l.Summary.Errors == 1 && l.Client == "" }},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ParseLine(b)
		if err != nil || !tc.want(l) {
			t.Errorf("%s: ParseLine(%s) = %+v, %v", tc.name, b, l, err)
		}
	}
	if _, err := ParseLine([]byte("I1203 klog noise")); err == nil {
		t.Error("ParseLine accepted a line that is not JSON")
	}
}
