package scenario

import (
	"context"
	"fmt"

	"github.com/idharness/idharness/fakeimds/chaos"
)

func init() {
	registerStep("throttle", "changes IMDS's throttling limits (setup.throttle's format) during the run; for restores the previous ones", func() StepAction { return &throttleStep{} })
}

// throttleStep sets the fake's throttling limits, as setup.throttle does
// at the start: {enabled: true, identityRps: 20, identityConcurrency: 5,
// retryAfter: 2s}. Unset limits take IMDS's values; enabled defaults to
// true, since a step that sets limits means them to apply.
type throttleStep struct {
	chaos.Limits
}

func (t *throttleStep) undoable() bool { return true }

func (t *throttleStep) validate(_ *Scenario, _ identities, field string) error {
	return validateLimits(t.Limits, field)
}

func (t *throttleStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	prev, err := r.ctl.Throttle(ctx)
	if err != nil {
		return nil, "throttle", fmt.Errorf("read the throttling limits: %w", err)
	}
	l := t.Limits
	if l.Enabled == nil {
		on := true
		l.Enabled = &on
	}
	got, err := r.ctl.SetThrottle(ctx, l)
	detail := "throttling off"
	if got.Enabled == nil || *got.Enabled {
		detail = fmt.Sprintf("throttle %d token requests/s, %d at a time, %d metadata requests/s, Retry-After %v", got.IdentityRPS, got.IdentityConcurrency, got.MetadataRPS, got.RetryAfter.Duration)
	}
	if err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error {
		_, err := r.ctl.SetThrottle(ctx, prev)
		return err
	}, detail, nil
}
