package scenario

import (
	"context"
	"errors"
	"fmt"

	"github.com/idharness/idharness/fakeimds/chaos"
)

func init() {
	registerStep("fault", "adds a fakeimds fault rule (match, action) for the step's time", func() StepAction { return &faultStep{} })
}

// faultStep adds a fault rule, in the fakeimds chaos rule format. Its
// timing comes from the step's at and for: the rule's own schedule stays
// empty.
type faultStep struct {
	chaos.Rule
}

func (f *faultStep) undoable() bool { return true }

func (f *faultStep) validate(s *Scenario, _ identities, field string) error {
	r := &f.Rule
	if r.Schedule.After.Duration != 0 || r.Schedule.For.Duration != 0 {
		return bad(field+".schedule", "leave it out: the step's at and for time the rule")
	}
	if err := r.Validate(); err != nil {
		var re *chaos.RuleError
		if errors.As(err, &re) {
			return bad(field+"."+re.Field, "%s", re.Problem)
		}
		return bad(field, "%v", err)
	}
	if err := checkFaultDurations(r.Action.Fault, field+".action"); err != nil {
		return err
	}
	// Rule names key the fake's rule list: the first step with a name owns it.
	for _, st := range s.Timeline {
		if other, ok := st.Action.(*faultStep); ok && other.Name == r.Name {
			if other != f {
				return bad(field+".name", "rule %q is added twice; rule names must be unique in a scenario", r.Name)
			}
			break
		}
	}
	return nil
}

func (f *faultStep) checkCluster(_ *Scenario, field string) error {
	if len(f.Match.Sources) > 0 {
		return errors.New(field + ".match.sources: client addresses are pod IPs in a cluster, unknown when the scenario is written; match the clients by resource or identity instead")
	}
	return nil
}

func (f *faultStep) apply(ctx context.Context, r *runner, st Step) (func(context.Context) error, string, error) {
	rule := f.Rule
	rule.Schedule.For = st.For
	detail := fmt.Sprintf("fault %s (%s)", rule.Name, rule.Action.Type)
	if r.authority != nil && onlyAuthority(rule.Match.Faces) {
		undo, err := r.addAuthorityFault(ctx, rule)
		return undo, detail + " at the authority, for the run's pods", err
	}
	_, err := r.ctl.AddFaults(ctx, rule)
	// The rule expires by its schedule; removing it leaves the list tidy.
	return func(ctx context.Context) error { return r.ctl.RemoveFault(ctx, rule.Name) }, detail, err
}

// warnings returns the rule's lint warnings: a rule that can never match
// what fakeimds serves is valid, but judges nothing.
func (f *faultStep) warnings() []string { return f.Lint() }
