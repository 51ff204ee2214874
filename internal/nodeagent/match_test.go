package nodeagent

import (
	"testing"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

func TestDecide(t *testing.T) {
	const ns = "app"
	idA := Identity{Namespace: ns, Name: "id-a", ClientID: "11111111-1111-4111-8111-111111111111", ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a"}
	idB := Identity{Namespace: ns, Name: "id-b", ClientID: "33333333-3333-4333-8333-333333333333"}
	sp := Identity{Namespace: ns, Name: "sp", Type: 1, ClientID: "77777777-7777-4777-8777-777777777777"}
	other := Identity{Namespace: "other", Name: "id-a", ClientID: idA.ClientID}
	// noClient is misconfigured: aad-pod-identity documents clientID and
	// resourceID for a user-assigned identity.
	noClient := Identity{Namespace: ns, Name: "no-client", ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/no-client"}
	ids := []Identity{idA, idB, sp, other, noClient}
	bind := func(ns, name, id, sel string) Binding {
		return Binding{Namespace: ns, Name: name, AzureIdentity: id, Selector: sel}
	}
	web := Pod{Namespace: ns, Name: "web-1", Labels: map[string]string{podidentity.BindingLabel: "web"}}
	tests := []struct {
		name    string
		pod     Pod
		binds   []Binding
		sel     Selector
		want    Verdict
		wantID  string
		wantWhy string
	}{
		{name: "default is the bound identity", pod: web, binds: []Binding{bind(ns, "b", "id-a", "web")}, want: Token, wantID: "id-a"},
		{name: "by client_id, case-insensitive", pod: web, binds: []Binding{bind(ns, "b", "id-a", "web")}, sel: Selector{ClientID: "11111111-1111-4111-8111-111111111111"}, want: Token, wantID: "id-a"},
		{name: "by resource ID", pod: web, binds: []Binding{bind(ns, "b", "id-a", "web")}, sel: Selector{ResourceID: idA.ResourceID}, want: Token, wantID: "id-a"},
		{name: "unbound identity by client_id", pod: web, binds: []Binding{bind(ns, "b", "id-a", "web")}, sel: Selector{ClientID: idB.ClientID}, want: Forbid},
		{name: "unbound identity by resource ID", pod: web, binds: []Binding{bind(ns, "b", "id-b", "web")}, sel: Selector{ResourceID: idA.ResourceID}, want: Forbid},
		{name: "object_id cannot be checked", pod: web, binds: []Binding{bind(ns, "b", "id-a", "web")}, sel: Selector{ObjectID: "22222222-2222-4222-8222-222222222222"}, want: Forbid},
		{name: "two bindings: default by binding name, both selectable", pod: web, binds: []Binding{bind(ns, "z", "id-a", "web"), bind(ns, "a", "id-b", "web")}, want: Token, wantID: "id-b"},
		{name: "two bindings: select the second", pod: web, binds: []Binding{bind(ns, "z", "id-a", "web"), bind(ns, "a", "id-b", "web")}, sel: Selector{ClientID: idA.ClientID}, want: Token, wantID: "id-a"},
		{name: "no label", pod: Pod{Namespace: ns, Name: "p"}, binds: []Binding{bind(ns, "b", "id-a", "web")}, want: Refuse},
		{name: "empty label does not match an empty selector", pod: Pod{Namespace: ns, Name: "p", Labels: map[string]string{podidentity.BindingLabel: ""}}, binds: []Binding{bind(ns, "b", "id-a", "")}, want: Refuse},
		{name: "other selector", pod: web, binds: []Binding{bind(ns, "b", "id-a", "api")}, want: Refuse},
		{name: "binding in another namespace", pod: web, binds: []Binding{bind("other", "b", "id-a", "web")}, want: Refuse},
		{name: "identity missing", pod: web, binds: []Binding{bind(ns, "b", "gone", "web")}, want: Refuse},
		{name: "service principal identities are not served", pod: web, binds: []Binding{bind(ns, "b", "sp", "web")}, want: Refuse},
		{name: "identity without clientID, no selector", pod: web, binds: []Binding{bind(ns, "b", "no-client", "web")}, want: Forbid},
		{name: "identity without clientID, by its resource ID", pod: web, binds: []Binding{bind(ns, "b", "no-client", "web")}, sel: Selector{ResourceID: noClient.ResourceID}, want: Forbid},
		{name: "identity without clientID beside a valid one, by the valid one's client_id", pod: web, binds: []Binding{bind(ns, "a", "no-client", "web"), bind(ns, "b", "id-a", "web")}, sel: Selector{ClientID: idA.ClientID}, want: Token, wantID: "id-a"},
		{name: "identity of the same name in another namespace", pod: Pod{Namespace: "third", Name: "p", Labels: map[string]string{podidentity.BindingLabel: "web"}}, binds: []Binding{bind("third", "b", "id-a", "web")}, want: Refuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.pod, ids, tt.binds, tt.sel)
			if d.Verdict != tt.want {
				t.Fatalf("verdict %d (%s), want %d", d.Verdict, d.Reason, tt.want)
			}
			if tt.want == Token && d.Identity.Name != tt.wantID {
				t.Errorf("identity %s, want %s", d.Identity.Name, tt.wantID)
			}
			if tt.want != Token && d.Reason == "" {
				t.Error("refusal without a reason")
			}
		})
	}
}

func TestExcepted(t *testing.T) {
	exc := []Exception{{Namespace: "kube-system", Name: "e", PodLabels: map[string]string{"app": "dns", "tier": "node"}}, {Namespace: "kube-system", Name: "empty"}}
	tests := []struct {
		name string
		pod  Pod
		want bool
	}{
		{"all labels", Pod{Namespace: "kube-system", Labels: map[string]string{"app": "dns", "tier": "node", "x": "y"}}, true},
		{"one label missing", Pod{Namespace: "kube-system", Labels: map[string]string{"app": "dns"}}, false},
		{"other value", Pod{Namespace: "kube-system", Labels: map[string]string{"app": "dns", "tier": "web"}}, false},
		{"other namespace", Pod{Namespace: "default", Labels: map[string]string{"app": "dns", "tier": "node"}}, false},
		{"an exception without labels excepts nothing", Pod{Namespace: "kube-system"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Excepted(tt.pod, exc); got != tt.want {
				t.Errorf("Excepted = %v, want %v", got, tt.want)
			}
		})
	}
}
