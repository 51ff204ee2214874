package incluster

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// TestFrameRoundTrip: a report framed among progress lines comes back
// whole, and the progress lines pass through untouched; a log without a
// whole frame, or with a damaged one, gives no report.
func TestFrameRoundTrip(t *testing.T) {
	r := types.Report{SuiteDescription: "idharness conformance", SuiteSucceeded: true,
		SpecReports: types.SpecReports{{LeafNodeText: strings.Repeat("[IDH-CONF-0001] MUST answer ", 200), State: types.SpecStatePassed}}}
	var framed bytes.Buffer
	if err := WriteFrame(&framed, r); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(framed.String(), "\n") {
		if len(l) > frameWidth && !strings.HasPrefix(l, "---") {
			t.Fatalf("frame line of %d characters, want at most %d", len(l), frameWidth)
		}
	}
	frame := framed.String()
	for _, tc := range []struct {
		name, log string
		err       error
		pass      []string
	}{
		{"progress around", "• passed IDH-CONF-0001\n" + frame + "done\n", nil, []string{"• passed IDH-CONF-0001", "", "done"}},
		{"no frame", "• passed IDH-CONF-0001\n", errNoFrame, []string{"• passed IDH-CONF-0001"}},
		{"cut short", frame[:len(frame)/2], errNoFrame, nil},
		{"damaged", strings.Replace(frame, "\n", "\nAB\n", 3), errors.New("the runner's report"), nil},
		// The runner's exit error (standard error) landed inside the
		// frame in a failed in-cluster run, and the report was lost.
		{"a line of the other stream inside", strings.Replace(frame, "\n", "\nidharness: specs failed: the report is in the log above\n", 4), nil,
			append([]string{""}, slices.Repeat([]string{"idharness: specs failed: the report is in the log above"}, 4)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var passed []string
			got, err := ReadFrame(strings.NewReader(tc.log), func(l string) { passed = append(passed, l) })
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("ReadFrame: %v", err)
			case tc.err != nil && (err == nil || !strings.Contains(err.Error(), tc.err.Error())):
				t.Fatalf("ReadFrame error %v, want %v", err, tc.err)
			}
			if tc.err == nil && (got.SuiteDescription != r.SuiteDescription || len(got.SpecReports) != 1 || got.SpecReports[0].LeafNodeText != r.SpecReports[0].LeafNodeText) {
				t.Errorf("report %+v, want %+v", got, r)
			}
			if tc.pass != nil && strings.Join(passed, "|") != strings.Join(tc.pass, "|") {
				t.Errorf("passed lines %q, want %q", passed, tc.pass)
			}
		})
	}
}
