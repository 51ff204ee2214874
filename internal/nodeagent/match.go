package nodeagent

import (
	"sort"
	"strings"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// Selector is the identity a token request names, if any.
type Selector struct {
	ClientID   string // client_id
	ResourceID string // msi_res_id or mi_res_id
	ObjectID   string // object_id
}

// Empty reports whether the request names no identity.
func (s Selector) Empty() bool { return s.ClientID == "" && s.ResourceID == "" && s.ObjectID == "" }

// Verdict is what the agent does with a token request.
type Verdict int

// The verdicts.
const (
	// Refuse: no binding gives the pod an identity (404, or 503 with
	// Retry-After). Worth retrying: the binding may be on its way.
	Refuse Verdict = iota
	// Forbid: the pod asks for an identity none of its bindings gives it
	// (403). Never retried: asking again does not change the answer
	// except by a binding appearing, which the pod cannot tell from here.
	Forbid
	// Token: fetch the token of Decision.Identity upstream.
	Token
)

// Decision is Decide's answer.
type Decision struct {
	Verdict  Verdict
	Identity Identity
	// Reason says why, for the refusal body and the log.
	Reason string
}

// Bound returns the user-assigned identities pod is bound to: those of the
// bindings in the pod's namespace whose selector equals its
// aadpodidbinding label, ordered by binding name so the default is stable.
// Bindings and identities in other namespaces never apply.
func Bound(pod Pod, ids []Identity, binds []Binding) []Identity {
	label, ok := pod.Labels[podidentity.BindingLabel]
	if !ok || label == "" {
		return nil
	}
	sorted := append([]Binding(nil), binds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out []Identity
	seen := map[string]bool{}
	for _, b := range sorted {
		if b.Namespace != pod.Namespace || b.Selector != label {
			continue
		}
		for _, id := range ids {
			if id.Namespace == pod.Namespace && id.Name == b.AzureIdentity && id.Type == podidentity.UserAssignedMSI && !seen[id.Name] {
				seen[id.Name] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// Decide answers a token request of pod naming sel: the bound identity
// it names, or the first bound one when it names none.
func Decide(pod Pod, ids []Identity, binds []Binding, sel Selector) Decision {
	bound := Bound(pod, ids, binds)
	if len(bound) == 0 {
		return Decision{Verdict: Refuse, Reason: "no AzureIdentityBinding in namespace " + pod.Namespace + " matches pod " + pod.Name + " (label " + podidentity.BindingLabel + "=" + pod.Labels[podidentity.BindingLabel] + ")"}
	}
	d := choose(pod, bound, sel)
	if d.Verdict == Token && d.Identity.ClientID == "" {
		// aad-pod-identity documents a user-assigned AzureIdentity with
		// clientID and resourceID. Without clientID there is nothing to
		// name upstream that is surely this identity: refuse, where NMI
		// asks IMDS with no selector and hands out the node's identity.
		return Decision{Verdict: Forbid, Reason: "AzureIdentity " + d.Identity.Namespace + "/" + d.Identity.Name + " has no spec.clientID: a user-assigned AzureIdentity (type 0) needs clientID and resourceID; add its clientID"}
	}
	return d
}

// choose picks, among the pod's bound identities, the one sel names, or
// the first when it names none.
func choose(pod Pod, bound []Identity, sel Selector) Decision {
	switch {
	case sel.ObjectID != "":
		// An AzureIdentity has no object ID to compare with.
		return Decision{Verdict: Forbid, Reason: "object_id is not supported in pod identity mode; ask by client_id or msi_res_id"}
	case sel.ClientID != "":
		for _, id := range bound {
			if id.ClientID != "" && strings.EqualFold(id.ClientID, sel.ClientID) {
				return Decision{Verdict: Token, Identity: id}
			}
		}
		return Decision{Verdict: Forbid, Reason: "pod " + pod.Namespace + "/" + pod.Name + " is not bound to client_id " + sel.ClientID}
	case sel.ResourceID != "":
		for _, id := range bound {
			if id.ResourceID != "" && strings.EqualFold(id.ResourceID, sel.ResourceID) {
				return Decision{Verdict: Token, Identity: id}
			}
		}
		return Decision{Verdict: Forbid, Reason: "pod " + pod.Namespace + "/" + pod.Name + " is not bound to resource ID " + sel.ResourceID}
	}
	return Decision{Verdict: Token, Identity: bound[0]}
}

// Excepted reports whether an exception in the pod's namespace lets it
// through: every label of the exception is on the pod.
func Excepted(pod Pod, excs []Exception) bool {
	for _, e := range excs {
		if e.Namespace != pod.Namespace || len(e.PodLabels) == 0 {
			continue
		}
		all := true
		for k, v := range e.PodLabels {
			if got, ok := pod.Labels[k]; !ok || got != v {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
