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
	written := rule.Name
	rule.Name = r.kube.runNamespace + "." + rule.Name
	r.mu.Lock()
	r.authorityRules = append(r.authorityRules, rule.Name)
	r.mu.Unlock()
	if _, err := r.authority.AddFaults(ctx, rule); err != nil {
		return nil, fmt.Errorf("add rule %s to the authority: %w", rule.Name, err)
	}
	r.noteRule(written, r.authority, rule.Name)
	return func(ctx context.Context) error { return r.authority.RemoveFault(ctx, rule.Name) }, nil
}

// authorityJournal returns the stack's authority's journal entries of
// the run, on the run's clock: those from the run's pods and those its
// rules faulted, since the workload's start (the authority serves every
// run and spec on the cluster; an address may have been another pod's
// before). The exchanges never reach the node's fakeimds, so without it
// a run could not tell whether its authority faults met any request.
// It is read once, at the end, and only when the run's steps added
// rules there; a journal that cannot be read leaves the rules' counters
// as the evidence.
func (r *runner) authorityJournal(ctx context.Context) []Request {
	r.mu.Lock()
	rules := slices.Clone(r.authorityRules)
	r.mu.Unlock()
	if r.authority == nil || len(rules) == 0 {
		return nil
	}
	entries, err := r.authority.Journal(ctx, 0)
	if err != nil {
		r.printf("the authority's journal could not be read (fault-reached falls back on the rules' counters): %v", err)
		return nil
	}
	ours := func(f string) bool { return slices.Contains(rules, f) }
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Request
	for _, e := range entries {
		if e.Time.Before(r.start) {
			continue
		}
		if _, pod := r.source[e.RemoteHost()]; !pod && !slices.ContainsFunc(e.Faults, ours) {
			continue
		}
		out = append(out, Request{At: Millis(e.Time.Sub(r.start)), Client: r.clientOf(e), Entry: e})
	}
	return out
}
