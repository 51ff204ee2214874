package nodeagent

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// The agent reads aad-pod-identity's objects as pkg/api/podidentity
// defines them (the resources, the fields, BindingLabel and
// UserAssignedMSI); the suites and scenario runs write them by the same
// package, so neither side takes the contract from the other.

// Identity is an AzureIdentity.
type Identity struct {
	Namespace, Name string
	// Type is spec.type (podidentity.UserAssignedMSI, …).
	Type int64
	// ClientID and ResourceID select the identity upstream.
	ClientID, ResourceID string
}

// Binding is an AzureIdentityBinding.
type Binding struct {
	Namespace, Name string
	// AzureIdentity names the identity, in the binding's namespace.
	AzureIdentity string
	// Selector is compared with the pod's aadpodidbinding label.
	Selector string
}

// Exception is an AzurePodIdentityException.
type Exception struct {
	Namespace, Name string
	// PodLabels must all be on a pod for it to be let through.
	PodLabels map[string]string
}

// Pod is what the agent needs to know of a pod.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
}

// IdentityFrom reads an AzureIdentity object; fields it lacks stay empty.
func IdentityFrom(u *unstructured.Unstructured) Identity {
	id := Identity{Namespace: u.GetNamespace(), Name: u.GetName()}
	id.Type, _, _ = unstructured.NestedInt64(u.Object, "spec", podidentity.FieldType)
	id.ClientID, _, _ = unstructured.NestedString(u.Object, "spec", podidentity.FieldClientID)
	id.ResourceID, _, _ = unstructured.NestedString(u.Object, "spec", podidentity.FieldResourceID)
	return id
}

// BindingFrom reads an AzureIdentityBinding object.
func BindingFrom(u *unstructured.Unstructured) Binding {
	b := Binding{Namespace: u.GetNamespace(), Name: u.GetName()}
	b.AzureIdentity, _, _ = unstructured.NestedString(u.Object, "spec", podidentity.FieldAzureIdentity)
	b.Selector, _, _ = unstructured.NestedString(u.Object, "spec", podidentity.FieldSelector)
	return b
}

// ExceptionFrom reads an AzurePodIdentityException object.
func ExceptionFrom(u *unstructured.Unstructured) Exception {
	e := Exception{Namespace: u.GetNamespace(), Name: u.GetName()}
	e.PodLabels, _, _ = unstructured.NestedStringMap(u.Object, "spec", podidentity.FieldPodLabels)
	return e
}
