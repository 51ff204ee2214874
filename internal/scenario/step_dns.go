package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/dnsfault"
)

func init() {
	registerStep("dns", "answers the DNS queries of the run's pods for the stack's authority's name NXDOMAIN, or late by delay, or both, for the step's time; other pods keep the cluster's DNS; cluster runs with setup.workloadIdentity only",
		func() StepAction { return &dnsStep{} })
}

// dnsStep is a DNS fault for a host the run's pods resolve. The run's
// own resolver (internal/dnsfault, started when a scenario has a dns
// step) serves the run's pods alone and carries the fault out. The
// fault carries its end, dnsEndMargin after the step's, at which the
// resolver ends it by itself: its end waits neither for the undo's round
// trip through the pod's annotation (46-700 ms measured on kind) nor for
// a run that may be gone by then.
type dnsStep struct {
	// Host is whose name the fault hits: authority, the stack's
	// authority that workload identity clients exchange their tokens at.
	Host string `json:"host"`
	// NXDomain answers the name's queries "no such name".
	NXDomain bool `json:"nxdomain,omitempty"`
	// Delay holds each of the name's queries this long before the answer
	// (the real one, or NXDOMAIN with nxdomain).
	Delay duration.Duration `json:"delay,omitzero"`
}

// DNSHostAuthority is the host a dns step can fault so far.
const DNSHostAuthority = "authority"

// dnsEndMargin is how long after the step's end the resolver ends its
// fault. The step's window ends when the run reaches the step's end; the
// fault's end is taken when the step fires and kept by the resolver's
// clock (the host's, on kind; NTP-close elsewhere), and must not come a
// few milliseconds before the window's, letting a call that ends in the
// window resolve the name. Recovery is still measured from the window's
// end.
const dnsEndMargin = 500 * time.Millisecond

func (d *dnsStep) undoable() bool { return true }

// mustEnd: the resolver needs the fault's end; a fault to the end of
// the run is for: equal to the rest of the workload.
func (d *dnsStep) mustEnd() bool { return true }

func (d *dnsStep) needsCluster() string {
	return "the run's pods resolve the authority's name through a resolver of the run's own in the cluster"
}

func (d *dnsStep) validate(s *Scenario, _ identities, field string) error {
	if d.Host != DNSHostAuthority {
		return bad(field+".host", "want %s (the stack's authority, whose name workload identity clients resolve), got %q", DNSHostAuthority, d.Host)
	}
	if s.Setup.WorkloadIdentity == nil {
		return bad(field, "needs setup.workloadIdentity: only workload identity clients resolve the authority's name")
	}
	if !d.NXDomain && d.Delay.Duration == 0 {
		return bad(field, "does nothing: set nxdomain: true, a delay (e.g. delay: 5s), or both")
	}
	if d.Delay.Duration < 0 || d.Delay.Duration > dnsfault.MaxDelay {
		return bad(field+".delay", "want 0 to %v (every resolver has given up by then), got %v", dnsfault.MaxDelay, d.Delay.Duration)
	}
	return nil
}

// what says what the fault answers, in words.
func (d *dnsStep) what() string {
	switch {
	case d.NXDomain && d.Delay.Duration > 0:
		return fmt.Sprintf("NXDOMAIN %v late", d.Delay.Duration)
	case d.NXDomain:
		return "NXDOMAIN"
	}
	return fmt.Sprintf("%v late", d.Delay.Duration)
}

func (d *dnsStep) apply(ctx context.Context, r *runner, st Step) (func(context.Context) error, string, error) {
	if r.kube == nil || r.kube.dns == nil {
		return nil, "dns", errors.New("a dns step needs the run's DNS resolver, which a cluster run with setup.workloadIdentity starts")
	}
	res := r.kube.dns
	id := st.Name
	if id == "" {
		id = fmt.Sprintf("at-%v", st.At.Duration)
	}
	detail := fmt.Sprintf("DNS for %s answers %s to the run's pods (resolver %s)", res.host, d.what(), res.pod)
	f := dnsfault.Fault{Names: []string{res.host}, NXDomain: d.NXDomain, Delay: d.Delay, Until: time.Now().Add(st.For.Duration + dnsEndMargin)}
	// Set returns once the resolver reports the fault applied: the
	// step's window starts then (StepRecord.Applied).
	if err := res.ctl.Set(ctx, id, f); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error {
		hits, err := res.ctl.Remove(ctx, id)
		if err != nil {
			return err
		}
		r.printf("dns fault %s ended: it hit %d queries for %s", id, hits, res.host)
		if hits == 0 {
			// Like an expectation with nothing to judge: the verdicts
			// of the step's window would hold without the fault.
			return fmt.Errorf("the fault hit no query: the run's pods did not resolve %s while it lasted, so the step tested nothing (start the clients within the step)", res.host)
		}
		return nil
	}, detail, nil
}

// usesDNS reports whether s has a dns step, for which a cluster run
// starts its resolver.
func (s *Scenario) usesDNS() bool {
	for _, st := range s.Timeline {
		if _, ok := st.Action.(*dnsStep); ok {
			return true
		}
	}
	return false
}
