// Package chaos injects faults into fakeimds: seeded, scoped rules that
// delay, refuse, break or falsify responses the way real metadata
// endpoints misbehave, plus throttling faithful to IMDS's documented
// limits. A rule is match + action + schedule; each action kind lives in
// a file of its own and registers itself by name.
package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/routes"
)

// Rule is one fault rule.
type Rule struct {
	// Name identifies the rule in the journal, reports and the control API.
	Name string `json:"name"`
	// Match selects the requests the rule applies to; empty matches all.
	Match Match `json:"match"`
	// Action is what happens to a matched request.
	Action Action `json:"action"`
	// Schedule says when the rule is active, relative to when it was added.
	Schedule Schedule `json:"schedule"`
}

// Match selects requests. Every set field must match.
type Match struct {
	// Faces: imds, instance, appservice, arc, authority.
	Faces []string `json:"faces,omitempty"`
	// Path matches the URL path exactly, or as a prefix when it ends in *.
	// Both compare in canonical form (routes.Canonical), as fakeimds
	// routes: one trailing slash is ignored, since the token endpoints
	// answer with and without it, and case is not folded, since fakeimds
	// routes case-sensitively (/Metadata/... is a 404, not the endpoint).
	Path string `json:"path,omitempty"`
	// Methods: GET, POST, …
	Methods []string `json:"methods,omitempty"`
	// Identity: "system", or a client ID, object ID or resource ID of the
	// identity the request names or gets (case-insensitive).
	Identity string `json:"identity,omitempty"`
	// Resource matches the requested resource exactly.
	Resource string `json:"resource,omitempty"`
	// Sources are IP addresses or CIDRs of clients (a pod's IP).
	Sources []string `json:"sources,omitempty"`
	// HeaderPresent and HeaderAbsent name headers that must be there, or not.
	HeaderPresent []string `json:"headerPresent,omitempty"`
	HeaderAbsent  []string `json:"headerAbsent,omitempty"`
	// Probability that a matching request is hit, 0 < p <= 1 (default 1),
	// drawn from the rule's seeded random source.
	Probability *float64 `json:"probability,omitempty"`
	// FirstN hits only the first N matching requests.
	FirstN int `json:"firstN,omitempty"`
	// EveryNth hits every Nth matching request (N, 2N, …).
	EveryNth int `json:"everyNth,omitempty"`
	// Count stops the rule after it has hit this many requests.
	Count int `json:"count,omitempty"`

	prefixes []netip.Prefix
}

// Schedule bounds when a rule is active. With both zero it is active from
// the moment it is added until removed.
type Schedule struct {
	// After delays activation from when the rule was added.
	After duration.Duration `json:"after,omitempty"`
	// For ends the rule this long after activation; zero means until removed.
	For duration.Duration `json:"for,omitempty"`
}

// Action is a fault kind (Type) and that kind's parameters, written
// inline: {"type": "latency", "delay": "1.2s"}.
type Action struct {
	Type  string
	Fault Fault
	raw   json.RawMessage
}

// MarshalJSON writes the type and the fault's parameters in one object.
func (a Action) MarshalJSON() ([]byte, error) {
	if a.Fault == nil {
		return json.Marshal(map[string]string{"type": a.Type})
	}
	b, err := json.Marshal(a.Fault)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	t, _ := json.Marshal(a.Type)
	m["type"] = t
	return json.Marshal(m)
}

// UnmarshalJSON reads the type, then decodes the parameters strictly
// into that kind's struct: an unknown parameter is an error.
func (a *Action) UnmarshalJSON(b []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	if head.Type == "" {
		return fmt.Errorf("action.type is required; one of %s", strings.Join(Kinds(), ", "))
	}
	f, err := New(head.Type)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	delete(m, "type")
	params, _ := json.Marshal(m)
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		return fmt.Errorf("action %q: %w", head.Type, err)
	}
	a.Type, a.Fault, a.raw = head.Type, f, b
	return nil
}

// RuleError is a validation error naming the rule and field at fault.
type RuleError struct {
	Rule    string
	Field   string
	Problem string
}

func (e *RuleError) Error() string {
	name := e.Rule
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("rule %s: %s: %s", name, e.Field, e.Problem)
}

var knownFaces = routes.Faces()

// Validate checks the rule and prepares it for matching.
func (r *Rule) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &RuleError{Rule: r.Name, Field: field, Problem: fmt.Sprintf(format, a...)}
	}
	if r.Name == "" {
		return bad("name", "required: rules are named in the journal and removed by name")
	}
	if strings.ContainsAny(r.Name, "/?# ") {
		return bad("name", "must not contain spaces, '/', '?' or '#'")
	}
	m := &r.Match
	for _, f := range m.Faces {
		if !contains(knownFaces, f) {
			return bad("match.faces", "unknown face %q; one of %s", f, strings.Join(knownFaces, ", "))
		}
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		return bad("match.path", "want an absolute path, got %q", m.Path)
	}
	if m.Probability != nil && (*m.Probability <= 0 || *m.Probability > 1) {
		return bad("match.probability", "want 0 < p <= 1, got %v", *m.Probability)
	}
	if m.FirstN < 0 || m.EveryNth < 0 || m.Count < 0 {
		return bad("match", "firstN, everyNth and count must not be negative")
	}
	// A fresh slice, not m.prefixes[:0]: the engine's copy of an added
	// rule shares the backing array with the caller's, which may be
	// validated again while the engine matches with it.
	m.prefixes = nil
	for _, s := range m.Sources {
		p, err := parseSource(s)
		if err != nil {
			return bad("match.sources", "%v", err)
		}
		m.prefixes = append(m.prefixes, p)
	}
	if r.Schedule.After.Duration < 0 || r.Schedule.For.Duration < 0 {
		return bad("schedule", "after and for must not be negative")
	}
	if r.Action.Fault == nil {
		return bad("action.type", "required; one of %s", strings.Join(Kinds(), ", "))
	}
	if err := r.Action.Fault.Validate(); err != nil {
		return bad("action", "%v", err)
	}
	if c, ok := r.Action.Fault.(connFault); ok && c.listenerLevel() {
		if len(m.Sources) > 0 || m.Path != "" || m.Identity != "" || m.Resource != "" || len(m.Methods) > 0 ||
			len(m.HeaderPresent) > 0 || len(m.HeaderAbsent) > 0 || m.Probability != nil || m.FirstN > 0 || m.EveryNth > 0 || m.Count > 0 {
			return bad("match", "a %s rule acts on the listener before any request is read, so it can only match faces", r.Action.Type)
		}
	}
	if h, ok := r.Action.Fault.(handshakeFault); ok && h.handshakeLevel() {
		if m.Path != "" || m.Identity != "" || m.Resource != "" || len(m.Methods) > 0 ||
			len(m.HeaderPresent) > 0 || len(m.HeaderAbsent) > 0 || m.Probability != nil || m.FirstN > 0 || m.EveryNth > 0 || m.Count > 0 {
			return bad("match", "a %s rule acts on the TLS handshake before any request is read, so it can only match faces and sources", r.Action.Type)
		}
	}
	return nil
}

func parseSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP or CIDR, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an IP or CIDR, got %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// registry holds the fault kinds by name.
var registry = map[string]func() Fault{}

// Register adds a fault kind; each kind's file calls it from init.
func Register(name string, newFault func() Fault) {
	if _, dup := registry[name]; dup {
		panic("chaos: fault kind registered twice: " + name)
	}
	registry[name] = newFault
}

// New returns a fresh fault of the named kind with default parameters.
func New(kind string) (Fault, error) {
	f, ok := registry[kind]
	if !ok {
		return nil, fmt.Errorf("unknown action type %q; one of %s", kind, strings.Join(Kinds(), ", "))
	}
	return f(), nil
}

// Kinds lists the registered fault kinds, sorted.
func Kinds() []string {
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
