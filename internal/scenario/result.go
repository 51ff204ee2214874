package scenario

import (
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/journal"
)

// Millis is a duration written in JSON as milliseconds.
type Millis = duration.Millis

// Result is what a run produced: the verdicts and the evidence they rest
// on. It is written as JSON by `idharness scenario run`.
type Result struct {
	// Scenario is the scenario's id; Title and File identify it further.
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	File     string `json:"file,omitempty"`
	// Seed is the fault rules' seed, for a replay.
	Seed int64 `json:"seed"`
	// Started is when the timeline and the workload started; every
	// *Ms offset below counts from it.
	Started  time.Time `json:"started"`
	Duration Millis    `json:"durationMs"`
	// Passed is true when every verdict is as expected.
	Passed   bool           `json:"passed"`
	Verdicts []Verdict      `json:"verdicts"`
	Steps    []StepRecord   `json:"steps"`
	Clients  []ClientResult `json:"clients"`
	// Requests is the fake's journal of the run, each entry with the
	// client that sent it when known.
	Requests []Request `json:"requests"`
	// Authority is the stack's workload identity authority's journal of
	// an in-cluster run whose fault steps went there: the run's pods'
	// token exchanges and the requests its rules faulted. It is evidence
	// for fault-reached; the kinds counted on requests judge Requests
	// alone.
	Authority []Request `json:"authorityRequests,omitempty"`
	// InCluster says where an in-cluster run ran; nil for a local run.
	InCluster *InCluster `json:"inCluster,omitempty"`
}

// InCluster records where an in-cluster run (RunInCluster) ran.
type InCluster struct {
	// Cluster is the kind cluster's name, or the kubeconfig's path.
	Cluster string `json:"cluster"`
	// Node is the node whose fakeimds the run drove and where the pods ran.
	Node string `json:"node"`
	// Namespace held the probe pods; it is deleted after the run.
	Namespace string `json:"namespace"`
	// Pods maps each client to its probe pod.
	Pods map[string]string `json:"pods"`
}

// StepRecord is a timeline step as it was played.
type StepRecord struct {
	// Index is the step's position in the timeline; Name and Kind are
	// the step's; Detail says what was done.
	Index  int    `json:"index"`
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// At is when the step fired.
	At Millis `json:"atMs"`
	// Applied is when its action had been applied (the control API
	// answered): a fault is in effect from then on, not from At. In a
	// cluster the two are a round trip through the API server apart,
	// some 100 ms on a loaded node.
	Applied Millis `json:"appliedMs,omitempty"`
	// End is when the step was undone or its rule expired, if it was.
	End Millis `json:"endMs,omitempty"`
	// Error is why the step could not be applied or undone, if it could not.
	Error string `json:"error,omitempty"`
	// Rule is the name a fault step's rule was added under (at the
	// stack's authority, NAMESPACE.RULE), by which the journal names the
	// requests it faulted.
	Rule string `json:"rule,omitempty"`
	// Hits is how many requests (connections, handshakes) the fault
	// step's rule faulted by the fake's own counter, read as the step
	// ended (or at the end of the run); nil when it could not be read.
	Hits *int `json:"hits,omitempty"`
}

// ClientResult is one simulated client and its attempts.
type ClientResult struct {
	// Name is GROUP-N; Group and Client are the client group's.
	Name   string `json:"name"`
	Group  string `json:"group"`
	Client string `json:"client"`
	// Language is the client's language; Runtime and Versions are what
	// a client program reported of itself (its runtime, and each SDK
	// package's version as loaded).
	Language string            `json:"language,omitempty"`
	Runtime  string            `json:"runtime,omitempty"`
	Versions map[string]string `json:"versions,omitempty"`
	// Log is the end of an exec workload's output.
	Log []string `json:"log,omitempty"`
	// Identity is the client ID of the identity the client should get.
	Identity string `json:"identity"`
	// Resource is the client's own resource (see ClientGroup.Resource).
	Resource string    `json:"resource"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one GetToken / AcquireToken call of a client.
type Attempt struct {
	// Start and End bound the call; OK says whether it returned a token,
	// Error why not.
	Start Millis `json:"startMs"`
	End   Millis `json:"endMs"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Cancelled attempts were cut off by the end of the workload; they
	// count for no expectation.
	Cancelled bool `json:"cancelled,omitempty"`
	// Requests counts the requests the fake received from the client
	// during the attempt; 0 for a success means the client's cache
	// answered.
	Requests int `json:"requests"`
	// ExpiresOn is when the client believes the token expires, as its
	// SDK reported it: the expectations on expiry judge this.
	ExpiresOn time.Time `json:"expiresOn,omitzero"`
	// TokenAppID and TokenExp are read from the token's claims (the JWT's
	// appid and exp), as evidence.
	TokenAppID string    `json:"tokenAppId,omitempty"`
	TokenExp   time.Time `json:"tokenExp,omitzero"`
	// Call numbers the attempt within its fan-out (a group's parallel),
	// from 1; 0, and left out, when the client makes one call at a time.
	// The calls of a fan-out share Start's clock but end on their own.
	Call int `json:"call,omitempty"`
	// ResourceStatus is the HTTP status the protected resource answered
	// when the attempt's token was used there (a group's useToken); 0
	// when it was not used, or the resource could not be reached, which
	// ResourceError then says.
	ResourceStatus int    `json:"resourceStatus,omitempty"`
	ResourceError  string `json:"resourceError,omitempty"`
}

// Took returns how long the attempt took.
func (a Attempt) Took() time.Duration { return a.End.D() - a.Start.D() }

// Request is one journal entry of the fake, placed on the run's clock.
type Request struct {
	// At is when the fake received the request.
	At Millis `json:"atMs"`
	// Client names the simulated client that sent it; empty when unknown.
	Client string `json:"client,omitempty"`
	journal.Entry
}

// The outcomes of a verdict.
const (
	// OutcomePass: the expectation held.
	OutcomePass = "pass"
	// OutcomeFail: the expectation did not hold.
	OutcomeFail = "fail"
	// OutcomeKnownFailure: it did not hold, as the scenario's finding
	// says real clients behave.
	OutcomeKnownFailure = "known-failure"
	// OutcomeUnexpectedPass: it held although the scenario records a
	// finding that it does not; the finding no longer reproduces.
	OutcomeUnexpectedPass = "unexpected-pass"
)

// Verdict is the outcome of one expectation.
type Verdict struct {
	// Expectation describes the expectation in words; Kind is its kind.
	Expectation string `json:"expectation"`
	Kind        string `json:"kind"`
	// Held says whether the condition held.
	Held    bool   `json:"held"`
	Outcome string `json:"outcome"`
	// Detail gives the figures the verdict rests on.
	Detail string `json:"detail"`
	// Finding is the scenario's recorded finding, if any.
	Finding string `json:"finding,omitempty"`
	// Clients are the verdicts on each client, for the kinds that judge
	// clients one by one (recovers, cached, retry-budget, …); Held is
	// still the expectation's overall result. Clients a kind could not
	// judge (a cached expectation's clients that held no token) are left
	// out.
	Clients []ClientVerdict `json:"clients,omitempty"`
	// Scope is the client group the expectation concerns; empty for all.
	Scope string `json:"scope,omitempty"`
}

// ClientVerdict is an expectation's verdict on one client.
type ClientVerdict struct {
	// Client is the client's name (ClientResult.Name), Group its group.
	Client string `json:"client"`
	Group  string `json:"group"`
	// Held says whether the expectation held for this client.
	Held bool `json:"held"`
	// Detail gives the client's figures.
	Detail string `json:"detail"`
}

// OK reports whether the verdict is as the scenario expects.
func (v Verdict) OK() bool { return v.Outcome == OutcomePass || v.Outcome == OutcomeKnownFailure }
