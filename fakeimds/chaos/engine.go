package chaos

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/routes"
)

// Request is what rules match on.
type Request struct {
	Face   string
	Method string
	Path   string
	Header http.Header
	Source netip.Addr
	// Resource is the requested resource, if any.
	Resource string
	// Selector is the value of the identity selector the request sent
	// (client_id, object_id, msi_res_id, mi_res_id or principal_id; on the
	// authority, the form's client_id), empty if none. ClientID is that
	// value when the selector was client_id. Faults that echo what the
	// client asked for (set-field templates) read them; matching uses
	// IdentityKeys.
	Selector string
	ClientID string
	// IdentityKeys are the lower-cased values a rule's identity may match:
	// the selector the request sent, and the client ID, object ID and
	// resource ID of the identity it resolves to ("system" for the
	// system-assigned one).
	IdentityKeys []string
}

// State is a rule's lifecycle state.
type State string

// The rule states.
const (
	Pending   State = "pending"
	Active    State = "active"
	Expired   State = "expired"
	Exhausted State = "exhausted"
)

// RuleStatus is a rule with its counters, as the control API lists it.
type RuleStatus struct {
	Rule    Rule      `json:"rule"`
	State   State     `json:"state"`
	AddedAt time.Time `json:"addedAt"`
	// Matched counts requests that passed the rule's match; Hits those
	// the fault was applied to.
	Matched int `json:"matched"`
	Hits    int `json:"hits"`
}

type ruleState struct {
	Rule
	added   time.Time
	rnd     *rand.Rand
	matched int
	hits    int
}

func (r *ruleState) state(now time.Time) State {
	start := r.added.Add(r.Schedule.After.Duration)
	switch {
	case now.Before(start):
		return Pending
	case r.Schedule.For.Duration > 0 && !now.Before(start.Add(r.Schedule.For.Duration)):
		return Expired
	case r.Match.Count > 0 && r.hits >= r.Match.Count:
		return Exhausted
	}
	return Active
}

// Engine holds the rules and decides, per request, which apply. It is
// safe for concurrent use; decisions are made one request at a time so
// that, for a given seed and request order, the same requests see the
// same faults.
type Engine struct {
	seed int64
	now  func() time.Time

	mu    sync.Mutex
	rules []*ruleState
	// n mirrors len(rules) so the hot path can skip building a Request
	// when there are no rules, without taking the lock.
	n atomic.Int32
	// onChange is told when the rule set changes (listeners watch it).
	onChange []func()
}

// NewEngine returns an engine whose randomness derives from seed.
func NewEngine(seed int64, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{seed: seed, now: now}
}

// Seed returns the engine's seed.
func (e *Engine) Seed() int64 { return e.seed }

// ruleRand derives a rule's random source from the seed and its name, so
// that adding or removing one rule does not change another's draws.
func (e *Engine) ruleRand(name string) *rand.Rand {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(e.seed))
	h.Write(b[:])
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(uint64(e.seed), h.Sum64()))
}

// Add validates every rule, then adds them all, or none if any is
// invalid or named like a rule already present.
func (e *Engine) Add(rules ...Rule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := map[string]bool{}
	for _, r := range e.rules {
		names[r.Name] = true
	}
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return err
		}
		if names[rules[i].Name] {
			return &RuleError{Rule: rules[i].Name, Field: "name", Problem: "a rule with this name exists; remove it first or pick another name"}
		}
		names[rules[i].Name] = true
	}
	now := e.now()
	for _, r := range rules {
		e.rules = append(e.rules, &ruleState{Rule: r, added: now, rnd: e.ruleRand(r.Name)})
	}
	e.n.Store(int32(len(e.rules)))
	e.changed()
	return nil
}

// Len returns the number of rules, cheaply.
func (e *Engine) Len() int { return int(e.n.Load()) }

// Remove deletes the named rule and reports whether it existed.
func (e *Engine) Remove(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, r := range e.rules {
		if r.Name == name {
			e.rules = append(e.rules[:i], e.rules[i+1:]...)
			e.n.Store(int32(len(e.rules)))
			e.changed()
			return true
		}
	}
	return false
}

// Reset deletes every rule.
func (e *Engine) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = nil
	e.n.Store(0)
	e.changed()
}

// OnChange registers fn to be called after every change to the rule set.
func (e *Engine) OnChange(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onChange = append(e.onChange, fn)
}

func (e *Engine) changed() {
	for _, fn := range e.onChange {
		go fn()
	}
}

// Rules lists the rules with their state and counters, in order added.
func (e *Engine) Rules() []RuleStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	out := make([]RuleStatus, 0, len(e.rules))
	for _, r := range e.rules {
		out = append(out, RuleStatus{Rule: r.Rule, State: r.state(now), AddedAt: r.added, Matched: r.matched, Hits: r.hits})
	}
	return out
}

// Evaluate returns the combined effects of the active rules that hit req,
// or nil when none does. Rules apply in the order they were added; once a
// rule decides the answer (a status, a reset, a hang…) later ones are not
// consulted.
func (e *Engine) Evaluate(req *Request) *Effects {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rules) == 0 {
		return nil
	}
	now := e.now()
	var fx *Effects
	for _, r := range e.rules {
		if _, ok := r.Action.Fault.(connFault); ok {
			continue
		}
		if _, ok := r.Action.Fault.(handshakeFault); ok {
			continue
		}
		if r.state(now) != Active || !r.Match.matches(req) {
			continue
		}
		r.matched++
		if !r.Match.selects(r.matched, r.rnd) {
			continue
		}
		r.hits++
		if fx == nil {
			fx = &Effects{}
		}
		fx.Faults = append(fx.Faults, r.Name)
		if rf, ok := r.Action.Fault.(RequestFault); ok {
			rf.ApplyRequest(fx, r.rnd, req, now)
		} else {
			r.Action.Fault.Apply(fx, r.rnd)
		}
		if fx.terminal() {
			break
		}
	}
	return fx
}

// ListenerFault returns the name and fault of the first active
// listener-level rule (refuse, blackhole) for face, if any.
func (e *Engine) ListenerFault(face string) (string, Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for _, r := range e.rules {
		if _, ok := r.Action.Fault.(connFault); !ok {
			continue
		}
		if r.state(now) == Active && (len(r.Match.Faces) == 0 || contains(r.Match.Faces, face)) {
			return r.Name, r.Action.Fault
		}
	}
	return "", nil
}

// HandshakeFault returns the name and fault of the first active
// handshake-level rule (tls-certificate) for face and a client at src, if
// any, and counts the handshake as the rule's hit.
func (e *Engine) HandshakeFault(face string, src netip.Addr) (string, Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.handshakeRule(face, src)
	if r == nil {
		return "", nil
	}
	r.matched++
	r.hits++
	return r.Name, r.Action.Fault
}

// HandshakeRule names the rule HandshakeFault would apply, without
// counting a hit: the listener asks it of connections already open.
func (e *Engine) HandshakeRule(face string, src netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.handshakeRule(face, src); r != nil {
		return r.Name
	}
	return ""
}

// handshakeRule returns the first active handshake-level rule for face
// and src; e.mu is held.
func (e *Engine) handshakeRule(face string, src netip.Addr) *ruleState {
	now := e.now()
	for _, r := range e.rules {
		if _, ok := r.Action.Fault.(handshakeFault); !ok {
			continue
		}
		if r.state(now) != Active || (len(r.Match.Faces) > 0 && !contains(r.Match.Faces, face)) {
			continue
		}
		if r.Match.fromSource(src) {
			return r
		}
	}
	return nil
}

// NextChange returns when the state of a rule next changes by the clock
// (a pending rule starts or an active one expires), or zero if never.
func (e *Engine) NextChange() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, r := range e.rules {
		start := r.added.Add(r.Schedule.After.Duration)
		consider(start)
		if r.Schedule.For.Duration > 0 {
			consider(start.Add(r.Schedule.For.Duration))
		}
	}
	return next
}

// matches applies the static part of the match (everything but the
// probability and counters).
func (m *Match) matches(req *Request) bool {
	if len(m.Faces) > 0 && !contains(m.Faces, req.Face) {
		return false
	}
	if m.Path != "" && !pathMatches(m.Path, req.Path) {
		return false
	}
	if len(m.Methods) > 0 && !containsFold(m.Methods, req.Method) {
		return false
	}
	if m.Identity != "" && !containsFold(req.IdentityKeys, m.Identity) {
		return false
	}
	if m.Resource != "" && m.Resource != req.Resource {
		return false
	}
	if !m.fromSource(req.Source) {
		return false
	}
	for _, h := range m.HeaderPresent {
		if len(req.Header.Values(h)) == 0 {
			return false
		}
	}
	for _, h := range m.HeaderAbsent {
		if len(req.Header.Values(h)) > 0 {
			return false
		}
	}
	return true
}

// pathMatches compares a rule's path with a request's in canonical form
// (routes.Canonical): one trailing slash is ignored on both sides, since
// fakeimds serves its token endpoints with and without it and a rule
// written with the documented path must hit clients that add the slash.
// Case is not folded: fakeimds routes case-sensitively, so /Metadata/...
// is a 404 there and not the endpoint a rule names. A rule path ending in
// * is a prefix of the canonical request path; a prefix ending in a slash
// also matches the path without it (/metadata/instance/* hits
// /metadata/instance, as it hit /metadata/instance/ before). Neither side
// allocates: this runs for every request while rules exist.
func pathMatches(rule, path string) bool {
	c := routes.Canonical(path)
	if p, ok := strings.CutSuffix(rule, "*"); ok {
		return strings.HasPrefix(c, p) || len(p) == len(c)+1 && p[len(p)-1] == '/' && strings.HasPrefix(p, c)
	}
	return c == routes.Canonical(rule)
}

// selects applies the counters and probability to the nth matching request.
func (m *Match) selects(n int, rnd *rand.Rand) bool {
	if m.FirstN > 0 && n > m.FirstN {
		return false
	}
	if m.EveryNth > 0 && n%m.EveryNth != 0 {
		return false
	}
	if m.Probability != nil && rnd.Float64() >= *m.Probability {
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// String describes a rule briefly, for logs.
func (r Rule) String() string {
	return fmt.Sprintf("%s(%s)", r.Name, r.Action.Type)
}

// fromSource reports whether a client at src is one of the rule's
// sources (every client when it names none).
func (m *Match) fromSource(src netip.Addr) bool {
	if len(m.prefixes) == 0 {
		return true
	}
	src = src.Unmap()
	for _, p := range m.prefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}
