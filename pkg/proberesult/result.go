// Package proberesult is the format of the probe's output: one JSON line
// per attempt (Result) and a last line of counts (Summary). cmd/probe
// writes it; the suites, the scenario runner and the reports read it
// back.
//
// It is public, and apart from the probe (internal/probe), because what
// the probe measured reaches other modules: suites/framework hands them
// ProbeRun.Results and ByClient's groups, which they must be able to name
// and judge. The types here are the format's one definition.
package proberesult

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// Result statuses.
const (
	// StatusOK: the client returned a token and, when a protected resource
	// was configured, the resource answered 200.
	StatusOK = "ok"
	// StatusError: the client returned an error, or the resource refused
	// the token; Stage says which.
	StatusError = "error"
)

// Stages at which an attempt can fail.
const (
	// StageToken: the client returned an error.
	StageToken = "token"
	// StageResource: the client returned a token but the protected
	// resource did not answer 200 (or could not be reached).
	StageResource = "resource"
)

// RequestsUnmeasured is Result.Requests for a client program: its
// requests leave another process, so the probe cannot count them; the
// fake's journal does, by the pod's address.
const RequestsUnmeasured = -1

// Result is one attempt of one client: one GetToken call and, when a
// protected resource is configured, one use of the token there. The probe
// writes each as a JSON line on stdout; suites, the scenario runner and
// reports read the same type back, so every field is named for what was
// measured rather than what was expected.
type Result struct {
	// Time is when the attempt started (UTC, RFC 3339 with nanoseconds).
	Time time.Time `json:"time"`
	// Client is the client's name (the clients registry's, package
	// clients), e.g. "azidentity-mi".
	Client string `json:"client"`
	// Mode is the identity mode the probe ran in: "imds", "appservice" or
	// "workload-identity".
	Mode string `json:"mode"`
	// Attempt numbers the probe's rounds from 1; every client runs once
	// per round, so results of one round share the number.
	Attempt int `json:"attempt"`
	// Call numbers the calls of a round's fan-out from 1 (--parallel);
	// 0, and left out, when the probe makes one call per round.
	Call int `json:"call,omitempty"`
	// IdentityAsked is the identity the client was told to use: "system",
	// "client_id=…", "object_id=…" or "resource_id=…" (the probe's
	// Identity.String). In workload identity mode it is "client_id=" and
	// the client ID used.
	IdentityAsked string `json:"identityAsked"`
	// IdentityGot is the oid claim of the token received: the object ID of
	// the identity the token is for. Empty when no token was received.
	IdentityGot string `json:"identityGot,omitempty"`
	// ClientIDGot is the token's appid claim: the identity's client ID.
	ClientIDGot string `json:"clientIdGot,omitempty"`
	// Audience is the token's aud claim.
	Audience string `json:"audience,omitempty"`
	// Resource is the resource the token was asked for (without the
	// "/.default" that scope-based clients add).
	Resource string `json:"resource"`
	// Status is StatusOK or StatusError.
	Status string `json:"status"`
	// Stage says where an attempt with StatusError failed: StageToken or
	// StageResource.
	Stage string `json:"stage,omitempty"`
	// Error is the error text as the client (or the resource request)
	// returned it, unedited, so that specs can match on what real clients
	// say.
	Error string `json:"error,omitempty"`
	// HTTPStatus is the status of the last HTTP response the client
	// received during the call, measured on its transport; 0 when the call
	// made no request or got no response. It can differ from the outcome:
	// azidentity-default's header-less IMDS probe gets a 400, and when the
	// token then comes from the process-wide cache that 400 is the last
	// status, with Requests 1 and Status ok.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// LatencyMs is how long the token call took, in milliseconds.
	LatencyMs Millis `json:"latencyMs"`
	// ExpiresOn is when the client believes the token expires, as its SDK
	// reported it (UTC); zero when the SDK reports no expiry. Checks on
	// expiry judge this, not the JWT: a client that misreads expires_on
	// believes something else than the token says.
	ExpiresOn time.Time `json:"expiresOn,omitzero"`
	// TokenExp is the token's exp claim (UTC, RFC 3339); zero when no token
	// was received. It is evidence beside ExpiresOn.
	TokenExp time.Time `json:"tokenExp,omitzero"`
	// TokenExpired is true when the token had expired when it was used
	// (just before the request to the protected resource or, without one,
	// right after the client returned it) by the JWT's exp: the resource
	// would refuse it whatever the client believes.
	TokenExpired bool `json:"tokenExpired"`
	// FromCache is true when the call returned a token without making any
	// HTTP request: the client's cache answered. It is measured on the
	// client's transport, never inferred; see internal/probe's package
	// documentation for why a first call can be served from cache.
	FromCache bool `json:"fromCache"`
	// Requests is the number of HTTP requests the call made, retries and
	// probes included, counted on a Go client's transport; -1
	// (RequestsUnmeasured) for a client program, whose requests the fake's
	// journal counts by the pod's address instead, and for the calls of a
	// fan-out (--parallel), which share one transport.
	Requests int `json:"requests"`
	// ResourceStatus is the HTTP status the protected resource answered
	// with; 0 when none was configured or it could not be reached.
	ResourceStatus int `json:"resourceStatus,omitempty"`
	// Secret is the secret value the protected resource returned, if any.
	Secret string `json:"secret,omitempty"`
	// ClaimsError says why the token's claims could not be read (not a
	// JWT, say); the identity fields are then empty.
	ClaimsError string `json:"claimsError,omitempty"`

	// The fields below are wire checks, filled by the raw client only.

	// Body is the raw response body of a failed token request (truncated
	// to 4 KiB); token bodies are never recorded.
	Body string `json:"body,omitempty"`
	// FieldTypes maps each field of a 200 token response to its JSON type
	// ("string", "number", "bool", "null", "object", "array"), so that
	// specs can assert that IMDS returns every field as a string.
	FieldTypes map[string]string `json:"fieldTypes,omitempty"`
	// ResourceEcho is the resource field of a 200 token response, which
	// must echo the request exactly.
	ResourceEcho string `json:"resourceEcho,omitempty"`
}

// OK reports whether the attempt succeeded.
func (r Result) OK() bool { return r.Status == StatusOK }

// ClientSummary counts one client's attempts.
type ClientSummary struct {
	Attempts int `json:"attempts"`
	OK       int `json:"ok"`
	Errors   int `json:"errors"`
	// FromCache counts attempts served without an HTTP request.
	FromCache int `json:"fromCache"`
	// ExpiredPresented counts tokens that had expired when used.
	ExpiredPresented int `json:"expiredPresented"`
	// Identities counts tokens per oid received.
	Identities map[string]int `json:"identities,omitempty"`
}

// Summary is the last line the probe writes: counts over all attempts.
// Summary is always true, which tells it apart from a Result line.
type Summary struct {
	Summary          bool                     `json:"summary"`
	Time             time.Time                `json:"time"`
	Mode             string                   `json:"mode"`
	Rounds           int                      `json:"rounds"`
	Attempts         int                      `json:"attempts"`
	OK               int                      `json:"ok"`
	Errors           int                      `json:"errors"`
	FromCache        int                      `json:"fromCache"`
	ExpiredPresented int                      `json:"expiredPresented"`
	DurationMs       Millis                   `json:"durationMs"`
	Clients          map[string]ClientSummary `json:"clients"`
	// Interrupted is true when the probe was stopped (SIGTERM) before its
	// count or duration was reached.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Add counts r, as the probe does for every attempt it writes.
func (s *Summary) Add(r Result) {
	if s.Clients == nil {
		s.Clients = map[string]ClientSummary{}
	}
	c := s.Clients[r.Client]
	s.Attempts++
	c.Attempts++
	if r.OK() {
		s.OK++
		c.OK++
	} else {
		s.Errors++
		c.Errors++
	}
	if r.FromCache {
		s.FromCache++
		c.FromCache++
	}
	if r.TokenExpired {
		s.ExpiredPresented++
		c.ExpiredPresented++
	}
	if r.IdentityGot != "" {
		if c.Identities == nil {
			c.Identities = map[string]int{}
		}
		c.Identities[r.IdentityGot]++
	}
	s.Clients[r.Client] = c
}

// Line is one line of probe output: a Result, or the Summary when
// Summary is non-nil.
type Line struct {
	Result
	Summary *Summary
}

// ParseLine decodes one line of probe output. Lines that are not JSON
// objects (a runtime's noise in pod logs) return an error.
func ParseLine(b []byte) (Line, error) {
	var probe struct {
		Summary bool `json:"summary"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Line{}, fmt.Errorf("probe output line is not a JSON object: %w", err)
	}
	if probe.Summary {
		var s Summary
		if err := json.Unmarshal(b, &s); err != nil {
			return Line{}, fmt.Errorf("decode probe summary: %w", err)
		}
		return Line{Summary: &s}, nil
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Line{}, fmt.Errorf("decode probe result: %w", err)
	}
	return Line{Result: r}, nil
}

// Millis is a duration written in JSON as milliseconds.
type Millis = duration.Millis
