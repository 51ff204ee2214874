package scenario

import (
	"context"
	"errors"
	"fmt"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
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
		return r.countingHits(f.Name, undo), detail + " at the authority, for the run's pods", err
	}
	if _, err := r.ctl.AddFaults(ctx, rule); err != nil {
		return nil, detail, err
	}
	r.noteRule(f.Name, r.ctl, rule.Name)
	// The rule expires by its schedule; removing it leaves the list tidy.
	return r.countingHits(f.Name, func(ctx context.Context) error { return r.ctl.RemoveFault(ctx, rule.Name) }), detail, nil
}

// warnings returns the rule's lint warnings: a rule that can never match
// what fakeimds serves is valid, but judges nothing.
func (f *faultStep) warnings() []string { return f.Lint() }

// addedRule is a fault step's rule as the run added it: the fake that
// holds it (the node's fakeimds, or the stack's authority), the name it
// holds it under, and its hit counter once read.
type addedRule struct {
	fake *client.Client
	name string
	hits *int
}

// noteRule records that the step's rule written as name was added to
// fake as added, for the step's record and fault-reached.
func (r *runner) noteRule(name string, fake *client.Client, added string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rules == nil {
		r.rules = map[string]*addedRule{}
	}
	r.rules[name] = &addedRule{fake: fake, name: added}
}

// countingHits returns undo preceded by reading the rule's hit counter:
// removing the rule takes its counter with it.
func (r *runner) countingHits(name string, undo func(context.Context) error) func(context.Context) error {
	if undo == nil {
		return nil
	}
	return func(ctx context.Context) error {
		r.readHits(ctx, name)
		return undo(ctx)
	}
}

// readHits reads the hit counter of the rule written as name from the
// fake holding it, once. A counter that cannot be read is left unread:
// the journal still names the requests the rule faulted.
func (r *runner) readHits(ctx context.Context, name string) {
	r.mu.Lock()
	ar := r.rules[name]
	r.mu.Unlock()
	if ar == nil || ar.hits != nil {
		return
	}
	rules, err := ar.fake.Faults(ctx)
	if err != nil {
		r.printf("fault %s: its hit counter could not be read: %v", name, err)
		return
	}
	for _, rs := range rules {
		if rs.Rule.Name == ar.name {
			n := rs.Hits
			r.mu.Lock()
			ar.hits = &n
			r.mu.Unlock()
			return
		}
	}
}

// recordRules reads the counters of the rules still in place (steps
// without for) and puts each fault step's rule and hits on its record.
func (r *runner) recordRules(ctx context.Context, steps []StepRecord) {
	for i := range steps {
		f, ok := r.s.Timeline[steps[i].Index].Action.(*faultStep)
		if !ok {
			continue
		}
		r.readHits(ctx, f.Name)
		r.mu.Lock()
		if ar := r.rules[f.Name]; ar != nil {
			steps[i].Rule, steps[i].Hits = ar.name, ar.hits
		}
		r.mu.Unlock()
	}
}
