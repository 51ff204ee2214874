package scenario

// Fault rules of a workload identity run that match the authority face
// alone go to the stack's authority, which every run and spec shares: the
// run scopes each to its own pods' addresses, names it after its
// namespace, and removes it when the step ends or the run does
// (cleanupWorkloadIdentity), on cancellation too.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/idharness/idharness/fakeimds/chaos"
)

// onlyAuthority reports whether a rule matches the authority face alone:
// in a workload identity run, such a rule goes to the stack's authority.
func onlyAuthority(faces []string) bool {
	return len(faces) == 1 && faces[0] == "authority"
}

// addAuthorityFault adds rule to the stack's authority for the run's
// pods alone (their addresses as the rule's sources), under a name of
// the run's own, and returns how to remove it.
func (r *runner) addAuthorityFault(ctx context.Context, rule chaos.Rule) (func(context.Context) error, error) {
	r.mu.Lock()
	for addr := range r.source {
		rule.Match.Sources = append(rule.Match.Sources, addr)
	}
	r.mu.Unlock()
	if len(rule.Match.Sources) == 0 {
		return nil, errors.New("the run's pods have no addresses yet, so the authority rule cannot be scoped to them")
	}
	slices.Sort(rule.Match.Sources)
	rule.Name = r.kube.runNamespace + "." + rule.Name
	r.mu.Lock()
	r.authorityRules = append(r.authorityRules, rule.Name)
	r.mu.Unlock()
	if _, err := r.authority.AddFaults(ctx, rule); err != nil {
		return nil, fmt.Errorf("add rule %s to the authority: %w", rule.Name, err)
	}
	return func(ctx context.Context) error { return r.authority.RemoveFault(ctx, rule.Name) }, nil
}
