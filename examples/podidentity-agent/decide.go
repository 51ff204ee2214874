package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// Identity is what the agent reads of an AzureIdentity.
type Identity struct {
	Name       string
	Type       int64
	ClientID   string
	ResourceID string
}

// Binding is what the agent reads of an AzureIdentityBinding.
type Binding struct {
	Name     string
	Identity string // spec.azureIdentity
	Selector string // spec.selector
}

// Exception is what the agent reads of an AzurePodIdentityException.
type Exception struct {
	Name      string
	PodLabels map[string]string
}

// Objects are the pod identity objects of one namespace.
type Objects struct {
	Identities []Identity
	Bindings   []Binding
	Exceptions []Exception
}

// Selector is the identity a token request names: Param is one of
// client_id, msi_res_id, mi_res_id and object_id, or empty for "the
// default identity".
type Selector struct {
	Param, Value string
}

// Verdict is what the agent does with a pod's token request.
type Verdict int

const (
	// NoBinding: nothing binds an identity to the pod (yet). The agent
	// asks again a few times, then answers 404.
	NoBinding Verdict = iota
	// Forbidden: the pod is bound, but not to what it asks for, or its
	// identity cannot be asked for safely. 403, never forwarded.
	Forbidden
	// Serve: fetch the token of Decision.Identity by its client ID.
	Serve
	// PassThrough: an AzurePodIdentityException covers the pod; forward
	// its request as it is, so it gets whatever the node's IMDS gives.
	PassThrough
)

// Decision is the verdict for one request, with the identity to serve or
// the reason for a refusal.
type Decision struct {
	Verdict  Verdict
	Identity Identity
	Reason   string
}

// Decide applies aad-pod-identity's rules to a pod with labels in a
// namespace holding objs:
//
//  1. a pod carrying every label of an exception passes through;
//  2. otherwise its aadpodidbinding label picks the bindings whose
//     selector equals it, and each binding names a user-assigned
//     AzureIdentity (type 0) of the same namespace;
//  3. with no selector in the request the first such binding by name
//     wins; with one, the identity it names (client_id, msi_res_id or
//     mi_res_id) must be among them. object_id is refused: an
//     AzureIdentity has no object ID to compare;
//  4. an identity without clientID is refused. The agent always asks
//     IMDS by client_id; without one it would have to ask with no
//     selector, and IMDS would answer with the node's own identity.
func Decide(labels map[string]string, objs Objects, sel Selector) Decision {
	for _, e := range objs.Exceptions {
		if len(e.PodLabels) > 0 && hasAll(labels, e.PodLabels) {
			return Decision{Verdict: PassThrough, Reason: "AzurePodIdentityException " + e.Name}
		}
	}
	value, ok := labels[podidentity.BindingLabel]
	if !ok || value == "" {
		return Decision{Verdict: NoBinding, Reason: "the pod has no " + podidentity.BindingLabel + " label"}
	}
	bound := boundIdentities(value, objs)
	if len(bound) == 0 {
		return Decision{Verdict: NoBinding, Reason: fmt.Sprintf("no AzureIdentityBinding with selector %q names a user-assigned AzureIdentity in the pod's namespace", value)}
	}
	var chosen *Identity
	switch sel.Param {
	case "":
		chosen = &bound[0]
	case "object_id":
		return Decision{Verdict: Forbidden, Reason: "object_id cannot select a pod identity (an AzureIdentity has no object ID): select by client_id or msi_res_id"}
	default:
		for i, id := range bound {
			if sel.Param == "client_id" && id.ClientID != "" && strings.EqualFold(id.ClientID, sel.Value) ||
				sel.Param != "client_id" && id.ResourceID != "" && strings.EqualFold(id.ResourceID, sel.Value) {
				chosen = &bound[i]
				break
			}
		}
		if chosen == nil {
			return Decision{Verdict: Forbidden, Reason: fmt.Sprintf("the pod is not bound to the identity with %s %s", sel.Param, sel.Value)}
		}
	}
	if chosen.ClientID == "" {
		return Decision{Verdict: Forbidden, Reason: fmt.Sprintf("AzureIdentity %s has no spec.%s: refusing rather than asking IMDS for its default identity", chosen.Name, podidentity.FieldClientID)}
	}
	return Decision{Verdict: Serve, Identity: *chosen, Reason: "bound by selector " + value}
}

// boundIdentities returns the user-assigned identities that bindings with
// selector name, in the order of the bindings' names.
func boundIdentities(selector string, objs Objects) []Identity {
	byName := map[string]Identity{}
	for _, id := range objs.Identities {
		byName[id.Name] = id
	}
	bindings := append([]Binding(nil), objs.Bindings...)
	sort.Slice(bindings, func(i, j int) bool { return bindings[i].Name < bindings[j].Name })
	var out []Identity
	for _, b := range bindings {
		id, ok := byName[b.Identity]
		if b.Selector != selector || !ok || id.Type != podidentity.UserAssignedMSI {
			continue
		}
		out = append(out, id)
	}
	return out
}

// hasAll reports whether labels holds every key of want with its value.
func hasAll(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
