package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/kubepatch"
	"github.com/idharness/idharness/internal/stack"
)

func init() {
	registerStep("rotateToken", "replaces the workload identity pods' token file with a new service account token, as the kubelet's rotation does, then runs the stack's authority's clock ahead for the run's identity so that the old token has expired there and the new one has not; for ends the clock's lead; setup.workloadIdentity.tokenFile: secret only",
		func() StepAction { return &rotateTokenStep{} })
}

// rotateTokenStep is the kubelet's rotation of a projected service
// account token, played in seconds instead of 80 % of a lifetime of at
// least 10 minutes. The kubelet's part: a new token from the TokenRequest
// API written into the pods' token file (a Secret volume, which the
// kubelet swaps as it swaps a projected token: a new ..data directory
// and one rename), the pods' sync triggered at once by an annotation.
// The time's part: the authority judges the run's identity's assertions
// by a clock ahead by the old token's lifetime and the authority's
// leeway (and a minute), so the old token is refused with AADSTS700024
// while the new one, which lives longer, is accepted. A client that
// reads the file for each exchange gets tokens again; one that keeps
// the content it read first does not.
type rotateTokenStep struct {
	// ExpirationSeconds is the new token's lifetime (default 3600). It
	// must outlast the authority's lead and the rest of the run.
	ExpirationSeconds int64 `json:"expirationSeconds,omitempty"`
	// Settle is the time between the rotation and the authority's clock
	// moving ahead (default 5s): the kubelet's sync of the pods, which
	// the annotation triggers, takes about a second.
	Settle duration.Duration `json:"settle,omitempty"`
}

// Defaults of rotateToken.
const (
	defaultRotatedExpiration = 3600
	defaultRotateSettle      = 5 * time.Second
	// rotateMargin is added to the old token's lifetime and the
	// authority's leeway: the old token is a minute past being refused.
	rotateMargin = time.Minute
)

// rotatedAnnotation is the pod annotation whose change makes the kubelet
// sync the pod, and so rewrite its Secret volume, at once rather than
// at its next periodic sync (up to a minute and a half later).
const rotatedAnnotation = "idharness.io/token-rotated"

// rotateClockRule names the authority's clock rule of the step.
const rotateClockRule = "rotate-token-clock"

func (k *rotateTokenStep) undoable() bool { return true }

func (k *rotateTokenStep) needsCluster() string {
	return "the kubelet rotates a service account token in a pod of a cluster"
}

func (k *rotateTokenStep) expiration() int64 {
	if k.ExpirationSeconds == 0 {
		return defaultRotatedExpiration
	}
	return k.ExpirationSeconds
}

func (k *rotateTokenStep) settle() time.Duration {
	if k.Settle.Duration == 0 {
		return defaultRotateSettle
	}
	return k.Settle.Duration
}

// lead is how far ahead the authority's clock runs after the rotation:
// past the old token's exp by the authority's leeway and a minute.
func rotateLead(ws WorkloadIdentitySetup) time.Duration {
	return time.Duration(ws.ExpirationSeconds)*time.Second + stack.WIAuthorityLeeway + rotateMargin
}

func (k *rotateTokenStep) validate(s *Scenario, _ identities, field string) error {
	ws := s.Setup.WorkloadIdentity
	if ws == nil || ws.TokenFile != TokenFileSecret {
		return bad(field, "needs setup.workloadIdentity with tokenFile: %s: the run must write the token file to replace it (a projected token is the kubelet's, which rotates it at 80 %% of its lifetime)", TokenFileSecret)
	}
	if k.ExpirationSeconds != 0 && (k.ExpirationSeconds < MinWITokenExpiration || k.ExpirationSeconds > MaxWITokenExpiration) {
		return bad(field+".expirationSeconds", "%d: want %d to %d", k.ExpirationSeconds, MinWITokenExpiration, MaxWITokenExpiration)
	}
	// By the authority's clock, the new token must stay valid, leeway
	// aside, from the rotation to the end of the run.
	if need := rotateLead(*ws) + s.Duration(); time.Duration(k.expiration())*time.Second < need {
		return bad(field+".expirationSeconds", "%d s: the new token must outlive the authority's lead (%v: the old token's %d s, the authority's leeway %v and a minute) and the run (%v): want at least %d", k.expiration(), rotateLead(*ws), ws.ExpirationSeconds, stack.WIAuthorityLeeway, s.Duration(), int64(need.Seconds()))
	}
	if k.Settle.Duration < 0 || k.Settle.Duration > time.Minute {
		return bad(field+".settle", "want 0 to 1m, got %v", k.Settle.Duration)
	}
	return nil
}

func (k *rotateTokenStep) apply(ctx context.Context, r *runner, st Step) (func(context.Context) error, string, error) {
	if r.kube == nil || r.kube.wi == nil || !r.kube.wi.secret {
		return nil, "rotateToken", errors.New("rotateToken needs a cluster run with setup.workloadIdentity.tokenFile: secret")
	}
	kube, wi := r.kube, r.kube.wi
	if err := writeWIToken(ctx, kube.kube, kube.runNamespace, k.expiration(), false); err != nil {
		return nil, "rotateToken", err
	}
	rotated := time.Since(r.start)
	var pods []string
	for _, client := range sortedKeys(kube.pods) {
		pods = append(pods, kube.pods[client])
	}
	patch := kubepatch.Annotation(rotatedAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	if err := patchPods(ctx, kube.kube, kube.runNamespace, pods, patch); err != nil {
		return nil, "rotateToken", fmt.Errorf("annotate the pods so that their kubelet rewrites the token file: %w", err)
	}
	select {
	case <-ctx.Done():
		return nil, "rotateToken", ctx.Err()
	case <-time.After(k.settle()):
	}
	ahead := rotateLead(wi.setup)
	rule := rotateClock(wi.clientID, ahead, st.For)
	if _, err := wi.authority.AddFaults(ctx, rule); err != nil {
		return nil, "rotateToken", fmt.Errorf("run the authority's clock ahead for %s: %w", wi.clientID, err)
	}
	detail := fmt.Sprintf("token file rotated at %.1fs (a new %d s token in %d pods); the authority's clock %v ahead for client %s from %.1fs",
		rotated.Seconds(), k.expiration(), len(kube.pods), ahead, wi.clientID, time.Since(r.start).Seconds())
	return func(ctx context.Context) error { return wi.authority.RemoveFault(ctx, rule.Name) }, detail, nil
}

// rotateClock is the authority's rule that judges the assertions
// presented for clientID by a clock ahead by ahead, for the step's for
// (0: to the end of the run). Matching the run's own identity keeps it
// away from the specs playing beside the run, which share the authority.
func rotateClock(clientID string, ahead time.Duration, f duration.Duration) chaos.Rule {
	return chaos.Rule{
		Name:     rotateClockRule,
		Match:    chaos.Match{Faces: []string{"authority"}, Identity: clientID},
		Action:   chaos.Action{Type: "clock-skew", Fault: &chaos.ClockSkew{Offset: duration.Of(ahead)}},
		Schedule: chaos.Schedule{For: f},
	}
}
