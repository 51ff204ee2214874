package dnsfault

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// Bounds of a fault. A delay beyond a minute tests nothing a minute does
// not (every resolver has given up by then); a fault ends by its Until
// within MaxFaultLife even if whoever set it is gone.
const (
	MaxDelay     = time.Minute
	MaxFaultLife = 30 * time.Minute
)

// Fault is what the resolver does to the queries for some names while it
// lasts: answer "no such name" (NXDomain), hold the answer back (Delay),
// or both (a late NXDOMAIN). A query matches a name when it asks for the
// name itself or the name with any suffix: a pod's resolver tries its
// search domains first (wi-authority.ns.svc.RUN.svc.cluster.local, …),
// and every one of those queries is the name's.
type Fault struct {
	// Names are lower-case host names, without the final dot.
	Names []string `json:"names"`
	// NXDomain answers every matching query NXDOMAIN instead of
	// forwarding it.
	NXDomain bool `json:"nxdomain,omitempty"`
	// Delay holds each matching query this long before it is answered.
	Delay duration.Duration `json:"delay,omitzero"`
	// Until ends the fault: the resolver forgets it then, whatever
	// happens to whoever set it.
	Until time.Time `json:"until"`
}

// Validate checks the fault against now.
func (f Fault) Validate(now time.Time) error {
	if len(f.Names) == 0 {
		return errors.New("names: required: the host names whose queries the fault hits")
	}
	for _, n := range f.Names {
		if err := validName(n); err != nil {
			return fmt.Errorf("names: %w", err)
		}
	}
	if !f.NXDomain && f.Delay.Duration == 0 {
		return errors.New("the fault does nothing: set nxdomain, a delay, or both")
	}
	if d := f.Delay.Duration; d < 0 || d > MaxDelay {
		return fmt.Errorf("delay: want 0 to %v, got %v", MaxDelay, d)
	}
	if !f.Until.After(now) || f.Until.Sub(now) > MaxFaultLife {
		return fmt.Errorf("until: want a time within %v from now (%s), got %s", MaxFaultLife, now.UTC().Format(time.RFC3339), f.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// matches reports whether a query for name (lower-case, no final dot) is
// the fault's.
func (f Fault) matches(name string) bool {
	for _, n := range f.Names {
		if name == n || strings.HasPrefix(name, n+".") {
			return true
		}
	}
	return false
}

// effect is what the active faults do to one query, combined: the
// longest delay, and NXDOMAIN if any fault answers it.
type effect struct {
	nxdomain bool
	delay    time.Duration
}

// equal reports whether f and g are the same fault.
func (f Fault) equal(g Fault) bool {
	return slices.Equal(f.Names, g.Names) && f.NXDomain == g.NXDomain && f.Delay == g.Delay && f.Until.Equal(g.Until)
}
