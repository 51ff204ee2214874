package podidentity

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The builders must write what aad-pod-identity's documentation shows:
// these are its examples (website/content/en/docs/Concepts), with the
// placeholders filled in.
func TestBuildersMatchTheDocumentedExamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  *unstructured.Unstructured
		doc  string
	}{
		{"AzureIdentity, user-assigned", IdentityObject("ns", "id-a", "c1", "/subscriptions/s/id-a"), `
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata: {name: id-a, namespace: ns}
spec:
  type: 0
  resourceID: /subscriptions/s/id-a
  clientID: c1
`},
		{"AzureIdentity without clientID", IdentityObject("ns", "id-b", "", "/subscriptions/s/id-b"), `
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata: {name: id-b, namespace: ns}
spec: {type: 0, resourceID: /subscriptions/s/id-b}
`},
		{"AzureIdentityBinding", BindingObject("ns", "id-a-web", "id-a", "web"), `
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata: {name: id-a-web, namespace: ns}
spec:
  azureIdentity: "id-a"
  selector: "web"
`},
		{"AzurePodIdentityException", ExceptionObject("kube-system", "aks-addon-exception", map[string]string{"kubernetes.azure.com/managedby": "aks"}), `
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzurePodIdentityException
metadata: {name: aks-addon-exception, namespace: kube-system}
spec:
  podLabels:
    kubernetes.azure.com/managedby: aks
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want map[string]any
			if err := yaml.Unmarshal([]byte(tc.doc), &want); err != nil {
				t.Fatal(err)
			}
			// Compare as YAML: the documented example's numbers decode as
			// float64, the builder's as int64.
			got, err := yaml.Marshal(tc.got.Object)
			if err != nil {
				t.Fatal(err)
			}
			wantYAML, _ := yaml.Marshal(want)
			if string(got) != string(wantYAML) {
				t.Errorf("built:\n%s\nwant:\n%s", got, wantYAML)
			}
		})
	}
}

// An agent reads spec.type with unstructured.NestedInt64, so the builder
// must store an int64 that compares equal to the untyped constant.
func TestIdentityTypeReadsBack(t *testing.T) {
	typ, ok, err := unstructured.NestedInt64(IdentityObject("ns", "id", "c", "/r").Object, "spec", FieldType)
	if err != nil || !ok || typ != UserAssignedMSI {
		t.Errorf("spec.type = %d (present %v, %v), want %d", typ, ok, err, UserAssignedMSI)
	}
	labels, ok, err := unstructured.NestedStringMap(ExceptionObject("ns", "e", map[string]string{"app": "x"}).Object, "spec", FieldPodLabels)
	if err != nil || !ok || labels["app"] != "x" {
		t.Errorf("spec.podLabels = %v (present %v, %v)", labels, ok, err)
	}
}

func TestPodLabels(t *testing.T) {
	if got := PodLabels("web"); len(got) != 1 || got[BindingLabel] != "web" {
		t.Errorf("PodLabels(web) = %v", got)
	}
}

func TestResources(t *testing.T) {
	// CRD names are <resource>.<group>; the documented CRDs are these.
	for _, tc := range []struct{ got, want string }{
		{AzureIdentityGVR.GroupResource().String(), "azureidentities.aadpodidentity.k8s.io"},
		{AzureIdentityBindingGVR.GroupResource().String(), "azureidentitybindings.aadpodidentity.k8s.io"},
		{AzurePodIdentityExceptionGVR.GroupResource().String(), "azurepodidentityexceptions.aadpodidentity.k8s.io"},
	} {
		if tc.got != tc.want {
			t.Errorf("CRD %s, want %s", tc.got, tc.want)
		}
	}
	if APIVersion != "aadpodidentity.k8s.io/v1" {
		t.Errorf("APIVersion = %s", APIVersion)
	}
}
