package stack

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// Component is a part of the stack beyond fakeimds and the protected
// resource: an identity implementation under test (a node agent, a
// webhook, a third party's agent) with its images, manifests and
// readiness. Components register themselves (Register, from an init
// function in a file of their own) and every run deploys the enabled ones.
type Component struct {
	// Name identifies the component in logs and flags.
	Name string
	// Programs are the Go programs to build as images: short image name
	// (fixtures.Images.Extra key) → main package, e.g. "nodeagent" →
	// "./cmd/nodeagent".
	Programs map[string]string
	// Objects renders the component's objects for the run.
	Objects func(p fixtures.Params) ([]*unstructured.Unstructured, error)
	// Wait waits until the component is ready.
	Wait func(ctx context.Context, dc *deploy.Client, ns string) error
	// Default says whether runs deploy it unless told otherwise.
	Default bool
}

var (
	regMu      sync.Mutex
	components = map[string]Component{}
)

// Register adds a component; it panics on a duplicate name.
func Register(c Component) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := components[c.Name]; dup {
		panic("stack: component registered twice: " + c.Name)
	}
	components[c.Name] = c
}

// Components returns the registered components, by name.
func Components() []Component {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Component, 0, len(components))
	for _, c := range components {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Selected returns the components a run deploys: names, or the default
// ones when names is nil.
func Selected(names []string) ([]Component, error) {
	all := Components()
	if names == nil {
		var out []Component
		for _, c := range all {
			if c.Default {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []Component
	for _, n := range names {
		found := false
		for _, c := range all {
			if c.Name == n {
				out, found = append(out, c), true
			}
		}
		if !found {
			var known []string
			for _, c := range all {
				known = append(known, c.Name)
			}
			return nil, fmt.Errorf("unknown component %q; known: %v", n, known)
		}
	}
	return out, nil
}
