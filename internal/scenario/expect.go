package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// Expectation is a condition on the run's attempts and requests, written
// inline: the common keys (kind, description, clients, finding) and the
// kind's own parameters, `{kind: recovers, step: outage, within: 15s}`.
// Each kind lives in a file of its own (expect_KIND.go) and registers
// itself with registerExpect; its parameters are decoded strictly into
// its struct, so that a parameter it does not take is an error.
type Expectation struct {
	// Kind names the registered kind (ExpectKinds).
	Kind string
	// Description replaces the generated description in the output.
	Description string
	// Clients limits the expectation to one workload client group; empty
	// is every client.
	Clients string
	// Finding, when set, records that real clients do not meet the
	// expectation and why: the run then expects it to fail, and passing
	// is reported as the finding no longer reproducing.
	Finding string
	// FindingOnlyWhen, with Finding, says in what setting alone the
	// finding reproduces (e.g. "IMDS itself answers the probe, with no
	// node agent in front of it"): then passing is a pass, not an
	// unexpected one, and the verdict notes the setting. Without it a
	// finding that does not reproduce fails the run.
	FindingOnlyWhen string
	// Params is the kind's parameters and behaviour; nil when the kind is
	// unknown.
	Params ExpectKind

	// invalid is the first decoding problem (an unknown kind, a parameter
	// the kind does not take, a bad value), kept for validate to report
	// at its exact line: an error from UnmarshalJSON could be located
	// only by searching the file for the value it quotes.
	invalid *fieldError
}

// ExpectKind is one kind of expectation: a struct whose fields are the
// kind's parameters, with the kind's behaviour.
type ExpectKind interface {
	// validate checks the parameters in the scenario; scope is the client
	// groups the expectation concerns. A *fieldError names a parameter
	// relative to the expectation ("within"); other errors concern the
	// expectation as a whole.
	validate(s *Scenario, scope []ClientGroup) error
	// describe says in words what must hold; who is "every client" or
	// "every GROUP client".
	describe(s *Scenario, who string) string
	// judge judges the run on cs, the clients in the expectation's scope
	// (never empty).
	judge(s *Scenario, r *Result, cs []*ClientResult) judgement
}

// requestCounter is implemented by kinds judged on the requests
// attributed to each client (rates, per-call counts, statuses, waits):
// a run whose requests could not be attributed fails instead of letting
// them judge nothing.
type requestCounter interface{ countsRequests() bool }

func (*Cached) countsRequests() bool            { return true }
func (*HonoursRetryAfter) countsRequests() bool { return true }
func (*MaxRate) countsRequests() bool           { return true }
func (*RequestsPerCall) countsRequests() bool   { return true }
func (*RetryBudget) countsRequests() bool       { return true }
func (*Statuses) countsRequests() bool          { return true }

// countsRequests reports whether an expectation of s is judged on
// attributed requests.
func (s *Scenario) countsRequests() bool {
	for _, e := range s.Expect {
		if rc, ok := e.Params.(requestCounter); ok && rc.countsRequests() {
			return true
		}
	}
	return false
}

// judgement is what a kind concludes about a run.
type judgement struct {
	held    bool
	detail  string
	clients []ClientVerdict
}

// expectKind is a registered kind of expectation.
type expectKind struct {
	name, summary string
	new           func() ExpectKind
}

// expectKinds is filled by init functions only, before any scenario is read.
var expectKinds = map[string]expectKind{}

// registerExpect registers a kind of expectation under its name; summary
// says in one line when it holds (it is the generated table's text). It
// panics on a duplicate: two files claiming one name is a bug.
func registerExpect(name, summary string, new func() ExpectKind) {
	if _, dup := expectKinds[name]; dup {
		panic("scenario: expectation kind " + name + " registered twice")
	}
	expectKinds[name] = expectKind{name: name, summary: summary, new: new}
}

// ExpectKinds returns the registered expectation kinds, sorted.
func ExpectKinds() []string { return slices.Sorted(maps.Keys(expectKinds)) }

// ExpectKindDocs documents every expectation kind, for docs/scenarios.md.
func ExpectKindDocs() []KindDoc {
	var out []KindDoc
	for _, k := range ExpectKinds() {
		ek := expectKinds[k]
		out = append(out, KindDoc{Name: k, Summary: ek.summary, Params: paramsOf(ek.new())})
	}
	return out
}

// WriteExpectKinds writes the expectation kinds as the Markdown table
// docs/scenarios.md carries between its expectations markers
// (TestExpectKindsInDocs keeps them equal).
func WriteExpectKinds(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| expectation `kind` | parameters | holds when |\n|---|---|---|\n")
	for _, d := range ExpectKindDocs() {
		params := make([]string, len(d.Params))
		for i, p := range d.Params {
			params[i] = "`" + p + "`"
		}
		if len(params) == 0 {
			params = []string{"none"}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Name, strings.Join(params, ", "), d.Summary)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// expectCommon are the keys every expectation takes besides its kind's.
var expectCommon = []string{"kind", "description", "clients", "finding", "findingOnlyWhen"}

// UnmarshalJSON reads the common keys, then decodes the rest strictly
// into the registered kind's struct. Problems are kept for validate,
// which reports them with the parameter's path and line.
func (e *Expectation) UnmarshalJSON(b []byte) error {
	*e = Expectation{}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		e.invalid = &fieldError{problem: "want a mapping such as {kind: recovers, step: outage, within: 15s}"}
		return nil
	}
	common := map[string]*string{"kind": &e.Kind, "description": &e.Description, "clients": &e.Clients, "finding": &e.Finding, "findingOnlyWhen": &e.FindingOnlyWhen}
	for _, k := range expectCommon {
		if v, ok := m[k]; ok {
			if err := json.Unmarshal(v, common[k]); err != nil {
				e.invalid = &fieldError{field: k, problem: "want a string, got " + string(v)}
				return nil
			}
		}
	}
	if e.Kind == "" {
		e.invalid = &fieldError{field: "kind", problem: "required: one of " + strings.Join(ExpectKinds(), ", ")}
		return nil
	}
	kind, ok := expectKinds[e.Kind]
	if !ok {
		e.invalid = &fieldError{field: "kind", problem: fmt.Sprintf("want one of %s, got %q", strings.Join(ExpectKinds(), ", "), e.Kind)}
		return nil
	}
	p := kind.new()
	allowed := paramsOf(p)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(expectCommon, k) {
			continue
		}
		if !slices.Contains(allowed, k) {
			e.invalid = &fieldError{field: k, problem: notAParameter(e.Kind, k, allowed)}
			return nil
		}
		// One key at a time, so that a bad value is reported at its key.
		one, _ := json.Marshal(map[string]json.RawMessage{k: m[k]})
		if err := json.Unmarshal(one, p); err != nil {
			e.invalid = &fieldError{field: k, problem: valueProblem(err)}
			return nil
		}
	}
	e.Params = p
	return nil
}

// notAParameter says that key is not one of kind's parameters, and what
// the kind takes.
func notAParameter(kind, key string, allowed []string) string {
	takes := "only " + strings.Join(expectCommon[1:], ", ")
	if len(allowed) > 0 {
		takes = strings.Join(allowed, ", ")
	}
	for _, other := range ExpectKinds() {
		if other != kind && slices.Contains(paramsOf(expectKinds[other].new()), key) {
			return fmt.Sprintf("does not apply to %s expectations (they take %s)", kind, takes)
		}
	}
	return fmt.Sprintf("unknown parameter of %s expectations; they take %s (and %s)", kind, takes, strings.Join(expectCommon[1:], ", "))
}

// valueProblem words a decoding error of one parameter's value.
func valueProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int64:
			want = "a whole number"
		case reflect.Float64:
			want = "a number"
		case reflect.Bool:
			want = "true or false"
		case reflect.String:
			want = "a string"
		}
		return fmt.Sprintf("want %s, got %s", want, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// MarshalJSON writes the common keys and the kind's parameters in one
// object, as UnmarshalJSON reads them.
func (e Expectation) MarshalJSON() ([]byte, error) {
	m := map[string]json.RawMessage{}
	if e.Params != nil {
		b, err := json.Marshal(e.Params)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string]json.RawMessage{}
		}
	}
	for k, v := range map[string]string{"kind": e.Kind, "description": e.Description, "clients": e.Clients, "finding": e.Finding, "findingOnlyWhen": e.FindingOnlyWhen} {
		if v != "" {
			m[k], _ = json.Marshal(v)
		}
	}
	return json.Marshal(m)
}

// validate checks the expectation at field path f (expect[i]).
func (e *Expectation) validate(s *Scenario, f string) error {
	if e.invalid != nil {
		field := f
		if e.invalid.field != "" {
			field += "." + e.invalid.field
		}
		return bad(field, "%s", e.invalid.problem)
	}
	if e.Params == nil {
		return bad(f+".kind", "want one of %s, got %q", strings.Join(ExpectKinds(), ", "), e.Kind)
	}
	if e.FindingOnlyWhen != "" && e.Finding == "" {
		return bad(f+".findingOnlyWhen", "only with finding: it says when the finding reproduces")
	}
	var scope []ClientGroup
	for _, g := range s.Workload.Clients {
		if e.Clients == "" || g.Name == e.Clients {
			scope = append(scope, g)
		}
	}
	if e.Clients != "" && len(scope) == 0 {
		return bad(f+".clients", "%q is not a workload client group", e.Clients)
	}
	if rc, ok := e.Params.(requestCounter); ok && rc.countsRequests() {
		for _, g := range scope {
			if g.WorkloadIdentity {
				return bad(f+".kind", "%s counts the requests the node's fakeimds attributes to each client, but group %s exchanges its token at the stack's authority, whose requests a run does not attribute: it would judge nothing; judge workload identity groups with success-rate, recovers, own-identity or max-latency, or name another group in clients", e.Kind, g.Name)
			}
		}
	}
	if err := e.Params.validate(s, scope); err != nil {
		if fe, ok := err.(*fieldError); ok {
			return bad(f+"."+fe.field, "%s", fe.problem)
		}
		return bad(f, "%v", err)
	}
	return nil
}

// Describe returns the expectation in words.
func (e *Expectation) Describe(s *Scenario) string {
	if e.Description != "" {
		return e.Description
	}
	if e.Params == nil {
		return e.Kind
	}
	who := "every client"
	if e.Clients != "" {
		who = "every " + e.Clients + " client"
	}
	return e.Params.describe(s, who)
}

// Evaluate judges every expectation of s on r, sets r.Verdicts and
// r.Passed, and returns the verdicts.
func Evaluate(s *Scenario, r *Result) []Verdict {
	r.Verdicts = r.Verdicts[:0]
	r.Passed = true
	for i := range s.Expect {
		e := &s.Expect[i]
		j := e.judge(s, r)
		v := Verdict{Expectation: e.Describe(s), Kind: e.Kind, Held: j.held, Detail: j.detail, Finding: e.Finding, Clients: j.clients, Scope: e.Clients}
		switch {
		case j.held && e.Finding == "":
			v.Outcome = OutcomePass
		case j.held && e.FindingOnlyWhen != "":
			v.Outcome = OutcomePass
			v.Detail += "; the finding did not reproduce here: it does only when " + e.FindingOnlyWhen
		case !j.held && e.Finding == "":
			v.Outcome = OutcomeFail
		case !j.held:
			v.Outcome = OutcomeKnownFailure
		default:
			v.Outcome = OutcomeUnexpectedPass
			v.Detail += "; the recorded finding no longer reproduces: check the client version and update the scenario"
		}
		r.Passed = r.Passed && v.OK()
		r.Verdicts = append(r.Verdicts, v)
	}
	return r.Verdicts
}

// clients returns the clients the expectation concerns.
func (e *Expectation) clients(r *Result) []*ClientResult {
	var out []*ClientResult
	for i := range r.Clients {
		if e.Clients == "" || r.Clients[i].Group == e.Clients {
			out = append(out, &r.Clients[i])
		}
	}
	return out
}

func (e *Expectation) judge(s *Scenario, r *Result) judgement {
	if e.Params == nil {
		return judgement{detail: "unknown kind " + e.Kind}
	}
	cs := e.clients(r)
	if len(cs) == 0 {
		return judgement{detail: "no clients ran"}
	}
	return e.Params.judge(s, r, cs)
}

// clientVerdict is c's own verdict.
func clientVerdict(c *ClientResult, held bool, format string, a ...any) ClientVerdict {
	return ClientVerdict{Client: c.Name, Group: c.Group, Held: held, Detail: fmt.Sprintf(format, a...)}
}

// allHeld reports whether every client verdict held; none is false.
func allHeld(vs []ClientVerdict) bool {
	for _, v := range vs {
		if !v.Held {
			return false
		}
	}
	return len(vs) > 0
}

// failedOf lists the details of the client verdicts that did not hold,
// as "CLIENT (DETAIL)".
func failedOf(vs []ClientVerdict) []string {
	var out []string
	for _, v := range vs {
		if !v.Held {
			out = append(out, v.Client+" ("+v.Detail+")")
		}
	}
	return out
}

// Window is the parameter group of kinds that judge a span of the run:
// a timeline step (from its at to its end; to the end of the run for a
// step without for), or from/to. Neither is the whole run.
type Window struct {
	// Step names a timeline step.
	Step string `json:"step,omitempty"`
	// From and To bound the window instead of Step; To 0 is the end of
	// the run.
	From duration.Duration `json:"from,omitempty"`
	To   duration.Duration `json:"to,omitempty"`
}

// validate checks the window in s.
func (w *Window) validate(s *Scenario) error {
	if w.Step != "" {
		if _, ok := s.StepByName(w.Step); !ok {
			return bad("step", "no timeline step is named %q", w.Step)
		}
		if w.From.Duration != 0 || w.To.Duration != 0 {
			return bad("step", "give either step or from/to, not both")
		}
	}
	if err := checkTimes(s, timeParam{"from", w.From.Duration}, timeParam{"to", w.To.Duration}); err != nil {
		return err
	}
	if w.To.Duration != 0 && w.To.Duration <= w.From.Duration {
		return bad("to", "must be after from")
	}
	return nil
}

// set reports whether the window was given at all.
func (w *Window) set() bool { return w.Step != "" || w.From.Duration != 0 || w.To.Duration != 0 }

// stepTimes returns the span of the named step on the run's clock: from
// when it was in effect to when it was undone. With r's record of the
// step, the span is the recorded one: from when its action had been
// applied (from when it fired, for a step that lasts until its action
// returns), so that "every call during the outage fails" never counts a
// call that ended before the fault reached the node; to when its undo
// began, so that "recovered within" is measured from the earliest
// moment the fault could have gone. Without a record (r nil: describing
// the expectation; or a result without steps) the file's times; a step
// a result has no record of (it never fired) spans the run's end.
func stepTimes(s *Scenario, r *Result, name string) (time.Duration, time.Duration) {
	st, _ := s.StepByName(name)
	if r == nil {
		return st.At.Duration, st.End()
	}
	for _, rec := range r.Steps {
		if rec.Name != name {
			continue
		}
		from := rec.At.D()
		if rec.Applied != 0 && !st.blocks() {
			from = rec.Applied.D()
		}
		switch {
		case rec.End != 0:
			return from, rec.End.D()
		case st.For.Duration > 0:
			return from, s.Duration()
		}
		return from, from
	}
	if st.After == "" && !st.blocks() && len(r.Steps) == 0 {
		return st.At.Duration, st.End()
	}
	return s.Duration(), s.Duration()
}

// bounds returns the window's [from, to) on the run's clock; r may be nil
// (describing the expectation).
func (w *Window) bounds(s *Scenario, r *Result) (time.Duration, time.Duration) {
	if w.Step != "" {
		at, end := stepTimes(s, r, w.Step)
		if end == at {
			end = s.Duration()
		}
		return at, end
	}
	to := w.To.Duration
	if to == 0 {
		to = s.Duration()
	}
	return w.From.Duration, to
}

// describe says which span the window is: "during STEP" or "from A to B".
func (w *Window) describe(s *Scenario) string {
	if w.Step != "" {
		return "during " + w.Step
	}
	from, to := w.bounds(s, nil)
	return fmt.Sprintf("from %v to %v", from, to)
}

// has reports whether t is in the window; a window that runs to the end
// of the run also holds what happened after it (an attempt ending as the
// workload stops).
func (w *Window) has(s *Scenario, r *Result, t time.Duration) bool {
	from, to := w.bounds(s, r)
	return t >= from && (t < to || to >= s.Duration())
}

// started reports whether a (not cancelled) attempt started in the window.
func (w *Window) started(s *Scenario, r *Result, a Attempt) bool {
	from, to := w.bounds(s, r)
	return !a.Cancelled && a.Start.D() >= from && a.Start.D() < to
}

// Since is the parameter group of kinds that judge what happens after a
// time: the end of a timeline step (its at, for a step without for), or
// after. Neither is the start of the run.
type Since struct {
	// Step names a timeline step: the time is its end.
	Step string `json:"step,omitempty"`
	// After is the time instead of Step.
	After duration.Duration `json:"after,omitempty"`
}

// validate checks the time in s.
func (sn *Since) validate(s *Scenario) error {
	if sn.Step != "" {
		if _, ok := s.StepByName(sn.Step); !ok {
			return bad("step", "no timeline step is named %q", sn.Step)
		}
		if sn.After.Duration != 0 {
			return bad("step", "give either step or after, not both")
		}
	}
	return checkTimes(s, timeParam{"after", sn.After.Duration})
}

// at returns the time on the run's clock; r may be nil (validating).
func (sn *Since) at(s *Scenario, r *Result) time.Duration {
	if sn.Step != "" {
		_, end := stepTimes(s, r, sn.Step)
		return end
	}
	return sn.After.Duration
}

// describe names the time: "STEP ends", "30s" or "" for the start.
func (sn *Since) describe() string {
	switch {
	case sn.Step != "":
		return sn.Step + " ends"
	case sn.After.Duration != 0:
		return sn.After.Duration.String()
	}
	return ""
}

// firstToken returns when c's first successful attempt ending at or
// after t ended, or -1 when none did.
func firstToken(c *ClientResult, t time.Duration) time.Duration {
	for _, a := range c.Attempts {
		if a.OK && a.End.D() >= t {
			return a.End.D()
		}
	}
	return -1
}

// Counts is the parameter group of kinds that bound a count from both
// sides; nil is no bound.
type Counts struct {
	// Min is the least allowed.
	Min *int `json:"min,omitempty"`
	// Max is the most allowed.
	Max *int `json:"max,omitempty"`
}

// validate checks the bounds; what names the thing counted, for errors.
func (c *Counts) validate(what string) error {
	if c.Min == nil && c.Max == nil {
		return bad("max", "required (or min): the most (least) %s allowed, e.g. max: 3", what)
	}
	if c.Min != nil && *c.Min < 0 {
		return bad("min", "must not be negative")
	}
	if c.Max != nil && *c.Max < 0 {
		return bad("max", "must not be negative")
	}
	if c.Min != nil && c.Max != nil && *c.Max < *c.Min {
		return bad("max", "%d is below min %d", *c.Max, *c.Min)
	}
	return nil
}

// holds reports whether n is within the bounds.
func (c *Counts) holds(n int) bool {
	return (c.Min == nil || n >= *c.Min) && (c.Max == nil || n <= *c.Max)
}

// describe words the bounds: "at most 3", "at least 1", "1 to 3".
func (c *Counts) describe() string {
	switch {
	case c.Min != nil && c.Max != nil && *c.Min == *c.Max:
		return fmt.Sprintf("exactly %d", *c.Min)
	case c.Min != nil && c.Max != nil:
		return fmt.Sprintf("%d to %d", *c.Min, *c.Max)
	case c.Min != nil:
		return fmt.Sprintf("at least %d", *c.Min)
	case *c.Max == 0:
		return "no"
	case c.Max != nil:
		return fmt.Sprintf("at most %d", *c.Max)
	}
	return "any number of"
}

// timeParam is a time parameter, for checkTimes.
type timeParam struct {
	name string
	v    time.Duration
}

// checkTimes checks that each time is within the run.
func checkTimes(s *Scenario, ts ...timeParam) error {
	for _, t := range ts {
		if t.v < 0 {
			return bad(t.name, "must not be negative")
		}
		if t.v > s.Duration() {
			return bad(t.name, "%v is beyond the end of the run (%v)", t.v, s.Duration())
		}
	}
	return nil
}

func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:n], ", ") + fmt.Sprintf(" and %d more", len(list)-n)
}

// sortedDurations sorts ts in place and returns it.
func sortedDurations(ts []time.Duration) []time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}
