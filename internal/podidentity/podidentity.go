// Package podidentity is the contract between idharness and a pod
// identity node agent (aad-pod-identity's NMI, or idharness's reference
// agent, internal/nodeagent): the aadpodidentity.k8s.io/v1 resources, the
// objects that bind an identity to pods, the pod label a binding selects
// and the namespace label that opts a namespace in. The agent reads these
// objects; the suites (suites/framework) and in-cluster scenario runs
// (internal/scenario) write them, so both build them here, one way.
package podidentity

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// APIVersion is the pod identity objects' apiVersion.
const APIVersion = "aadpodidentity.k8s.io/v1"

// The aadpodidentity.k8s.io/v1 resources.
var (
	AzureIdentityGVR             = schema.GroupVersionResource{Group: "aadpodidentity.k8s.io", Version: "v1", Resource: "azureidentities"}
	AzureIdentityBindingGVR      = schema.GroupVersionResource{Group: "aadpodidentity.k8s.io", Version: "v1", Resource: "azureidentitybindings"}
	AzurePodIdentityExceptionGVR = schema.GroupVersionResource{Group: "aadpodidentity.k8s.io", Version: "v1", Resource: "azurepodidentityexceptions"}
)

// BindingLabel is the pod label a binding's selector is compared with.
const BindingLabel = "aadpodidbinding"

// UserAssignedMSI is AzureIdentity.spec.type for a user-assigned managed
// identity, the only type the agents serve here (1 and 2 are service
// principals, which need Azure AD itself).
const UserAssignedMSI = 0

// OptInLabel, set to OptInValue, labels the namespaces whose pods the
// reference node agent serves (its --opt-in-label); pods elsewhere are
// passed through to the node's IMDS, so that IMDS specs see the same with
// or without the agent. aad-pod-identity ignores it and serves every
// namespace.
const (
	OptInLabel = "idharness.io/pod-identity"
	OptInValue = "true"
)

// Object returns a pod identity object of kind (AzureIdentity,
// AzureIdentityBinding, AzurePodIdentityException) in ns.
func Object(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": APIVersion, "kind": kind,
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     spec,
	}}
}

// IdentityObject returns the AzureIdentity called name for a
// user-assigned identity; an empty clientID names it by resource ID only,
// which agents must then resolve.
func IdentityObject(ns, name, clientID, resourceID string) *unstructured.Unstructured {
	spec := map[string]any{"type": int64(UserAssignedMSI), "resourceID": resourceID}
	if clientID != "" {
		spec["clientID"] = clientID
	}
	return Object("AzureIdentity", ns, name, spec)
}

// BindingName is the name of the binding of identity to selector.
func BindingName(identity, selector string) string { return identity + "-" + selector }

// BindingObject returns the AzureIdentityBinding of the AzureIdentity
// called identity to pods labelled BindingLabel=selector.
func BindingObject(ns, identity, selector string) *unstructured.Unstructured {
	return Object("AzureIdentityBinding", ns, BindingName(identity, selector), map[string]any{"azureIdentity": identity, "selector": selector})
}

// PodLabels are the labels of a pod that a binding with selector selects.
func PodLabels(selector string) map[string]string {
	return map[string]string{BindingLabel: selector}
}

// Bind creates in ns the AzureIdentity called name (unless it exists: one
// identity may have several bindings) and its binding to selector, and
// returns the binding's name.
func Bind(ctx context.Context, dyn dynamic.Interface, ns, name, clientID, resourceID, selector string) (string, error) {
	_, err := dyn.Resource(AzureIdentityGVR).Namespace(ns).Create(ctx, IdentityObject(ns, name, clientID, resourceID), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create AzureIdentity %s/%s: %w", ns, name, err)
	}
	b := BindingObject(ns, name, selector)
	if _, err := dyn.Resource(AzureIdentityBindingGVR).Namespace(ns).Create(ctx, b, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create AzureIdentityBinding %s/%s: %w", ns, b.GetName(), err)
	}
	return b.GetName(), nil
}
