package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimelineEvidence names the evidence entry that carries a spec's
// Timeline as JSON ("idharness-timeline:\n{…}"). The timeline travels as
// evidence so that report.json holds it and the Spec type, JUnit and
// Markdown outputs stay as they are; HTML draws it.
const TimelineEvidence = "idharness-timeline"

// Timeline is what a chaos spec's workload did, second by second, as the
// fake metadata service saw it, plus how each client coped.
type Timeline struct {
	// Start is second 0 of the buckets and of the fault windows.
	Start time.Time `json:"start"`
	// Buckets has one entry per second from Start.
	Buckets []Bucket `json:"buckets"`
	// Faults are the fault windows the spec injected.
	Faults []FaultWindow `json:"faults,omitempty"`
	// Clients is the per-client resilience matrix.
	Clients []Resilience `json:"clients,omitempty"`
}

// Bucket counts the requests of one second.
type Bucket struct {
	// Second is the offset from the timeline's start.
	Second int `json:"second"`
	// Status counts requests by HTTP status ("200", "410"; "0" for a
	// request that got no answer: reset, refused, hung up).
	Status map[string]int `json:"status"`
	// MaxLatencyMs is the slowest answer of the second.
	MaxLatencyMs float64 `json:"maxLatencyMs,omitempty"`
	// Faulted counts the requests a fault rule hit.
	Faulted int `json:"faulted,omitempty"`
}

// Total is the number of requests in the bucket.
func (b Bucket) Total() int {
	n := 0
	for _, v := range b.Status {
		n += v
	}
	return n
}

// FaultWindow is when one injected fault was active, in seconds from the
// timeline's start; To is zero when it lasted to the end.
type FaultWindow struct {
	Name string  `json:"name"`
	Kind string  `json:"kind"`
	From Seconds `json:"from"`
	To   Seconds `json:"to,omitempty"`
}

// Resilience is one client's row of the resilience matrix.
type Resilience struct {
	Client string `json:"client"`
	// Verdict is the spec's verdict for the client (passed, failed,
	// finding, recorded).
	Verdict  string `json:"verdict"`
	Attempts int    `json:"attempts"`
	OK       int    `json:"ok"`
	// Requests is the number of HTTP requests the client sent, retries
	// and probes included.
	Requests int `json:"requests"`
	// GaveUpAfter is how long the client's first failed call ran before
	// it returned the error; nil when no call failed.
	GaveUpAfter *Seconds `json:"gaveUpAfter,omitempty"`
	// RecoveredAfter is from the end of the fault to the end of the
	// client's first successful call after it; nil when the client was
	// never affected or never recovered (see Recovered).
	RecoveredAfter *Seconds `json:"recoveredAfter,omitempty"`
	// Recovered is false when the client was affected and had no token
	// after the fault by the end of the spec.
	Recovered bool `json:"recovered"`
	// Note says in a few words what the client did.
	Note string `json:"note,omitempty"`
}

// EvidenceEntry renders t as the evidence entry named TimelineEvidence,
// the form ParseTimeline reads back.
func (t Timeline) EvidenceEntry() (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode timeline: %w", err)
	}
	return string(b), nil
}

// ParseTimeline returns the timeline among a spec's evidence, if any.
func ParseTimeline(sp Spec) (*Timeline, bool) {
	for _, e := range sp.Evidence {
		body, ok := strings.CutPrefix(e, TimelineEvidence+":\n")
		if !ok {
			continue
		}
		var t Timeline
		if json.Unmarshal([]byte(body), &t) == nil {
			return &t, true
		}
	}
	return nil, false
}

// WriteHTML writes report.html into dir: the summary, and for each spec
// with a timeline an inline SVG chart and the resilience matrix.
func (r *Report) WriteHTML(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	s, err := r.HTML()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte(s), 0o644); err != nil {
		return fmt.Errorf("write report.html: %w", err)
	}
	return nil
}

type htmlSpec struct {
	Spec
	Timeline *Timeline
	SVG      template.HTML
}

// HTML renders the report as one self-contained HTML page.
func (r *Report) HTML() (string, error) {
	r.Finalize()
	var specs []htmlSpec
	for _, sp := range r.Specs {
		h := htmlSpec{Spec: sp}
		if t, ok := ParseTimeline(sp); ok {
			h.Timeline = t
			h.SVG = template.HTML(TimelineSVG(*t)) //nolint:gosec // built by TimelineSVG from numbers and escaped names.
		}
		specs = append(specs, h)
	}
	var b strings.Builder
	err := htmlPage.Execute(&b, struct {
		*Report
		Specs []htmlSpec
	}{r, specs})
	if err != nil {
		return "", fmt.Errorf("render report.html: %w", err)
	}
	return b.String(), nil
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"secs": func(s *Seconds) string {
		if s == nil {
			return "—"
		}
		return strconv.FormatFloat(float64(*s), 'f', 1, 64) + " s"
	},
	"f1":   func(s Seconds) string { return strconv.FormatFloat(float64(s), 'f', 1, 64) },
	"when": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>idharness {{.Suite}} report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td.n{text-align:right}.passed{color:#1a7f37}.failed{color:#cf222e;font-weight:bold}.finding{color:#9a6700}.skipped,.recorded{color:#57606a}
pre{background:#f6f8fa;padding:.5em;overflow:auto;max-height:20em}
</style></head><body>
<h1>idharness {{.Suite}} report</h1>
<p><b>{{.Verdict}}</b> — {{.Summary.Passed}} passed, {{.Summary.Failed}} failed ({{.Summary.MustFailed}} MUST), {{.Summary.Skipped}} skipped of {{.Summary.Total}} specs.
Seed {{.Seed}}{{if .Cluster}}, cluster {{.Cluster}}{{end}}, started {{when .StartedAt}}, took {{f1 .Duration}} s.</p>
<table><tr><th>spec</th><th>level</th><th>statement</th><th>result</th><th>seconds</th></tr>
{{range .Specs}}<tr><td><a href="#{{.ID}}">{{.ID}}</a></td><td>{{.Level}}</td><td>{{.Statement}}</td><td class="{{.State}}">{{.State}}</td><td class="n">{{f1 .Duration}}</td></tr>
{{end}}</table>
{{range .Specs}}<h2 id="{{.ID}}">{{.ID}} <span class="{{.State}}">{{.State}}</span></h2>
<p>{{.Level}} {{.Statement}}{{if .Labels}} <small>[{{range $i, $l := .Labels}}{{if $i}}, {{end}}{{$l}}{{end}}]</small>{{end}}</p>
{{if .Failure}}<pre>{{.Failure}}</pre>{{end}}
{{.SVG}}
{{with .Timeline}}{{if .Clients}}<table><tr><th>client</th><th>verdict</th><th>attempts</th><th>ok</th><th>requests sent</th><th>gave up after</th><th>recovered after</th><th>note</th></tr>
{{range .Clients}}<tr><td>{{.Client}}</td><td class="{{.Verdict}}">{{.Verdict}}</td><td class="n">{{.Attempts}}</td><td class="n">{{.OK}}</td><td class="n">{{.Requests}}</td><td class="n">{{secs .GaveUpAfter}}</td><td class="n">{{if and .RecoveredAfter .Recovered}}{{secs .RecoveredAfter}}{{else if .Recovered}}—{{else}}never{{end}}</td><td>{{.Note}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{end}}</body></html>
`))

// statusColors tells apart the statuses chaos specs inject; statusColor
// falls back on the status class.
var statusColors = map[string]string{
	"200": "#2da44e", "0": "#6e7781", "400": "#ffb77c", "404": "#fb8f44", "410": "#bc4c00",
	"429": "#bf8700", "500": "#cf222e", "503": "#a40e26",
}

func statusColor(status string) string {
	if c, ok := statusColors[status]; ok {
		return c
	}
	switch {
	case strings.HasPrefix(status, "4"):
		return "#e16f24"
	case strings.HasPrefix(status, "5"):
		return "#ff8182"
	}
	return "#8250df"
}

// TimelineSVG draws a timeline: requests per second as bars stacked by
// status, the fault windows as shaded bands, the slowest answer of each
// second as a line (right axis), and a legend.
func TimelineSVG(t Timeline) string {
	const (
		w, h          = 720, 220
		left, right   = 40, 50
		top, bottom   = 24, 40
		plotW, plotH  = w - left - right, h - top - bottom
		legendYOffset = 14
	)
	n := len(t.Buckets)
	for _, f := range t.Faults {
		if e := int(float64(f.To) + 0.999); e > n {
			n = e
		}
	}
	if n == 0 {
		n = 1
	}
	maxReq, maxLat := 1, 1.0
	statuses := map[string]bool{}
	for _, b := range t.Buckets {
		maxReq = max(maxReq, b.Total())
		maxLat = max(maxLat, b.MaxLatencyMs)
		for s := range b.Status {
			statuses[s] = true
		}
	}
	order := make([]string, 0, len(statuses))
	for s := range statuses {
		order = append(order, s)
	}
	sort.Strings(order)
	bw := float64(plotW) / float64(n)
	x := func(sec float64) float64 { return left + sec*bw }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="10">`, w, h, w, h)
	for i, f := range t.Faults {
		to := float64(f.To)
		if to == 0 {
			to = float64(n)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#d0d7de" fill-opacity="0.5"><title>%s (%s) %.1f–%.1f s</title></rect>`,
			x(float64(f.From)), top, max(1, x(to)-x(float64(f.From))), plotH, template.HTMLEscapeString(f.Name), template.HTMLEscapeString(f.Kind), float64(f.From), to)
		// Labels of overlapping windows go on separate lines.
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#57606a">%s</text>`, x(float64(f.From))+2, top-8+(i%2)*10, template.HTMLEscapeString(f.Kind))
	}
	for _, bk := range t.Buckets {
		y := float64(top + plotH)
		for _, s := range order {
			c := bk.Status[s]
			if c == 0 {
				continue
			}
			bh := float64(c) / float64(maxReq) * plotH
			y -= bh
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d s: %d × %s</title></rect>`,
				x(float64(bk.Second))+0.5, y, max(bw-1, 0.5), bh, statusColor(s), bk.Second, c, s)
		}
	}
	// The latency line breaks at seconds without requests, so that an
	// outage is not drawn as a slope.
	var pts []string
	flush := func() {
		switch len(pts) {
		case 0:
		case 1:
			xy := strings.Split(pts[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="1.5" fill="#0969da"/>`, xy[0], xy[1])
		default:
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#0969da" stroke-width="1.5"/>`, strings.Join(pts, " "))
		}
		pts = pts[:0]
	}
	for _, bk := range t.Buckets {
		if bk.Total() == 0 {
			flush()
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(bk.Second)+0.5), float64(top+plotH)-bk.MaxLatencyMs/maxLat*plotH))
	}
	flush()
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#57606a"/>`, left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<text x="2" y="%d">%d/s</text><text x="2" y="%d">0</text>`, top+8, maxReq, top+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#0969da">%.0f ms</text>`, left+plotW+4, top+8, maxLat)
	for s := 0; s <= n; s += max(1, n/10) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%ds</text>`, x(float64(s)), top+plotH+12, s)
	}
	lx := float64(left)
	for _, s := range order {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="10" height="10" fill="%s"/><text x="%.1f" y="%d">%s</text>`, lx, h-legendYOffset, statusColor(s), lx+13, h-legendYOffset+9, statusLabel(s))
		lx += 70
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#0969da"/><text x="%.1f" y="%d">max latency</text>`, lx, h-legendYOffset+5, lx+12, h-legendYOffset+5, lx+15, h-legendYOffset+9)
	b.WriteString(`</svg>`)
	return b.String()
}

func statusLabel(s string) string {
	if s == "0" {
		return "no answer"
	}
	return s
}
