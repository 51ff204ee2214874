package scenario

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/internal/podidentity"
	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

func init() {
	registerStep("bind", "creates an AzureIdentityBinding of a setup identity to a pod label (and the AzureIdentity if missing) in the run's namespace; for deletes the binding again",
		func() StepAction { return &bindStep{} })
	registerStep("unbind", "deletes one of setup.podIdentity.bindings; for creates it again",
		func() StepAction { return &unbindStep{} })
}

// binding names a binding of the run's namespace as setup.podIdentity
// writes it: a setup identity and the pods' aadpodidbinding value.
type binding struct {
	Identity string `json:"identity"`
	Selector string `json:"selector"`
}

// bindStep binds an identity while the workload runs, as a user adding a
// binding to a live namespace does.
type bindStep struct{ binding }

// unbindStep revokes a binding while the workload runs.
type unbindStep struct{ binding }

func (b *bindStep) undoable() bool   { return true }
func (u *unbindStep) undoable() bool { return true }

func (b *bindStep) needsCluster() string {
	return "a binding is an object of the cluster"
}

func (u *unbindStep) needsCluster() string {
	return "a binding is an object of the cluster"
}

func (b *bindStep) validate(s *Scenario, ids identities, field string) error {
	if err := b.binding.validate(s, ids, field); err != nil {
		return err
	}
	for _, sb := range s.Setup.PodIdentity.Bindings {
		if sb.Identity == b.Identity && sb.Selector == b.Selector {
			return bad(field, "setup.podIdentity.bindings already binds %s to %s: bind another selector, or unbind this one", b.Identity, b.Selector)
		}
	}
	return nil
}

func (u *unbindStep) validate(s *Scenario, ids identities, field string) error {
	if err := u.binding.validate(s, ids, field); err != nil {
		return err
	}
	for _, sb := range s.Setup.PodIdentity.Bindings {
		if sb.Identity == u.Identity && sb.Selector == u.Selector {
			return nil
		}
	}
	return bad(field, "%s to %s is not one of setup.podIdentity.bindings, which unbind deletes", u.Identity, u.Selector)
}

func (b binding) validate(s *Scenario, ids identities, field string) error {
	if s.Setup.PodIdentity == nil {
		return bad(field, "needs setup.podIdentity: the run's pods must run with pod identity")
	}
	if b.Identity == "" || b.Identity == "system" || !ids[b.Identity] {
		return bad(field+".identity", "want one of setup.identities, got %q", b.Identity)
	}
	if b.Selector == "" {
		return bad(field+".selector", "required: the aadpodidbinding label value of the pods to bind, e.g. web")
	}
	return nil
}

func (b *bindStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	detail := fmt.Sprintf("bind %s to pods labelled %s=%s", b.Identity, podidapi.BindingLabel, b.Selector)
	if err := b.create(ctx, r); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error { return b.remove(ctx, r) }, detail, nil
}

func (u *unbindStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	detail := fmt.Sprintf("unbind %s from pods labelled %s=%s", u.Identity, podidapi.BindingLabel, u.Selector)
	if err := u.remove(ctx, r); err != nil {
		return nil, detail, err
	}
	return func(ctx context.Context) error { return u.create(ctx, r) }, detail, nil
}

// create makes the binding (and its identity) as setup does.
func (b binding) create(ctx context.Context, r *runner) error {
	k := r.kube
	if k == nil || k.dyn == nil {
		return errors.New("a binding needs a cluster run with setup.podIdentity")
	}
	id, _ := r.s.Identity(b.Identity)
	rid := id.ResourceID
	if rid == "" {
		rid = r.cfg.UserAssignedResourceID(id.Name)
	}
	_, err := podidentity.Bind(ctx, k.dyn, k.runNamespace, id.Name, id.ClientID, rid, b.Selector)
	return err
}

// remove deletes the binding; one already gone is not an error.
func (b binding) remove(ctx context.Context, r *runner) error {
	k := r.kube
	if k == nil || k.dyn == nil {
		return errors.New("a binding needs a cluster run with setup.podIdentity")
	}
	name := podidentity.BindingName(b.Identity, b.Selector)
	err := k.dyn.Resource(podidapi.AzureIdentityBindingGVR).Namespace(k.runNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete AzureIdentityBinding %s/%s: %w", k.runNamespace, name, err)
	}
	return nil
}
