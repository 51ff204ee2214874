package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/stack"
)

// Step is one timeline entry: at a time, one action of a registered kind,
// written as the kind's key: `{at: 10s, for: 30s, fault: {…}}`.
type Step struct {
	// Name lets expectations refer to the step; required when one does.
	Name string
	// At is when the step fires: from the start of the run, or with After
	// from the moment its condition is met.
	At duration.Duration
	// For, when set, undoes the step this long after it fired: a fault
	// rule expires, a detached identity is attached again, an attached
	// one detached, a lifetime or throttle setting restored. Kinds that
	// cannot be undone (restart) refuse it.
	For duration.Duration
	// After names a condition that starts the step's clock instead of the
	// run's start: "tokens-held" waits until every client of the workload
	// holds a token (the fake has answered each a token), as an outage
	// against cached tokens must.
	After string
	// Kind is the action's kind, the key it was written under.
	Kind string
	// Action is the kind's parameters and behaviour.
	Action StepAction

	// kinds are the kind keys the step was written with, for validate
	// to refuse none or several with the step's line.
	kinds []string
}

// The conditions a step's After may name.
const (
	// AfterTokensHeld: every client of the workload holds a token.
	AfterTokensHeld = "tokens-held"
)

// StepAction is one kind of timeline step. Each kind lives in a file of
// its own (step_KIND.go) and registers itself with registerStep.
type StepAction interface {
	// validate checks the parameters in the scenario; field is the path
	// of the kind's key, e.g. timeline[2].fault.
	validate(s *Scenario, ids identities, field string) error
	// apply carries out st, the step the action belongs to, and returns
	// how to undo it (nil when it cannot be) and what was done, in words.
	apply(ctx context.Context, r *runner, st Step) (undo func(context.Context) error, detail string, err error)
}

// needsCluster is implemented by step kinds that only a cluster can carry
// out (restarting a pod); a local run refuses them with the reason.
type needsCluster interface{ needsCluster() string }

// needsHost is implemented by step kinds that a run inside the cluster (a
// pod of the in-cluster runner) cannot carry out: they act on the machine
// behind a node, not through the API server (a kind node's container, a
// node's network namespace), or need rights the runner's least-privilege
// role does not grant (cluster-wide webhook configurations). It returns
// why, or empty when this step's options need neither.
type needsHost interface{ needsHost() string }

// referenceOnly is implemented by step kinds that only idharness's
// reference implementation can serve: they reach a test path of the
// reference workload identity webhook (a slow answer, an added
// container), which another implementation's webhook does not have. It
// returns what the step needs of it, or empty when this step's options
// need nothing of the kind.
type referenceOnly interface{ referenceWebhook() string }

// clusterChecker is implemented by step kinds that a cluster run cannot
// honour in some form; the error says why and what to do instead.
type clusterChecker interface {
	checkCluster(s *Scenario, field string) error
}

// undoable is implemented by step kinds whose effect can end after for.
type undoable interface{ undoable() bool }

// mustEnder is implemented by step kinds that need a for: their effect
// must not outlast the run (a partition).
type mustEnder interface{ mustEnd() bool }

// blocking is implemented by step kinds whose action lasts until apply
// returns (a restart, until the new pod is ready): the step's end is
// that moment, which the file cannot say.
type blocking interface{ blocks() bool }

// blocks reports whether the step's action lasts until apply returns.
func (s Step) blocks() bool {
	b, ok := s.Action.(blocking)
	return ok && b.blocks()
}

// stepKind is a registered kind of step.
type stepKind struct {
	name, summary string
	new           func() StepAction
}

// stepKinds is filled by init functions only, before any scenario is read.
var stepKinds = map[string]stepKind{}

// registerStep registers a kind of step under the key it is written with.
// It panics on a duplicate: two files claiming one key is a bug.
func registerStep(name, summary string, new func() StepAction) {
	if _, dup := stepKinds[name]; dup {
		panic("scenario: step kind " + name + " registered twice")
	}
	stepKinds[name] = stepKind{name: name, summary: summary, new: new}
}

// StepKinds returns the registered step kinds, sorted by name.
func StepKinds() []string {
	out := make([]string, 0, len(stepKinds))
	for k := range stepKinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// KindDoc describes one kind of an extension point for the generated docs.
type KindDoc struct {
	// Name is the key or kind name; Summary says what it does.
	Name, Summary string
	// Params are the parameters it takes, by their YAML names.
	Params []string
}

// StepKindDocs documents every step kind, for docs/scenarios.md.
func StepKindDocs() []KindDoc {
	var out []KindDoc
	for _, k := range StepKinds() {
		sk := stepKinds[k]
		out = append(out, KindDoc{Name: k, Summary: sk.summary, Params: paramsOf(sk.new())})
	}
	return out
}

// paramsOf lists the JSON names of a kind's parameters (its struct's
// fields, embedded ones flattened); none for a kind written as a scalar.
func paramsOf(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, paramsOf(reflect.New(f.Type).Interface())...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// stepCommon are the keys every step takes besides its kind's.
var stepCommon = []string{"name", "at", "for", "after"}

// UnmarshalJSON reads the common keys, then the one key naming the
// step's kind, whose value it decodes strictly into that kind.
func (s *Step) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var head struct {
		Name  string            `json:"name"`
		At    duration.Duration `json:"at"`
		For   duration.Duration `json:"for"`
		After string            `json:"after"`
	}
	common := map[string]json.RawMessage{}
	var kinds []string
	for k, v := range m {
		if slices.Contains(stepCommon, k) {
			common[k] = v
			continue
		}
		kinds = append(kinds, k)
	}
	cb, _ := json.Marshal(common)
	if err := json.Unmarshal(cb, &head); err != nil {
		return err
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if _, ok := stepKinds[k]; !ok {
			return fmt.Errorf("unknown field %q: a step takes %s, and one of %s", k, strings.Join(stepCommon, ", "), strings.Join(StepKinds(), ", "))
		}
	}
	*s = Step{Name: head.Name, At: head.At, For: head.For, After: head.After, kinds: kinds}
	if len(kinds) != 1 {
		// validate says so, with the step's line.
		return nil
	}
	a := stepKinds[kinds[0]].new()
	dec := json.NewDecoder(bytes.NewReader(m[kinds[0]]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(a); err != nil {
		return err
	}
	s.Kind, s.Action = kinds[0], a
	return nil
}

// MarshalJSON writes the common keys and the kind's key.
func (s Step) MarshalJSON() ([]byte, error) {
	m := map[string]any{"at": s.At}
	if s.Name != "" {
		m["name"] = s.Name
	}
	if s.For.Duration != 0 {
		m["for"] = s.For
	}
	if s.After != "" {
		m["after"] = s.After
	}
	if s.Kind != "" {
		m[s.Kind] = s.Action
	}
	return json.Marshal(m)
}

// End returns when the step's effect ends as written (At+For), or At
// when it has no For. With After, both count from the condition.
func (s Step) End() time.Duration { return s.At.Duration + s.For.Duration }

// validateTimeline checks every step: names, times, and the kind's own
// parameters.
func (s *Scenario) validateTimeline(ids identities) error {
	names := map[string]bool{}
	for i := range s.Timeline {
		st := &s.Timeline[i]
		f := fmt.Sprintf("timeline[%d]", i)
		if st.Name != "" {
			if !idPattern.MatchString(st.Name) {
				return bad(f+".name", "want lower-case words joined by dashes, got %q", st.Name)
			}
			if names[st.Name] {
				return bad(f+".name", "%q is used twice", st.Name)
			}
			names[st.Name] = true
		}
		if st.Action == nil {
			return bad(f, "want exactly one of %s, got %d (%s)", strings.Join(StepKinds(), ", "), len(st.kinds), strings.Join(st.kinds, ", "))
		}
		switch st.After {
		case "", AfterTokensHeld:
		default:
			return bad(f+".after", "want %s (every client holds a token), got %q", AfterTokensHeld, st.After)
		}
		if st.At.Duration < 0 {
			return bad(f+".at", "must not be negative")
		}
		if st.At.Duration >= s.Workload.Duration.Duration {
			return bad(f+".at", "%v is not before the end of the workload (%v)", st.At.Duration, s.Workload.Duration.Duration)
		}
		if st.For.Duration < 0 {
			return bad(f+".for", "must not be negative")
		}
		// Bounded, at+for (a step's end) cannot overflow.
		if st.For.Duration > MaxDuration {
			return bad(f+".for", "%v: at most %v, the longest run; leave for out to keep the step in force to the end", st.For.Duration, MaxDuration)
		}
		if u, ok := st.Action.(undoable); st.For.Duration > 0 && (!ok || !u.undoable()) {
			return bad(f+".for", "a %s step cannot be undone; leave for out", st.Kind)
		}
		if m, ok := st.Action.(mustEnder); ok && m.mustEnd() && st.For.Duration == 0 {
			return bad(f+".for", "required: a %s step must end within the run, e.g. for: 30s", st.Kind)
		}
		if err := st.Action.validate(s, ids, f+"."+st.Kind); err != nil {
			return err
		}
	}
	return nil
}

// checkLocal returns an error naming the first step a local run cannot
// carry out.
func (s *Scenario) checkLocal() error {
	for i, st := range s.Timeline {
		if nc, ok := st.Action.(needsCluster); ok {
			return s.fieldError(fmt.Sprintf("timeline[%d].%s", i, st.Kind), "%s: run this scenario in a cluster (idharness scenario run --cluster NAME)", nc.needsCluster())
		}
	}
	return nil
}

// NeedsHost returns why s cannot be played from inside the cluster (its
// first step that acts on the machine behind a node, a node restart or a
// partition, or that needs rights the in-cluster runner is not given), or
// empty when it can.
func (s *Scenario) NeedsHost() string {
	if wi := s.Setup.WorkloadIdentity; wi != nil && wi.TokenFile == TokenFileSecret {
		return "setup.workloadIdentity.tokenFile: secret writes the pods' token into Secrets and requests service account tokens, rights the in-cluster runner's role does not grant"
	}
	for i, st := range s.Timeline {
		if nh, ok := st.Action.(needsHost); ok {
			if why := nh.needsHost(); why != "" {
				return fmt.Sprintf("timeline[%d].%s %s", i, st.Kind, why)
			}
		}
	}
	return ""
}

// NotApplicablePrefix begins every reason NotApplicable gives, as the
// report shows it among the specs that did not run.
const NotApplicablePrefix = "not applicable to this implementation: "

// NotApplicable returns why s does not apply to a stack whose workload
// identity webhook under test is webhook (stack.Stack.WIWebhook), as
// NotApplicablePrefix, the file and its first step that needs the
// reference webhook's test paths, when the webhook under test is another
// implementation's or there is none; empty
// when it applies, or when the stack does not say (webhook empty: a stack
// deployed before it was recorded, which the step itself then checks).
// Such a scenario judges nothing of the implementation, so the chaos
// suite skips it with this reason (the verdict is then Partial, not a
// failure of the implementation nor Conformant) and an in-cluster run
// refuses it before it starts.
func (s *Scenario) NotApplicable(webhook string) string {
	if webhook == "" || webhook == stack.WIWebhookReference {
		return ""
	}
	deployed := "the workload identity webhook under test is " + webhook + "'s, not idharness's reference webhook"
	if webhook == stack.WIWebhookNone {
		deployed = "the stack deploys no workload identity webhook"
	}
	for i, st := range s.Timeline {
		if ro, ok := st.Action.(referenceOnly); ok {
			if why := ro.referenceWebhook(); why != "" {
				return fmt.Sprintf("%s%s: timeline[%d].%s %s, and %s", NotApplicablePrefix, s.File(), i, st.Kind, why, deployed)
			}
		}
	}
	return ""
}

// StepKindTable renders StepKindDocs as the markdown table of
// docs/scenarios.md.
func StepKindTable() string {
	var b strings.Builder
	b.WriteString("| step | what it does | parameters |\n|---|---|---|\n")
	for _, d := range StepKindDocs() {
		params := "a name (scalar)"
		if len(d.Params) > 0 {
			params = "`" + strings.Join(d.Params, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Name, d.Summary, params)
	}
	return b.String()
}

// warner is implemented by step kinds that can be valid yet suspect (a
// fault rule that can never match a request).
type warner interface{ warnings() []string }

// Warnings returns what the scenario's lint reports besides errors, each
// as "file:line: field: warning", e.g. a fault rule whose path no face of
// fakeimds serves: it is valid, but its step would fault nothing.
func (s *Scenario) Warnings() []string {
	var out []string
	for i, st := range s.Timeline {
		w, ok := st.Action.(warner)
		if !ok {
			continue
		}
		field := fmt.Sprintf("timeline[%d].%s", i, st.Kind)
		for _, msg := range w.warnings() {
			out = append(out, s.fieldError(field, "warning: %s", msg).Error())
		}
	}
	return out
}
