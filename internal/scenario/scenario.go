// Package scenario loads, checks and runs idharness scenario files: a
// timeline of faults and identity changes played against a fake metadata
// service while a workload of real Azure SDK clients asks it for tokens,
// followed by a verdict per expectation.
//
// A scenario file is YAML with five parts: metadata (id, title,
// description, links to the incident it reproduces), setup (identities,
// token lifetime, throttling, seed), timeline (steps at a time, each a
// fault rule, an identity attached or detached, or a lifetime change),
// workload (groups of clients of one kind that ask every so often) and
// expect (the verdicts the run must reach). Decoding is strict: an unknown
// field, a bad duration or an invalid rule is an error with file:line.
//
// Run plays a scenario against an in-process fake with the clients in
// goroutines; RunInCluster plays the same file against one node's
// fakeimds in a cluster with each client a probe pod, and both judge the
// run with Evaluate.
package scenario

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// Scenario is one scenario file.
type Scenario struct {
	// ID names the scenario in results and file names: lower case words
	// joined by dashes, e.g. imds-410-host-update.
	ID string `json:"id"`
	// Title is a one-line summary.
	Title string `json:"title"`
	// Description says what happened in the incident and what the run shows.
	Description string `json:"description,omitempty"`
	// Links point at the incident, issue or documentation the scenario
	// reproduces; at least one is required.
	Links []string `json:"links"`
	// Spec, when set, makes the scenario a spec of the chaos suite:
	// `idharness run --suite chaos` plays it in the cluster with this
	// ID, level and labels, as `idharness scenario run --cluster` does.
	Spec *SpecInfo `json:"spec,omitempty"`
	// Setup is the fake metadata service's state at the start.
	Setup Setup `json:"setup,omitempty"`
	// Timeline lists the steps played during the run.
	Timeline []Step `json:"timeline,omitempty"`
	// Workload is the clients that ask for tokens.
	Workload Workload `json:"workload"`
	// Expect lists the verdicts the run must reach.
	Expect []Expectation `json:"expect"`

	file string
	data []byte
}

// SpecInfo places a scenario in the chaos suite.
type SpecInfo struct {
	// ID is the spec's ID, IDH-CHAOS-NNNN; unique in the suite.
	ID string `json:"id"`
	// Level is MUST or SHOULD: a MUST spec that fails makes the run
	// non-conformant; a SHOULD spec's failure is reported as a warning.
	Level string `json:"level"`
	// Statement is the spec's one-sentence requirement, with its MUST or
	// SHOULD.
	Statement string `json:"statement"`
	// Labels select the spec with --label-filter (fault kinds, modes).
	Labels []string `json:"labels,omitempty"`
}

// File returns the path the scenario was loaded from.
func (s *Scenario) File() string { return s.file }

// Duration returns how long a run of the scenario lasts.
func (s *Scenario) Duration() time.Duration { return s.Workload.Duration.Duration }

// StepByName returns the named step.
func (s *Scenario) StepByName(name string) (Step, bool) {
	for _, st := range s.Timeline {
		if st.Name == name {
			return st, true
		}
	}
	return Step{}, false
}

// MaxFileSize bounds a scenario file: 1 MiB, far more than a timeline
// needs, and little enough to read and check at once.
const MaxFileSize = 1 << 20

// LoadFile reads and checks a scenario file.
func LoadFile(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, &yamlfile.Error{File: path, Err: fmt.Errorf("larger than %d bytes (1 MiB), the most a scenario file may be; is it a scenario? Shorten the timeline to the incident's essence", MaxFileSize)}
	}
	return Parse(path, data)
}

// Parse decodes and checks a scenario; file names it in errors, which are
// *yamlfile.Error values with the line at fault whenever it is known.
func Parse(file string, data []byte) (*Scenario, error) {
	s := &Scenario{}
	if err := yamlfile.Decode(file, data, s); err != nil {
		return nil, err
	}
	s.file, s.data = file, data
	if err := s.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, &yamlfile.Error{File: file, Line: yamlfile.Line(data, fe.field), Field: fe.field, Err: errors.New(fe.problem)}
		}
		return nil, &yamlfile.Error{File: file, Err: err}
	}
	return s, nil
}

// fieldError is a validation problem at a field path such as
// "timeline[2].at".
type fieldError struct {
	field, problem string
}

func (e *fieldError) Error() string { return e.field + ": " + e.problem }

func bad(field, format string, a ...any) error {
	return &fieldError{field: field, problem: fmt.Sprintf(format, a...)}
}

var idPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// MaxDuration bounds a scenario's run time; longer incidents are
// shortened to their essence. It bounds every time within the run too:
// a group's every, start, spread and timeout, and a step's for. 20
// minutes: the kubelet's rotation of a 10-minute service account token
// and the old token's refusal at the authority, five minutes after its
// exp, take 15 (IDH-CHAOS-0031).
const MaxDuration = 20 * time.Minute

// MaxClients bounds the clients of one local run, in each group and in
// all: each is a real SDK client in a goroutine of the idharness process,
// with its own HTTP transport. (In a cluster MaxClusterPods applies.)
const MaxClients = 500

// MaxTokenLifetime bounds the token lifetimes a scenario sets (setup's
// tokenLifetime and tokenRefreshBefore, an identity's tokenLifetime, a
// lifetime step) and the token time an expectation asks to be left
// (minRemaining): a day, the lifetime Azure gives managed identity tokens.
const MaxTokenLifetime = 24 * time.Hour

// MaxFaultDuration bounds every duration of a fault action (delay,
// jitter, retryAfter, offset, ago, max) and setup.throttle.retryAfter,
// so that the fake's sums of them cannot overflow.
const MaxFaultDuration = 24 * time.Hour

// MaxThrottleLimit bounds setup.throttle's metadataRps, identityRps and
// identityConcurrency: the fake keeps a slot per request a limit allows.
// IMDS's own limits are 5, 20 and 5.
const MaxThrottleLimit = 1000

func (s *Scenario) validate() error {
	if !idPattern.MatchString(s.ID) {
		return bad("id", "want lower-case words joined by dashes, e.g. imds-410-host-update, got %q", s.ID)
	}
	if strings.TrimSpace(s.Title) == "" {
		return bad("title", "required: a one-line summary of the incident")
	}
	if len(s.Links) == 0 {
		return bad("links", "required: at least one link to the incident, issue or documentation reproduced")
	}
	for i, l := range s.Links {
		u, err := url.Parse(l)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad(fmt.Sprintf("links[%d]", i), "want an https:// URL, got %q", l)
		}
	}
	if err := s.validateSpec(); err != nil {
		return err
	}
	ids, err := s.validateSetup()
	if err != nil {
		return err
	}
	if err := s.validateWorkload(ids); err != nil {
		return err
	}
	if err := s.validateWorkloadIdentity(ids); err != nil {
		return err
	}
	if err := s.validateTimeline(ids); err != nil {
		return err
	}
	if len(s.Expect) == 0 {
		return bad("expect", "required: at least one expectation, or the run proves nothing")
	}
	for i := range s.Expect {
		if err := s.Expect[i].validate(s, fmt.Sprintf("expect[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// validateLimits checks throttling limits, of setup.throttle or of a
// throttle step at field.
func validateLimits(l chaos.Limits, field string) error {
	if err := l.Validate(); err != nil {
		return bad(field, "%v", err)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"metadataRps", l.MetadataRPS}, {"identityRps", l.IdentityRPS}, {"identityConcurrency", l.IdentityConcurrency}} {
		if v.v > MaxThrottleLimit {
			return bad(field+"."+v.name, "%d: at most %d (IMDS allows 5 metadata and 20 token requests a second, 5 at a time); to turn throttling off, set enabled: false", v.v, MaxThrottleLimit)
		}
	}
	if l.RetryAfter.Duration > MaxFaultDuration {
		return bad(field+".retryAfter", "%v: at most %v", l.RetryAfter.Duration, MaxFaultDuration)
	}
	return nil
}

var (
	specIDPattern = regexp.MustCompile(`^IDH-CHAOS-[0-9]{4}$`)
	labelPattern  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

func (s *Scenario) validateSpec() error {
	sp := s.Spec
	if sp == nil {
		return nil
	}
	if !specIDPattern.MatchString(sp.ID) {
		return bad("spec.id", "want IDH-CHAOS- and four digits, e.g. IDH-CHAOS-0002, got %q", sp.ID)
	}
	if sp.Level != "MUST" && sp.Level != "SHOULD" {
		return bad("spec.level", "want MUST or SHOULD, got %q", sp.Level)
	}
	if !strings.Contains(sp.Statement, sp.Level) {
		return bad("spec.statement", "state the requirement with its %s, e.g. \"a client … %s get its token …\"", sp.Level, sp.Level)
	}
	for i, l := range sp.Labels {
		if !labelPattern.MatchString(l) {
			return bad(fmt.Sprintf("spec.labels[%d]", i), "want lower-case words joined by dashes, got %q", l)
		}
	}
	return nil
}

// durationType is the type of the durations of fault actions.
var durationType = reflect.TypeOf(duration.Duration{})

// checkFaultDurations bounds the durations of a fault action to
// ±MaxFaultDuration, whatever its kind: the fake adds them up (the
// delays of several latency rules, an expired token's age and an hour)
// and rounds them up to seconds, which a duration near the largest
// time.Duration would overflow.
func checkFaultDurations(fault chaos.Fault, field string) error {
	v := reflect.ValueOf(fault)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		if !sf.IsExported() || sf.Type != durationType {
			continue
		}
		d := v.Field(i).Interface().(duration.Duration).Duration
		if d > MaxFaultDuration || d < -MaxFaultDuration {
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" {
				name = sf.Name
			}
			return bad(field+"."+name, "%v: at most %v either way", d, MaxFaultDuration)
		}
	}
	return nil
}

// ServerConfig returns the fakeimds configuration for the scenario's
// setup, listening on loopback ports chosen by the system.
func (s *Scenario) ServerConfig() (config.Config, error) {
	cfg := config.Default()
	st := s.Setup
	if st.SystemAssigned != nil && !*st.SystemAssigned {
		cfg.SystemAssigned = nil
	}
	cfg.UserAssigned = nil
	for _, id := range st.Identities {
		if !contains(st.Unattached, id.Name) {
			cfg.UserAssigned = append(cfg.UserAssigned, id)
		}
	}
	if st.TokenLifetime.Duration > 0 {
		cfg.Tokens.Lifetime = st.TokenLifetime
	}
	if st.TokenRefreshBefore.Duration > 0 {
		cfg.Tokens.RefreshBefore = st.TokenRefreshBefore
	}
	cfg.Listen.IMDS = "127.0.0.1:0"
	cfg.Listen.Control = "127.0.0.1:0"
	cfg.Listen.AuthorityTLS = ""
	off := false
	// The workload uses the IMDS face only; the authority would write a
	// CA certificate to disk.
	cfg.Faces.Authority.Enabled = &off
	cfg.Faces.Arc.Enabled = &off
	cfg.Chaos.Seed = st.Seed
	if st.Throttle != nil {
		cfg.Chaos.Throttle = *st.Throttle
	}
	return cfg, nil
}

// Identity returns the setup identity with the given name.
func (s *Scenario) Identity(name string) (config.Identity, bool) {
	for _, id := range s.Setup.Identities {
		if id.Name == name {
			return id, true
		}
	}
	return config.Identity{}, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LoadFS reads and checks every scenario file (*.yaml) of fsys, in name
// order; dir names the folder in errors.
func LoadFS(fsys fs.FS, dir string) ([]*Scenario, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*Scenario
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read scenario %s: %w", n, err)
		}
		s, err := Parse(path.Join(dir, n), data)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Specs returns the scenarios of list that are chaos specs (a spec:
// block), sorted by spec ID; two files claiming one ID are an error.
func Specs(list []*Scenario) ([]*Scenario, error) {
	var out []*Scenario
	seen := map[string]string{}
	for _, s := range list {
		if s.Spec == nil {
			continue
		}
		if other, dup := seen[s.Spec.ID]; dup {
			return nil, fmt.Errorf("%s and %s both claim spec %s: give one another ID", other, s.File(), s.Spec.ID)
		}
		seen[s.Spec.ID] = s.File()
		out = append(out, s)
	}
	if err := authorityClashes(out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.ID < out[j].Spec.ID })
	return out, nil
}

// authorityClashes refuses two specs that attach identities with the same
// client ID or name to the stack's authority: the chaos suite plays its
// specs side by side against one authority, which holds each client ID
// and resource ID (derived from the name) once.
func authorityClashes(specs []*Scenario) error {
	var have []identity.Identity
	owner := map[string]*Scenario{}
	for _, s := range specs {
		for _, id := range s.AuthorityIdentities() {
			if h, clash := authorityClash(have, id); clash != "" {
				o := owner[h.ClientID]
				return fmt.Errorf("%s (%s) and %s (%s) both give the shared authority an identity with %s %s: specs are played side by side against one authority, so give %s's identity %s a %s of its own", o.File(), o.Spec.ID, s.File(), s.Spec.ID, clash, map[string]string{"client ID": id.ClientID, "name": id.Name}[clash], s.File(), id.Name, clash)
			}
			have = append(have, identity.Identity{Name: id.Name, ClientID: id.ClientID})
			owner[id.ClientID] = s
		}
	}
	return nil
}
