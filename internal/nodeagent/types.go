package nodeagent

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/internal/podidentity"
)

// The aadpodidentity.k8s.io/v1 resources the agent reads, the pod label
// bindings select and the identity type served: the contract, kept in
// internal/podidentity, which the suites and scenario runs write by.
var (
	AzureIdentityGVR             = podidentity.AzureIdentityGVR
	AzureIdentityBindingGVR      = podidentity.AzureIdentityBindingGVR
	AzurePodIdentityExceptionGVR = podidentity.AzurePodIdentityExceptionGVR
)

// BindingLabel is the pod label a binding's selector is compared with.
const BindingLabel = podidentity.BindingLabel

// UserAssignedMSI is AzureIdentity.spec.type for a user-assigned managed
// identity, the only type the agent serves.
const UserAssignedMSI = podidentity.UserAssignedMSI

// Identity is an AzureIdentity.
type Identity struct {
	Namespace, Name string
	// Type is spec.type (UserAssignedMSI, …).
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
	id.Type, _, _ = unstructured.NestedInt64(u.Object, "spec", "type")
	id.ClientID, _, _ = unstructured.NestedString(u.Object, "spec", "clientID")
	id.ResourceID, _, _ = unstructured.NestedString(u.Object, "spec", "resourceID")
	return id
}

// BindingFrom reads an AzureIdentityBinding object.
func BindingFrom(u *unstructured.Unstructured) Binding {
	b := Binding{Namespace: u.GetNamespace(), Name: u.GetName()}
	b.AzureIdentity, _, _ = unstructured.NestedString(u.Object, "spec", "azureIdentity")
	b.Selector, _, _ = unstructured.NestedString(u.Object, "spec", "selector")
	return b
}

// ExceptionFrom reads an AzurePodIdentityException object.
func ExceptionFrom(u *unstructured.Unstructured) Exception {
	e := Exception{Namespace: u.GetNamespace(), Name: u.GetName()}
	e.PodLabels, _, _ = unstructured.NestedStringMap(u.Object, "spec", "podLabels")
	return e
}
