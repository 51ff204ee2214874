package scenario

import (
	"context"
	"fmt"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
)

func init() {
	registerStep("lifetime", "sets the lifetime of new tokens, of one identity or the default; for restores it", func() StepAction { return &lifetimeStep{} })
}

// lifetimeStep sets the lifetime of new tokens, of one identity or of all.
type lifetimeStep struct {
	// Identity names a user-assigned identity; empty changes the default.
	Identity string `json:"identity,omitempty"`
	// Lifetime is the new lifetime, e.g. "6m".
	Lifetime duration.Duration `json:"lifetime"`
}

func (l *lifetimeStep) undoable() bool { return true }

func (l *lifetimeStep) validate(_ *Scenario, ids identities, field string) error {
	if l.Lifetime.Duration < 0 {
		return bad(field+".lifetime", "must not be negative (0 restores the default)")
	}
	if l.Lifetime.Duration == 0 && l.Identity == "" {
		return bad(field+".lifetime", "required for the default lifetime, e.g. 6m")
	}
	if l.Lifetime.Duration > MaxTokenLifetime {
		return bad(field+".lifetime", "%v: at most %v, the lifetime of Azure's managed identity tokens", l.Lifetime.Duration, MaxTokenLifetime)
	}
	if l.Identity != "" {
		if _, ok := ids[l.Identity]; !ok || l.Identity == "system" {
			return bad(field+".identity", "%q is not one of setup.identities (leave it empty to change the default, which the system-assigned identity uses)", l.Identity)
		}
	}
	return nil
}

func (l *lifetimeStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	if l.Identity == "" {
		prev, err := r.ctl.Tokens(ctx)
		if err != nil {
			return nil, "set token lifetime", err
		}
		d := config.Duration(l.Lifetime)
		detail := fmt.Sprintf("default token lifetime %v", l.Lifetime.Duration)
		if _, err := r.ctl.SetTokens(ctx, api.TokenSettings{Lifetime: &d}); err != nil {
			return nil, detail, err
		}
		return func(ctx context.Context) error {
			_, err := r.ctl.SetTokens(ctx, api.TokenSettings{Lifetime: prev.Lifetime})
			return err
		}, detail, nil
	}
	id, _ := r.s.Identity(l.Identity)
	detail := fmt.Sprintf("token lifetime of %s %v", l.Identity, l.Lifetime.Duration)
	sel := client.Selector{ClientID: id.ClientID}
	if _, err := r.ctl.SetIdentityLifetime(ctx, sel, l.Lifetime.Duration); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error {
		_, err := r.ctl.SetIdentityLifetime(ctx, sel, id.TokenLifetime.Duration)
		return err
	}, detail, nil
}
