package main

import (
	"testing"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

func TestDecide(t *testing.T) {
	idA := Identity{Name: "id-a", ClientID: "aaaa-1111", ResourceID: "/subscriptions/s/rg/r/id-a"}
	idB := Identity{Name: "id-b", ClientID: "bbbb-2222", ResourceID: "/subscriptions/s/rg/r/id-b"}
	noClientID := Identity{Name: "id-c", ResourceID: "/subscriptions/s/rg/r/id-c"}
	servicePrincipal := Identity{Name: "sp", Type: podidentity.ServicePrincipal, ClientID: "sp-3333"}
	web := map[string]string{podidentity.BindingLabel: "web"}
	twoBindings := Objects{
		Identities: []Identity{idA, idB},
		// Listed out of name order: the first by name is the default.
		Bindings: []Binding{{Name: "z-b", Identity: "id-b", Selector: "web"}, {Name: "a-a", Identity: "id-a", Selector: "web"}},
	}
	for _, tc := range []struct {
		name     string
		labels   map[string]string
		objs     Objects
		sel      Selector
		want     Verdict
		identity string
	}{
		{"no selector: the first binding by name", web, twoBindings, Selector{}, Serve, "id-a"},
		{"client_id selects", web, twoBindings, Selector{"client_id", "bbbb-2222"}, Serve, "id-b"},
		{"client_id in another case", web, twoBindings, Selector{"client_id", "BBBB-2222"}, Serve, "id-b"},
		{"msi_res_id selects", web, twoBindings, Selector{"msi_res_id", "/subscriptions/s/rg/r/id-b"}, Serve, "id-b"},
		{"mi_res_id selects", web, twoBindings, Selector{"mi_res_id", "/subscriptions/s/rg/r/id-a"}, Serve, "id-a"},
		{"an identity the pod is not bound to", web, twoBindings, Selector{"client_id", "cccc-3333"}, Forbidden, ""},
		{"object_id cannot select", web, twoBindings, Selector{"object_id", "anything"}, Forbidden, ""},
		{"no label", map[string]string{"app": "x"}, twoBindings, Selector{}, NoBinding, ""},
		{"a label no binding selects", map[string]string{podidentity.BindingLabel: "api"}, twoBindings, Selector{}, NoBinding, ""},
		{"binding to a missing AzureIdentity", web, Objects{Bindings: []Binding{{Name: "b", Identity: "gone", Selector: "web"}}}, Selector{}, NoBinding, ""},
		{"binding to a service principal", web, Objects{Identities: []Identity{servicePrincipal},
			Bindings: []Binding{{Name: "b", Identity: "sp", Selector: "web"}}}, Selector{}, NoBinding, ""},
		// IDH-CONF-0218: never ask IMDS with no selector on the pod's behalf.
		{"identity without clientID, no selector", web, Objects{Identities: []Identity{noClientID},
			Bindings: []Binding{{Name: "b", Identity: "id-c", Selector: "web"}}}, Selector{}, Forbidden, ""},
		{"identity without clientID, selected by msi_res_id", web, Objects{Identities: []Identity{noClientID},
			Bindings: []Binding{{Name: "b", Identity: "id-c", Selector: "web"}}}, Selector{"msi_res_id", noClientID.ResourceID}, Forbidden, ""},
		{"exception passes through", map[string]string{"app": "node-agent", podidentity.BindingLabel: "web"},
			Objects{Exceptions: []Exception{{Name: "e", PodLabels: map[string]string{"app": "node-agent"}}}}, Selector{}, PassThrough, ""},
		{"exception needs every label", map[string]string{"app": "node-agent"},
			Objects{Exceptions: []Exception{{Name: "e", PodLabels: map[string]string{"app": "node-agent", "tier": "x"}}}}, Selector{}, NoBinding, ""},
		{"an empty exception matches nobody", web, Objects{Exceptions: []Exception{{Name: "e"}}}, Selector{}, NoBinding, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.labels, tc.objs, tc.sel)
			if d.Verdict != tc.want || d.Identity.Name != tc.identity {
				t.Errorf("Decide = verdict %d, identity %q (%s); want verdict %d, identity %q", d.Verdict, d.Identity.Name, d.Reason, tc.want, tc.identity)
			}
			if d.Verdict != Serve && d.Reason == "" {
				t.Error("a refusal without a reason")
			}
		})
	}
}
