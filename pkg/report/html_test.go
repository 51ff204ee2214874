package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleTimeline() Timeline {
	up := Seconds(12.5)
	gave := Seconds(1.1)
	return Timeline{
		Start: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC),
		Buckets: []Bucket{
			{Second: 0, Status: map[string]int{"200": 3}},
			{Second: 1, Status: map[string]int{"410": 4, "0": 1}, MaxLatencyMs: 1200, Faulted: 4},
			{Second: 2, Status: map[string]int{"200": 2}, MaxLatencyMs: 3},
		},
		Faults: []FaultWindow{{Name: "imds-updating-<20s>", Kind: "imds-updating", From: 1, To: 2}},
		Clients: []Resilience{
			{Client: "azidentity-mi", Verdict: Passed, Attempts: 3, OK: 3, Requests: 5, RecoveredAfter: &up, Recovered: true},
			{Client: "raw", Verdict: "finding", Attempts: 3, OK: 1, Requests: 3, GaveUpAfter: &gave, Recovered: false},
		},
	}
}

func TestTimelineEvidenceRoundTrip(t *testing.T) {
	tl := sampleTimeline()
	body, err := tl.EvidenceEntry()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		evidence []string
		want     bool
	}{
		{"timeline", []string{"probe x:\nlines", TimelineEvidence + ":\n" + body}, true},
		{"none", []string{"probe x:\nlines"}, false},
		{"broken json", []string{TimelineEvidence + ":\n{"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTimeline(Spec{Evidence: tt.evidence})
			if ok != tt.want {
				t.Fatalf("ok = %v, want %v", ok, tt.want)
			}
			if ok && (len(got.Buckets) != 3 || got.Clients[0].Client != "azidentity-mi" || *got.Clients[0].RecoveredAfter != 12.5) {
				t.Errorf("round trip lost data: %+v", got)
			}
		})
	}
}

func TestTimelineSVGIsWellFormed(t *testing.T) {
	for _, tt := range []struct {
		name string
		tl   Timeline
	}{
		{"sample", sampleTimeline()},
		{"empty", Timeline{}},
		{"open fault", Timeline{Faults: []FaultWindow{{Name: "x", Kind: "latency", From: 0}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svg := TimelineSVG(tt.tl)
			d := xml.NewDecoder(strings.NewReader(svg))
			for {
				_, err := d.Token()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("not well-formed XML: %v\n%s", err, svg)
					}
					break
				}
			}
			if !strings.HasPrefix(svg, "<svg") {
				t.Errorf("does not start with <svg: %.40s", svg)
			}
		})
	}
}

func TestWriteHTML(t *testing.T) {
	body, _ := sampleTimeline().EvidenceEntry()
	r := &Report{Suite: "chaos", Seed: 7, Specs: []Spec{
		{ID: "IDH-CHAOS-0002", Level: MUST, Statement: "a client <retries>", State: Passed, Evidence: []string{TimelineEvidence + ":\n" + body}},
		{ID: "IDH-CHAOS-0009", Level: SHOULD, Statement: "no timeline", State: Failed, Failure: "boom"},
	}}
	dir := t.TempDir()
	if err := r.WriteHTML(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{"<svg", "a client &lt;retries&gt;", "imds-updating-&lt;20s&gt;", "<td>azidentity-mi</td>", "12.5 s", "never", "boom", "Seed 7"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// The other outputs do not change with a timeline: Markdown shows no
	// evidence, and WriteDir writes no HTML.
	if strings.Contains(r.Markdown(), "<svg") {
		t.Error("summary.md got the chart")
	}
	dir2 := t.TempDir()
	if err := r.WriteDir(dir2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "report.html")); !os.IsNotExist(err) {
		t.Errorf("WriteDir wrote report.html (err %v)", err)
	}
}
