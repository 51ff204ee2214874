package podidentity

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

func TestBind(t *testing.T) {
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		podidapi.AzureIdentityGVR: "AzureIdentityList", podidapi.AzureIdentityBindingGVR: "AzureIdentityBindingList",
	})
	ctx := context.Background()
	for _, tc := range []struct {
		name, clientID, selector string
		wantBinding              string
	}{
		{"id-a", "c1", "web", "id-a-web"},
		// A second binding of the same identity reuses its AzureIdentity.
		{"id-a", "c1", "api", "id-a-api"},
		{"id-b", "", "web", "id-b-web"},
	} {
		got, err := Bind(ctx, dyn, "ns", tc.name, tc.clientID, "/subscriptions/x/"+tc.name, tc.selector)
		if err != nil {
			t.Fatalf("Bind(%s, %s): %v", tc.name, tc.selector, err)
		}
		if got != tc.wantBinding {
			t.Errorf("Bind(%s, %s) = %q, want %q", tc.name, tc.selector, got, tc.wantBinding)
		}
		id, err := dyn.Resource(podidapi.AzureIdentityGVR).Namespace("ns").Get(ctx, tc.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cid, found, _ := unstructured.NestedString(id.Object, "spec", "clientID")
		if cid != tc.clientID || found != (tc.clientID != "") {
			t.Errorf("%s: spec.clientID = %q (present %v), want %q", tc.name, cid, found, tc.clientID)
		}
		b, err := dyn.Resource(podidapi.AzureIdentityBindingGVR).Namespace("ns").Get(ctx, tc.wantBinding, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sel, _, _ := unstructured.NestedString(b.Object, "spec", "selector"); sel != tc.selector {
			t.Errorf("%s: spec.selector = %q, want %q", tc.wantBinding, sel, tc.selector)
		}
		if idName, _, _ := unstructured.NestedString(b.Object, "spec", "azureIdentity"); idName != tc.name {
			t.Errorf("%s: spec.azureIdentity = %q, want %q", tc.wantBinding, idName, tc.name)
		}
	}
	if _, err := Bind(ctx, dyn, "ns", "id-a", "c1", "/x", "web"); err == nil {
		t.Error("a second binding of the same name: no error")
	}
}
