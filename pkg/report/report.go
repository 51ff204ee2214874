// Package report is the one results model of an idharness run and its
// output formats: JSON (machine-readable, with evidence), JUnit XML (for
// CI) and a Markdown summary with the spec × client matrix and the
// conformance verdict.
//
// It is public because report.json is: a versioned format
// (SchemaVersion) that other programs read, and suites/framework hands
// other modules a *Report (ToReport). Its types are that format's
// definition, so a reader decodes report.json into them rather than
// into a copy of its own.
package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// The spec states.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// The conformance levels.
const (
	MUST   = "MUST"
	SHOULD = "SHOULD"
)

// SchemaVersion is the version of report.json's format, which every
// report states: it is raised when a field changes meaning or goes away,
// not when one is added.
const SchemaVersion = 1

// Report is the result of one run.
type Report struct {
	// SchemaVersion is the format's (the SchemaVersion constant).
	SchemaVersion int `json:"schemaVersion"`
	// SpecSet is the version of the spec set the run judged by (the
	// conformance suite's SpecSetVersion).
	SpecSet string `json:"specSet,omitempty"`
	// Version is the version of idharness that ran (`idharness
	// version`: a release's git tag, or the commit of a build from
	// source), so that a verdict names the harness that gave it.
	Version string `json:"idharnessVersion,omitempty"`
	Suite   string `json:"suite"`
	Profile string `json:"profile,omitempty"`
	// Implementation is the implementation under test when it was
	// declared as data (--sut, or a profile's first declaration).
	Implementation *Implementation `json:"implementation,omitempty"`
	// Companions are the implementations declared as data that the run
	// deployed beside it (the reference workload identity webhook, say):
	// recorded, but the verdict covers Claims, as for Implementation.
	Companions []Implementation `json:"companions,omitempty"`
	Seed       int64            `json:"seed"`
	Cluster    string           `json:"cluster,omitempty"`
	StartedAt  time.Time        `json:"startedAt"`
	Duration   Seconds          `json:"durationSeconds"`
	Phases     []Phase          `json:"phases,omitempty"`
	Specs      []Spec           `json:"specs"`
	Summary    Summary          `json:"summary"`
	// Images are idharness's own images (programs and clients) as the
	// run deployed them from a registry (--image-registry): Ref is the
	// digest reference the pods ran, ID the config digest; the
	// implementation's images are under Implementation alike.
	Images []Image `json:"images,omitempty"`
	// Claims are the identity modes the implementation under test claims
	// (its profile's): a spec labelled with modes is in scope when one of
	// them is claimed; a spec without mode labels always is. Empty claims
	// every mode.
	Claims []string `json:"claims,omitempty"`
	// Unrun lists the MUST specs in scope that did not run — left out by
	// a label filter or focus, or skipped for a missing node — and why.
	Unrun []Unrun `json:"unrun,omitempty"`
	// Verdict is VerdictConformant when every MUST spec in scope ran and
	// passed, VerdictPartial when none failed but some did not run,
	// VerdictNotConformant when one failed.
	Verdict string `json:"verdict"`
}

// Implementation identifies an implementation under test declared as
// data: what it says it is and the images that ran, by ID.
type Implementation struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	URL     string `json:"url,omitempty"`
	File    string `json:"file"`
	// Claims are the modes its declaration claims (the run's claims are
	// Report.Claims).
	Claims []string `json:"claims,omitempty"`
	Images []Image  `json:"images,omitempty"`
}

// Image is one of an implementation's images: its name in the file, its
// reference and its ID (the digest of its configuration).
type Image struct {
	Name string `json:"name"`
	Ref  string `json:"ref"`
	ID   string `json:"id"`
}

// Unrun is a MUST spec in scope that did not run.
type Unrun struct {
	ID string `json:"id"`
	// Why is the spec's skip message, or that no filter selected it.
	Why string `json:"why"`
}

// The verdicts.
const (
	VerdictConformant    = "Conformant"
	VerdictPartial       = "Partial"
	VerdictNotConformant = "Not conformant"
	VerdictNone          = "No verdict: no spec ran"
)

// modeLabels maps the spec labels that name an identity mode to the mode
// a profile claims: chaos specs say imds-mode where conformance specs
// say imds.
var modeLabels = map[string]string{
	"imds": "imds", "imds-mode": "imds", "pod-identity": "pod-identity",
	"workload-identity": "workload-identity", "app-service": "app-service",
}

// Modes returns the identity modes a spec's labels name.
func Modes(labels []string) []string {
	var out []string
	for _, l := range labels {
		if m, ok := modeLabels[l]; ok {
			out = append(out, m)
		}
	}
	return out
}

// InScope reports whether sp is among the specs r's claims cover.
func (r *Report) InScope(sp Spec) bool {
	modes := Modes(sp.Labels)
	if len(r.Claims) == 0 || len(modes) == 0 {
		return true
	}
	for _, m := range modes {
		if slices.Contains(r.Claims, m) {
			return true
		}
	}
	return false
}

// Seconds is a duration written as seconds.
type Seconds float64

// Phase is one timed step of the run.
type Phase struct {
	Name     string  `json:"name"`
	Duration Seconds `json:"durationSeconds"`
	Error    string  `json:"error,omitempty"`
}

// Spec is one spec's outcome.
type Spec struct {
	// ID is the stable spec ID, e.g. IDH-CONF-0001.
	ID string `json:"id"`
	// Level is MUST or SHOULD.
	Level string `json:"level"`
	// Statement is the one-line requirement.
	Statement string   `json:"statement"`
	Labels    []string `json:"labels,omitempty"`
	State     string   `json:"state"`
	Duration  Seconds  `json:"durationSeconds"`
	Failure   string   `json:"failure,omitempty"`
	Location  string   `json:"location,omitempty"`
	// Clients is the per-client outcome (client → passed/failed) for the
	// spec × client matrix.
	Clients map[string]string `json:"clients,omitempty"`
	// Evidence holds what the verdict rests on: probe lines, journal
	// extracts.
	Evidence []string `json:"evidence,omitempty"`
}

// Summary counts the specs.
type Summary struct {
	Total        int `json:"total"`
	Passed       int `json:"passed"`
	Failed       int `json:"failed"`
	Skipped      int `json:"skipped"`
	MustFailed   int `json:"mustFailed"`
	ShouldFailed int `json:"shouldFailed"`
}

// Finalize computes the summary and the verdict.
func (r *Report) Finalize() {
	s := Summary{Total: len(r.Specs)}
	for _, sp := range r.Specs {
		switch sp.State {
		case Passed:
			s.Passed++
		case Failed:
			s.Failed++
			if sp.Level == SHOULD {
				s.ShouldFailed++
			} else {
				s.MustFailed++
			}
		default:
			s.Skipped++
		}
	}
	r.Summary = s
	r.SchemaVersion = SchemaVersion
	r.Unrun = nil
	for _, sp := range r.Specs {
		if sp.Level == MUST && sp.State != Passed && sp.State != Failed && r.InScope(sp) {
			why := firstLine(sp.Failure)
			if why == "" {
				why = "not selected (label filter or focus)"
			}
			r.Unrun = append(r.Unrun, Unrun{ID: sp.ID, Why: why})
		}
	}
	switch {
	case s.Passed+s.Failed == 0:
		r.Verdict = VerdictNone
	case s.MustFailed > 0:
		r.Verdict = VerdictNotConformant
	case len(r.Unrun) > 0:
		r.Verdict = VerdictPartial
	default:
		r.Verdict = VerdictConformant
	}
}

// WriteDir writes report.json, junit.xml and summary.md into dir.
func (r *Report) WriteDir(dir string) error {
	r.Finalize()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}
	x, err := r.JUnit()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "junit.xml"), x, 0o644); err != nil {
		return fmt.Errorf("write junit.xml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write summary.md: %w", err)
	}
	return nil
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       float64         `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// JUnit renders the report as JUnit XML, one test case per spec named
// "[ID] LEVEL statement".
func (r *Report) JUnit() ([]byte, error) {
	r.Finalize()
	s := junitSuite{Name: "idharness " + r.Suite, Tests: r.Summary.Total, Failures: r.Summary.Failed, Skipped: r.Summary.Skipped,
		Time: float64(r.Duration), Timestamp: r.StartedAt.UTC().Format(time.RFC3339),
		Properties: []junitProperty{{"seed", fmt.Sprint(r.Seed)}, {"verdict", r.Verdict}, {"profile", r.Profile}, {"specSet", r.SpecSet}, {"idharnessVersion", r.Version}}}
	for _, sp := range r.Specs {
		c := junitCase{Name: fmt.Sprintf("[%s] %s %s", sp.ID, sp.Level, sp.Statement), Classname: r.Suite, Time: float64(sp.Duration),
			SystemOut: strings.Join(sp.Evidence, "\n")}
		switch sp.State {
		case Failed:
			c.Failure = &junitMessage{Message: firstLine(sp.Failure), Body: sp.Failure + "\n" + sp.Location}
		case Skipped:
			c.Skipped = &junitMessage{Message: firstLine(sp.Failure)}
		}
		s.Cases = append(s.Cases, c)
	}
	out, err := xml.MarshalIndent(junitSuites{Name: "idharness", Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Time: s.Time, Suites: []junitSuite{s}}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode junit: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Markdown renders the summary: verdict, counts, phases, the spec ×
// client matrix and the failures.
func (r *Report) Markdown() string {
	r.Finalize()
	var b strings.Builder
	fmt.Fprintf(&b, "# idharness %s report\n\n", r.Suite)
	fmt.Fprintf(&b, "**Verdict: %s** — %d passed, %d failed (%d MUST, %d SHOULD), %d skipped of %d specs.\n\n",
		r.Verdict, r.Summary.Passed, r.Summary.Failed, r.Summary.MustFailed, r.Summary.ShouldFailed, r.Summary.Skipped, r.Summary.Total)
	if len(r.Unrun) > 0 {
		fmt.Fprintf(&b, "Partial: %d MUST specs in scope did not run, so the run cannot say Conformant:\n\n", len(r.Unrun))
		for _, u := range r.Unrun {
			fmt.Fprintf(&b, "- %s: %s\n", u.ID, mdEscape(u.Why))
		}
		b.WriteString("\n")
	}
	if r.Version != "" {
		fmt.Fprintf(&b, "idharness %s. ", r.Version)
	}
	if r.SpecSet != "" {
		fmt.Fprintf(&b, "Spec set %s. ", r.SpecSet)
	}
	fmt.Fprintf(&b, "Seed %d", r.Seed)
	if r.Profile != "" {
		fmt.Fprintf(&b, ", profile %s", r.Profile)
		if len(r.Claims) > 0 {
			fmt.Fprintf(&b, " (claims %s)", strings.Join(r.Claims, ", "))
		}
	}
	if r.Cluster != "" {
		fmt.Fprintf(&b, ", cluster %s", r.Cluster)
	}
	fmt.Fprintf(&b, ", started %s, took %.1fs.\n\n", r.StartedAt.UTC().Format(time.RFC3339), float64(r.Duration))
	if im := r.Implementation; im != nil {
		fmt.Fprintf(&b, "Implementation under test: **%s** %s", mdEscape(im.Name), mdEscape(im.Version))
		if im.Vendor != "" {
			fmt.Fprintf(&b, " by %s", mdEscape(im.Vendor))
		}
		if im.URL != "" {
			fmt.Fprintf(&b, " (%s)", mdEscape(im.URL))
		}
		fmt.Fprintf(&b, ", from `%s`, claims %s.\n\n", im.File, strings.Join(r.Claims, ", "))
		for _, i := range im.Images {
			fmt.Fprintf(&b, "- image %s: `%s` (%s)\n", mdEscape(i.Name), i.Ref, i.ID)
		}
		if len(im.Images) > 0 {
			b.WriteString("\n")
		}
	}
	for _, c := range r.Companions {
		name := "**" + mdEscape(c.Name) + "**"
		if c.Version != "" {
			name += " " + mdEscape(c.Version)
		}
		fmt.Fprintf(&b, "Deployed beside it: %s, from `%s`, claims %s.\n\n", name, c.File, strings.Join(c.Claims, ", "))
	}
	for _, i := range r.Images {
		fmt.Fprintf(&b, "- image %s: `%s` (%s)\n", mdEscape(i.Name), i.Ref, i.ID)
	}
	if len(r.Images) > 0 {
		b.WriteString("\n")
	}
	if len(r.Phases) > 0 {
		b.WriteString("| phase | seconds | |\n|---|---:|---|\n")
		for _, p := range r.Phases {
			st := "ok"
			if p.Error != "" {
				st = "failed: " + p.Error
			}
			fmt.Fprintf(&b, "| %s | %.1f | %s |\n", p.Name, float64(p.Duration), mdEscape(st))
		}
		b.WriteString("\n")
	}
	clients := map[string]bool{}
	for _, sp := range r.Specs {
		for c := range sp.Clients {
			clients[c] = true
		}
	}
	cols := make([]string, 0, len(clients))
	for c := range clients {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	b.WriteString("| spec | level | statement | result |")
	for _, c := range cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|---|---|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, sp := range r.Specs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |", sp.ID, sp.Level, mdEscape(sp.Statement), mark(sp.State))
		for _, c := range cols {
			v, ok := sp.Clients[c]
			if !ok {
				b.WriteString(" |")
				continue
			}
			b.WriteString(" " + mark(v) + " |")
		}
		b.WriteString("\n")
	}
	var failed []Spec
	for _, sp := range r.Specs {
		if sp.State == Failed {
			failed = append(failed, sp)
		}
	}
	if len(failed) > 0 {
		b.WriteString("\n## Failures\n")
		for _, sp := range failed {
			fmt.Fprintf(&b, "\n### %s (%s) %s\n\n```\n%s\n```\n", sp.ID, sp.Level, sp.Statement, strings.TrimSpace(sp.Failure))
			if sp.Location != "" {
				fmt.Fprintf(&b, "at %s\n", sp.Location)
			}
		}
	}
	return b.String()
}

func mark(state string) string {
	switch state {
	case Passed:
		return "✅ pass"
	case Failed:
		return "❌ FAIL"
	case Skipped:
		return "⏭ skip"
	}
	return state
}

func mdEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
