// Package podidentity is aad-pod-identity's contract, as its
// documentation states it (github.com/Azure/aad-pod-identity,
// website/content/en/docs/Concepts/azureidentity.md,
// azureidentitybinding.md and azurepodidentityexception.md; the types in
// pkg/apis/aadpodidentity/v1/types.go): the aadpodidentity.k8s.io/v1
// resources, the fields of their specs that bind an identity to pods, the
// identity type values and the pod label a binding selects.
//
// It belongs to neither side of a conformance run: pod identity agents
// (aad-pod-identity's NMI, idharness's reference agent, a vendor's) read
// these objects, and whoever judges them (idharness's suites and scenario
// runs, or another module) writes them. That is why it is public and
// imports nothing of idharness's: the judge must not take the contract
// from the implementation it judges. Conventions of idharness's own — the
// namespace opt-in label of its reference agent, the names it gives
// bindings — are not here but in internal/podidentity.
//
// The builders return unstructured objects, so that no one needs
// aad-pod-identity's Go module (and its dependencies) to write them.
package podidentity

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API group and version of the pod identity resources.
const (
	Group      = "aadpodidentity.k8s.io"
	Version    = "v1"
	APIVersion = Group + "/" + Version
)

// The kinds of the resources.
const (
	// KindAzureIdentity is an Azure identity: a user-assigned managed
	// identity or a service principal.
	KindAzureIdentity = "AzureIdentity"
	// KindAzureIdentityBinding binds an AzureIdentity to the pods whose
	// BindingLabel equals its selector.
	KindAzureIdentityBinding = "AzureIdentityBinding"
	// KindAzurePodIdentityException lets the pods with all of its labels
	// reach the node's metadata endpoint without being intercepted.
	KindAzurePodIdentityException = "AzurePodIdentityException"
)

// The resources, for dynamic clients and informers. Variables only
// because Go has no composite constants; nothing assigns them.
var (
	AzureIdentityGVR             = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "azureidentities"}
	AzureIdentityBindingGVR      = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "azureidentitybindings"}
	AzurePodIdentityExceptionGVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "azurepodidentityexceptions"}
)

// BindingLabel is the pod label whose value an AzureIdentityBinding's
// selector is compared with (aad-pod-identity's CRDLabelKey).
const BindingLabel = "aadpodidbinding"

// The values of AzureIdentity's spec.type. Untyped, so that they compare
// with the int64 an unstructured object holds.
const (
	// UserAssignedMSI is a user-assigned managed identity, named by
	// spec.resourceID and spec.clientID.
	UserAssignedMSI = 0
	// ServicePrincipal is a service principal with a client secret.
	ServicePrincipal = 1
	// ServicePrincipalCertificate is a service principal with a
	// certificate (documented; not in the Go types).
	ServicePrincipalCertificate = 2
)

// The spec fields that bind an identity to pods, as their JSON names.
const (
	// FieldType is AzureIdentity's spec.type (UserAssignedMSI, …).
	FieldType = "type"
	// FieldResourceID is AzureIdentity's spec.resourceID, the ARM ID of a
	// user-assigned identity.
	FieldResourceID = "resourceID"
	// FieldClientID is AzureIdentity's spec.clientID.
	FieldClientID = "clientID"
	// FieldAzureIdentity is AzureIdentityBinding's spec.azureIdentity,
	// the name of an AzureIdentity in the binding's namespace.
	FieldAzureIdentity = "azureIdentity"
	// FieldSelector is AzureIdentityBinding's spec.selector, compared with
	// the pod's BindingLabel.
	FieldSelector = "selector"
	// FieldPodLabels is AzurePodIdentityException's spec.podLabels, all
	// of which a pod must carry to be let through.
	FieldPodLabels = "podLabels"
)

// Object returns a pod identity object of kind (KindAzureIdentity, …)
// called name in ns, with spec.
func Object(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": APIVersion, "kind": kind,
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     spec,
	}}
}

// IdentityObject returns the AzureIdentity called name for a
// user-assigned identity, as aad-pod-identity documents one: type 0 with
// resourceID and clientID. An empty clientID leaves the field out, which
// makes the object misconfigured: an agent must refuse it rather than
// guess an identity.
func IdentityObject(ns, name, clientID, resourceID string) *unstructured.Unstructured {
	spec := map[string]any{FieldType: int64(UserAssignedMSI), FieldResourceID: resourceID}
	if clientID != "" {
		spec[FieldClientID] = clientID
	}
	return Object(KindAzureIdentity, ns, name, spec)
}

// BindingObject returns the AzureIdentityBinding called name of the
// AzureIdentity called identity to the pods labelled
// BindingLabel=selector.
func BindingObject(ns, name, identity, selector string) *unstructured.Unstructured {
	return Object(KindAzureIdentityBinding, ns, name, map[string]any{FieldAzureIdentity: identity, FieldSelector: selector})
}

// ExceptionObject returns the AzurePodIdentityException called name that
// lets pods carrying all of podLabels through.
func ExceptionObject(ns, name string, podLabels map[string]string) *unstructured.Unstructured {
	labels := make(map[string]any, len(podLabels))
	for k, v := range podLabels {
		labels[k] = v
	}
	return Object(KindAzurePodIdentityException, ns, name, map[string]any{FieldPodLabels: labels})
}

// PodLabels are the labels of a pod that a binding with selector selects.
func PodLabels(selector string) map[string]string {
	return map[string]string{BindingLabel: selector}
}
