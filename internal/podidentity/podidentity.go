// Package podidentity holds idharness's own conventions for pod identity,
// on top of aad-pod-identity's contract (pkg/api/podidentity): the label
// that opts a namespace in to idharness's reference agent, the names the
// harness gives bindings, and Bind, which creates an identity and its
// binding the one way the suites (suites/framework) and in-cluster
// scenario runs (internal/scenario) do. None of this is aad-pod-identity's
// contract, so it stays internal; what an agent must understand is in
// pkg/api/podidentity.
package podidentity

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

// OptInLabel, set to OptInValue, labels the namespaces whose pods the
// reference node agent serves (its --opt-in-label); pods elsewhere are
// passed through to the node's IMDS, so that IMDS specs see the same with
// or without the agent. It is the harness's, not aad-pod-identity's:
// aad-pod-identity ignores it and serves every namespace.
const (
	OptInLabel = "idharness.io/pod-identity"
	OptInValue = "true"
)

// BindingName is the name the harness gives the binding of identity to
// selector, so that a run can name the binding it expects to serve a pod.
// aad-pod-identity lets bindings have any name.
func BindingName(identity, selector string) string { return identity + "-" + selector }

// Bind creates in ns the AzureIdentity called name (unless it exists: one
// identity may have several bindings) and its binding to selector, called
// BindingName(name, selector), and returns the binding's name. An empty
// clientID makes the documented misconfiguration (resourceID only).
func Bind(ctx context.Context, dyn dynamic.Interface, ns, name, clientID, resourceID, selector string) (string, error) {
	_, err := dyn.Resource(podidapi.AzureIdentityGVR).Namespace(ns).Create(ctx, podidapi.IdentityObject(ns, name, clientID, resourceID), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create AzureIdentity %s/%s: %w", ns, name, err)
	}
	b := podidapi.BindingObject(ns, BindingName(name, selector), name, selector)
	if _, err := dyn.Resource(podidapi.AzureIdentityBindingGVR).Namespace(ns).Create(ctx, b, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create AzureIdentityBinding %s/%s: %w", ns, b.GetName(), err)
	}
	return b.GetName(), nil
}
