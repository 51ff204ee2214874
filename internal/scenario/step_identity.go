package scenario

import (
	"context"

	"github.com/idharness/idharness/fakeimds/client"
)

func init() {
	registerStep("attach", "attaches a setup identity by name (system: the system-assigned one); for detaches it again", func() StepAction { return new(attachStep) })
	registerStep("detach", "detaches an identity by name (system: the system-assigned one); for attaches it again", func() StepAction { return new(detachStep) })
}

// attachStep attaches the named identity: one of setup.identities, or
// "system" for the system-assigned one.
type attachStep string

// detachStep detaches the named identity.
type detachStep string

func (a *attachStep) undoable() bool { return true }
func (d *detachStep) undoable() bool { return true }

func (a *attachStep) validate(_ *Scenario, ids identities, field string) error {
	return checkIdentityName(string(*a), ids, field)
}

func (d *detachStep) validate(_ *Scenario, ids identities, field string) error {
	return checkIdentityName(string(*d), ids, field)
}

func checkIdentityName(name string, ids identities, field string) error {
	if _, ok := ids[name]; !ok {
		return bad(field, "%q is not one of setup.identities (or system)", name)
	}
	return nil
}

func (a *attachStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	name := string(*a)
	detail := "attach identity " + name
	if err := r.attach(ctx, name); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error { return r.detach(ctx, name) }, detail, nil
}

func (d *detachStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	name := string(*d)
	detail := "detach identity " + name
	if err := r.detach(ctx, name); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error { return r.attach(ctx, name) }, detail, nil
}

func (r *runner) attach(ctx context.Context, name string) error {
	if name == "system" {
		_, err := r.ctl.SetSystem(ctx, r.system)
		return err
	}
	id, _ := r.s.Identity(name)
	_, err := r.ctl.Attach(ctx, id)
	return err
}

func (r *runner) detach(ctx context.Context, name string) error {
	if name == "system" {
		return r.ctl.RemoveSystem(ctx)
	}
	id, _ := r.s.Identity(name)
	_, err := r.ctl.Detach(ctx, client.Selector{ClientID: id.ClientID})
	return err
}
