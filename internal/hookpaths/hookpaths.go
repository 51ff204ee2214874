// Package hookpaths names the URL paths that the reference workload
// identity webhook serves with `wiwebhook serve --test-paths`: a slow
// mutation and a second, container-adding webhook. The webhook serves
// them and the scenario step wiPod points webhook configurations at them;
// both import this package, so that the step, a judge, never imports the
// reference implementation (internal/boundary).
package hookpaths

import "time"

const (
	// Mutate is the webhook's mutation path (wiwebhook.MutatePath).
	Mutate = "/mutate-v1-pod"
	// SlowPrefix starts SlowPath: /slow/DURATION/mutate-v1-pod answers
	// as Mutate does, DURATION later.
	SlowPrefix = "/slow/"
	// AddContainer is a second, unrelated webhook: it adds
	// AddedContainer to labelled pods, as a service mesh or a logging
	// agent's webhook adds its sidecar.
	AddContainer = "/add-container"
	// AddedContainer is the container AddContainer adds.
	AddedContainer = "added"
	// MaxSlowDelay bounds SlowPath's delay: beyond the API server's
	// longest webhook timeout (30 s), a longer wait proves nothing and
	// holds a connection.
	MaxSlowDelay = 30 * time.Second
)

// SlowPath is the path at which the webhook answers d late, so that the
// API server's timeoutSeconds runs out first.
func SlowPath(d time.Duration) string { return SlowPrefix + d.String() + Mutate }
