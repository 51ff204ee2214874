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
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/yamlfile"
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

// Setup is the fake metadata service's state when the run starts.
type Setup struct {
	// Seed drives every random choice of the fault rules, so that a run
	// can be replayed; it is recorded in the result. 0 lets the fake pick
	// one at start.
	Seed int64 `json:"seed,omitempty"`
	// Throttle sets IMDS's throttling limits; they are on by default, as
	// on a real VM. {enabled: false} turns them off.
	Throttle *chaos.Limits `json:"throttle,omitempty"`
	// SystemAssigned gives the host its system-assigned identity (the
	// default); false starts without one.
	SystemAssigned *bool `json:"systemAssigned,omitempty"`
	// Identities are user-assigned identities the scenario names, in the
	// fakeimds configuration's userAssigned format.
	Identities []config.Identity `json:"identities,omitempty"`
	// Unattached names identities of Identities that are not attached at
	// the start; an attach step attaches them later.
	Unattached []string `json:"unattached,omitempty"`
	// TokenLifetime is the default token lifetime (24h if unset).
	TokenLifetime duration.Duration `json:"tokenLifetime,omitempty"`
	// TokenRefreshBefore: the fake's token cache replaces a token with
	// less than this left (5m if unset, as IMDS does).
	TokenRefreshBefore duration.Duration `json:"tokenRefreshBefore,omitempty"`
}

// Step is one timeline entry: at a time, one action.
type Step struct {
	// Name lets expectations refer to the step; required when one does.
	Name string `json:"name,omitempty"`
	// At is when the step fires, from the start of the run.
	At duration.Duration `json:"at"`
	// For, when set, undoes the step this long after it fired: a fault
	// rule expires, a detached identity is attached again, an attached
	// one detached, a lifetime restored.
	For duration.Duration `json:"for,omitempty"`
	// Fault adds a fault rule (the fakeimds chaos rule format). Its
	// timing comes from at and for; the rule's own schedule must be empty.
	Fault *chaos.Rule `json:"fault,omitempty"`
	// Attach attaches a setup identity by name ("system" for the
	// system-assigned one).
	Attach string `json:"attach,omitempty"`
	// Detach detaches an identity by name ("system" for the
	// system-assigned one).
	Detach string `json:"detach,omitempty"`
	// Lifetime changes the token lifetime of new tokens.
	Lifetime *LifetimeChange `json:"lifetime,omitempty"`
}

// LifetimeChange sets the lifetime of new tokens, of one identity or of all.
type LifetimeChange struct {
	// Identity names a user-assigned identity; empty changes the default.
	Identity string `json:"identity,omitempty"`
	// Lifetime is the new lifetime, e.g. "6m".
	Lifetime duration.Duration `json:"lifetime"`
}

// Kind returns what the step does: fault, attach, detach or lifetime.
func (s Step) Kind() string {
	switch {
	case s.Fault != nil:
		return "fault"
	case s.Attach != "":
		return "attach"
	case s.Detach != "":
		return "detach"
	case s.Lifetime != nil:
		return "lifetime"
	}
	return ""
}

// End returns when the step's effect ends (At+For), or At when it has no For.
func (s Step) End() time.Duration { return s.At.Duration + s.For.Duration }

// Workload is the clients that ask for tokens during the run.
type Workload struct {
	// Duration is how long the clients run; the run ends then.
	Duration duration.Duration `json:"duration"`
	// Clients are groups of identical clients.
	Clients []ClientGroup `json:"clients"`
}

// ClientGroup is Count clients of one kind asking for a token every Every.
// Each is a client of the registry (idharness clients list): a Go client
// runs in this process, any other as a program of its own.
type ClientGroup struct {
	// Name names the group; its clients are NAME-1 … NAME-COUNT.
	Name string `json:"name"`
	// Client names the registry's client, e.g. azidentity-mi or
	// py-azidentity-mi. Exactly one of Client and Exec is set.
	Client string `json:"client,omitempty"`
	// Exec runs the user's own workload instead: any command, pointed at
	// the fake, judged from the requests it sends and the lines it prints.
	Exec *Exec `json:"exec,omitempty"`
	// Count is how many clients (default 1).
	Count int `json:"count,omitempty"`
	// Every is the time between the starts of one client's attempts; a
	// client whose attempt takes longer starts the next one at once.
	Every duration.Duration `json:"every"`
	// Start delays the group's first attempts from the start of the run.
	Start duration.Duration `json:"start,omitempty"`
	// Spread starts the clients evenly over this long instead of all at
	// once.
	Spread duration.Duration `json:"spread,omitempty"`
	// Identity names the user-assigned identity the clients ask for;
	// empty asks for the host's default (the system-assigned one).
	Identity string `json:"identity,omitempty"`
	// SelectBy is how clients name their identity: clientId (default),
	// objectId or resourceId.
	SelectBy string `json:"selectBy,omitempty"`
	// Resource is the audience asked for (default
	// https://management.azure.com). Each client asks for its own
	// sub-resource of it (RESOURCE/idharness/RUN/CLIENT), because the Go
	// SDKs cache tokens process-wide by identity and resource: distinct
	// resources make each client behave like a separate process.
	Resource string `json:"resource,omitempty"`
	// Timeout bounds each attempt as an application's context would;
	// zero leaves only the clients' own timeouts.
	Timeout duration.Duration `json:"timeout,omitempty"`
}

// Exec is a workload the user brings: a command that gets its tokens the
// way it does in production, with its environment pointed at the fake.
// The harness does not drive its calls; it attributes the requests the
// fake sees to it (it reaches the fake from an address of its own) and
// turns the lines it prints into attempts.
type Exec struct {
	// Command is the program and its arguments, run in the scenario
	// file's folder.
	Command []string `json:"command"`
	// IMDSEnv are the variables set to the fake's URL, through which the
	// workload's SDK can be pointed at another IMDS (see docs/clients.md):
	// AZURE_POD_IDENTITY_AUTHORITY_HOST, HTTP_PROXY, … IDHARNESS_IMDS_URL
	// is always set.
	IMDSEnv []string `json:"imdsEnv,omitempty"`
	// Success is a regular expression: each line of the workload's output
	// (stdout or stderr) that matches is a successful attempt at the time
	// it was printed.
	Success string `json:"success"`
	// Failure, when set, is a regular expression for lines that are failed
	// attempts; the line is the attempt's error.
	Failure string `json:"failure,omitempty"`
}

// selects returns how the group's clients name their identity.
func (g ClientGroup) selects() clients.IdentityKind {
	if g.Identity == "" {
		return clients.System
	}
	switch g.SelectBy {
	case "objectId":
		return clients.ByObjectID
	case "resourceId":
		return clients.ByResourceID
	}
	return clients.ByClientID
}

// Clients returns the number of clients of the group.
func (g ClientGroup) Clients() int {
	if g.Count == 0 {
		return 1
	}
	return g.Count
}

// DefaultResource is the resource clients ask for when a group names none.
const DefaultResource = "https://management.azure.com"

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
// a group's every, start, spread and timeout, and a step's for.
const MaxDuration = 15 * time.Minute

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
	ids, err := s.validateSetup()
	if err != nil {
		return err
	}
	if err := s.validateWorkload(ids); err != nil {
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

// identities maps the names a scenario may use to whether the identity is
// attached at the start.
type identities map[string]bool

func (s *Scenario) validateSetup() (identities, error) {
	st := &s.Setup
	if st.Throttle != nil {
		if err := st.Throttle.Validate(); err != nil {
			return nil, bad("setup.throttle", "%v", err)
		}
		for _, l := range []struct {
			name string
			v    int
		}{{"metadataRps", st.Throttle.MetadataRPS}, {"identityRps", st.Throttle.IdentityRPS}, {"identityConcurrency", st.Throttle.IdentityConcurrency}} {
			if l.v > MaxThrottleLimit {
				return nil, bad("setup.throttle."+l.name, "%d: at most %d (IMDS allows 5 metadata and 20 token requests a second, 5 at a time); to turn throttling off, set enabled: false", l.v, MaxThrottleLimit)
			}
		}
		if st.Throttle.RetryAfter.Duration > MaxFaultDuration {
			return nil, bad("setup.throttle.retryAfter", "%v: at most %v", st.Throttle.RetryAfter.Duration, MaxFaultDuration)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tokenLifetime", st.TokenLifetime.Duration}, {"tokenRefreshBefore", st.TokenRefreshBefore.Duration}} {
		if d.v < 0 {
			return nil, bad("setup."+d.name, "must not be negative")
		}
		if d.v > MaxTokenLifetime {
			return nil, bad("setup."+d.name, "%v: at most %v, the lifetime of Azure's managed identity tokens", d.v, MaxTokenLifetime)
		}
	}
	ids := identities{}
	if st.SystemAssigned == nil || *st.SystemAssigned {
		ids["system"] = true
	} else {
		ids["system"] = false
	}
	for i, id := range st.Identities {
		f := fmt.Sprintf("setup.identities[%d]", i)
		if id.Name == "" {
			return nil, bad(f+".name", "required: steps and clients refer to identities by name")
		}
		if id.Name == "system" {
			return nil, bad(f+".name", `"system" names the system-assigned identity; pick another name`)
		}
		if _, dup := ids[id.Name]; dup {
			return nil, bad(f+".name", "%q is used twice", id.Name)
		}
		if id.TokenLifetime.Duration > MaxTokenLifetime {
			return nil, bad(f+".tokenLifetime", "%v: at most %v, the lifetime of Azure's managed identity tokens", id.TokenLifetime.Duration, MaxTokenLifetime)
		}
		ids[id.Name] = true
	}
	for i, n := range st.Unattached {
		f := fmt.Sprintf("setup.unattached[%d]", i)
		if _, ok := ids[n]; !ok || n == "system" {
			return nil, bad(f, "%q is not one of setup.identities (to start without the system-assigned identity, set systemAssigned: false)", n)
		}
		ids[n] = false
	}
	// The fakeimds configuration checks GUIDs, resource IDs and duplicates.
	cfg, err := s.ServerConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return nil, bad(configFieldToScenario(fe.Field, st), "%s", fe.Problem)
		}
		return nil, bad("setup", "%v", err)
	}
	return ids, nil
}

// configFieldToScenario maps a fakeimds configuration field back to the
// scenario field it came from.
func configFieldToScenario(field string, st *Setup) string {
	rest, ok := strings.CutPrefix(field, "userAssigned[")
	if !ok {
		return "setup"
	}
	var n int
	var tail string
	if _, err := fmt.Sscanf(rest, "%d]", &n); err != nil {
		return "setup.identities"
	}
	if i := strings.Index(rest, "]"); i >= 0 {
		tail = rest[i+1:]
	}
	// userAssigned lists the attached identities of setup.identities in order.
	k := -1
	for i, id := range st.Identities {
		if contains(st.Unattached, id.Name) {
			continue
		}
		k++
		if k == n {
			return fmt.Sprintf("setup.identities[%d]%s", i, tail)
		}
	}
	return "setup.identities"
}

func (s *Scenario) validateWorkload(ids identities) error {
	w := &s.Workload
	if w.Duration.Duration <= 0 {
		return bad("workload.duration", "required: how long the clients run, e.g. 90s")
	}
	if w.Duration.Duration > MaxDuration {
		return bad("workload.duration", "at most %v; shorten the incident to its essence", MaxDuration)
	}
	if len(w.Clients) == 0 {
		return bad("workload.clients", "required: at least one client group")
	}
	total := 0
	names := map[string]bool{}
	for i, g := range w.Clients {
		f := fmt.Sprintf("workload.clients[%d]", i)
		if !idPattern.MatchString(g.Name) {
			return bad(f+".name", "want lower-case words joined by dashes, got %q", g.Name)
		}
		if names[g.Name] {
			return bad(f+".name", "%q is used twice", g.Name)
		}
		names[g.Name] = true
		if (g.Client == "") == (g.Exec == nil) {
			return bad(f, "set exactly one of client (a client of idharness clients list) and exec (your own command)")
		}
		var spec clients.Spec
		if g.Exec != nil {
			if err := g.Exec.validate(); err != nil {
				return bad(f+".exec", "%v", err)
			}
			if g.Every.Duration != 0 || g.Timeout.Duration != 0 || g.Resource != "" {
				return bad(f, "every, timeout and resource are the workload's own business with exec: leave them out")
			}
		} else {
			reg, err := registry()
			if err != nil {
				return err
			}
			if spec, err = reg.Lookup(g.Client); err != nil {
				return bad(f+".client", "%v", err)
			}
			if ok, why := spec.Supports(clients.ModeIMDS, g.selects()); !ok {
				return bad(f+".client", "%s: %s; pick another client (idharness clients list) or selectBy", g.Client, why)
			}
		}
		if g.Count < 0 {
			return bad(f+".count", "must not be negative")
		}
		if g.Count > MaxClients {
			return bad(f+".count", "%d clients; at most %d in a local run, each a real SDK client in this process: lower count", g.Count, MaxClients)
		}
		// total and n are at most MaxClients each: the sum cannot overflow.
		if n := g.Clients(); total+n > MaxClients {
			field := f
			if g.Count != 0 {
				field += ".count"
			}
			return bad(field, "brings the workload to %d clients; at most %d in a local run, each a real SDK client in this process: lower the groups' counts", total+n, MaxClients)
		}
		total += g.Clients()
		if g.Exec == nil && g.Every.Duration < 100*time.Millisecond {
			return bad(f+".every", "want at least 100ms between one client's attempts, e.g. 5s")
		}
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"every", g.Every.Duration}, {"start", g.Start.Duration}, {"spread", g.Spread.Duration}, {"timeout", g.Timeout.Duration}} {
			if d.v < 0 {
				return bad(f+"."+d.name, "must not be negative")
			}
			// Bounded each, start+spread and spread×clients cannot overflow.
			if d.v > MaxDuration {
				return bad(f+"."+d.name, "%v: at most %v, the longest run", d.v, MaxDuration)
			}
		}
		if g.Start.Duration+g.Spread.Duration >= w.Duration.Duration {
			return bad(f+".start", "the group would start after the workload ends (%v)", w.Duration.Duration)
		}
		if g.Identity != "" {
			if g.Identity == "system" {
				return bad(f+".identity", `leave identity empty for the system-assigned identity`)
			}
			if _, ok := ids[g.Identity]; !ok {
				return bad(f+".identity", "%q is not one of setup.identities", g.Identity)
			}
			if spec.New != nil && spec.IdentityFromEnv {
				// A Go client that takes its identity only from the
				// process-wide AZURE_CLIENT_ID cannot have one of its own
				// in this process.
				return bad(f+".identity", "%s takes a user-assigned identity only from AZURE_CLIENT_ID, which is process-wide in a local run; use azidentity-mi, or a client program (py-azidentity-default, …), which has a process of its own", g.Client)
			}
		}
		switch g.SelectBy {
		case "", "clientId", "objectId", "resourceId":
		default:
			return bad(f+".selectBy", "want clientId, objectId or resourceId, got %q", g.SelectBy)
		}
		if g.SelectBy != "" && g.Identity == "" {
			return bad(f+".selectBy", "only with identity")
		}
		if g.Resource != "" {
			u, err := url.Parse(g.Resource)
			if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return bad(f+".resource", "want a resource URI such as https://vault.azure.net, got %q", g.Resource)
			}
		}
	}
	return nil
}

func (s *Scenario) validateTimeline(ids identities) error {
	names := map[string]bool{}
	ruleNames := map[string]bool{}
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
		set := 0
		for _, b := range []bool{st.Fault != nil, st.Attach != "", st.Detach != "", st.Lifetime != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			return bad(f, "want exactly one of fault, attach, detach or lifetime, got %d", set)
		}
		switch st.Kind() {
		case "fault":
			r := st.Fault
			if r.Schedule.After.Duration != 0 || r.Schedule.For.Duration != 0 {
				return bad(f+".fault.schedule", "leave it out: the step's at and for time the rule")
			}
			if err := r.Validate(); err != nil {
				var re *chaos.RuleError
				if errors.As(err, &re) {
					return bad(f+".fault."+re.Field, "%s", re.Problem)
				}
				return bad(f+".fault", "%v", err)
			}
			if err := checkFaultDurations(r.Action.Fault, f+".fault.action"); err != nil {
				return err
			}
			if ruleNames[r.Name] {
				return bad(f+".fault.name", "rule %q is added twice; rule names must be unique in a scenario", r.Name)
			}
			ruleNames[r.Name] = true
		case "attach", "detach":
			name := st.Attach + st.Detach
			field := f + "." + st.Kind()
			if _, ok := ids[name]; !ok {
				return bad(field, "%q is not one of setup.identities (or system)", name)
			}
		case "lifetime":
			l := st.Lifetime
			if l.Lifetime.Duration < 0 {
				return bad(f+".lifetime.lifetime", "must not be negative (0 restores the default)")
			}
			if l.Lifetime.Duration == 0 && l.Identity == "" {
				return bad(f+".lifetime.lifetime", "required for the default lifetime, e.g. 6m")
			}
			if l.Lifetime.Duration > MaxTokenLifetime {
				return bad(f+".lifetime.lifetime", "%v: at most %v, the lifetime of Azure's managed identity tokens", l.Lifetime.Duration, MaxTokenLifetime)
			}
			if l.Identity != "" {
				if _, ok := ids[l.Identity]; !ok || l.Identity == "system" {
					return bad(f+".lifetime.identity", "%q is not one of setup.identities (leave it empty to change the default, which the system-assigned identity uses)", l.Identity)
				}
			}
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
