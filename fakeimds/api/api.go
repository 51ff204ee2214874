// Package api holds the wire types of the fakeimds control API, shared by
// the server and its Go client so the two cannot drift apart.
package api

import (
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
)

// Error is the body of every control API error.
type Error struct {
	Error string `json:"error"`
	// Field names the request field at fault, if one is.
	Field string `json:"field,omitempty"`
}

// TokenSettings is the body of GET and PUT /v1/tokens. In a PUT, fields
// left out keep their value.
type TokenSettings struct {
	// Lifetime is the default lifetime of new tokens.
	Lifetime *config.Duration `json:"lifetime,omitempty"`
	// Cache turns the server's token cache on or off.
	Cache *bool `json:"cache,omitempty"`
	// RefreshBefore: a cached token with less than this left is replaced.
	RefreshBefore *config.Duration `json:"refreshBefore,omitempty"`
}

// IdentityPatch is the body of PATCH /v1/identities: what to change on
// one identity. A zero tokenLifetime restores the server default.
type IdentityPatch struct {
	TokenLifetime *config.Duration `json:"tokenLifetime,omitempty"`
}

// HeaderControlToken carries the control API's shared secret
// (listen.controlTokenFile). A custom header rather than Authorization:
// the API server's pod proxy, through which idharness reaches the control
// API in a cluster, consumes Authorization for its own authentication.
const HeaderControlToken = "X-Idharness-Control-Token"

// The control API's paths.
const (
	PathHealth       = "/healthz"
	PathMetrics      = "/metrics"
	PathConfig       = "/v1/config"
	PathIdentities   = "/v1/identities"
	PathSystem       = "/v1/identities/system"
	PathTokens       = "/v1/tokens"
	PathTokensFlush  = "/v1/tokens/flush"
	PathJournal      = "/v1/journal"
	PathJournalWatch = "/v1/journal/stream"
	PathReset        = "/v1/reset"
	PathChaos        = "/v1/chaos"
	PathFaults       = "/v1/faults"
	PathThrottle     = "/v1/throttle"
)

// ChaosState is the body of GET /v1/chaos: the seed every fault decision
// derives from (record it to replay a run), the throttling limits and the
// rules with their counters.
type ChaosState struct {
	Seed     int64              `json:"seed"`
	Throttle chaos.Limits       `json:"throttle"`
	Rules    []chaos.RuleStatus `json:"rules"`
}
