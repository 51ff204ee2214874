package stack

import (
	"slices"
	"testing"

	"github.com/idharness/idharness/pkg/report"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAzureNodes(t *testing.T) {
	node := func(name, provider string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: provider}}
	}
	cases := []struct {
		name  string
		nodes []corev1.Node
		want  []string
	}{
		{"kind", []corev1.Node{node("kind-control-plane", "kind://docker/idh/kind-control-plane")}, nil},
		{"no provider", []corev1.Node{node("n1", "")}, nil},
		{"AKS", []corev1.Node{node("aks-1", "azure:///subscriptions/x/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/aks/virtualMachines/0"), node("kind-2", "kind://x")}, []string{"aks-1"}},
		{"upper case", []corev1.Node{node("vm", "AZURE:///subscriptions/x")}, []string{"vm"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := azureNodes(tc.nodes); !slices.Equal(got, tc.want) {
				t.Fatalf("azureNodes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStampImages(t *testing.T) {
	ds := func(images ...string) *unstructured.Unstructured {
		var cs []any
		for _, img := range images {
			cs = append(cs, map[string]any{"name": "c", "image": img})
		}
		return &unstructured.Unstructured{Object: map[string]any{"kind": "DaemonSet",
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cs}}}}}
	}
	stamp := func(o *unstructured.Unstructured, ids map[string]string) string {
		stampImages([]*unstructured.Unstructured{o}, ids)
		v, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", imagesAnnotation)
		return v
	}
	old := stamp(ds("idharness.local/nodeagent:dev"), map[string]string{"idharness.local/nodeagent:dev": "sha256:aaa"})
	same := stamp(ds("idharness.local/nodeagent:dev"), map[string]string{"idharness.local/nodeagent:dev": "sha256:aaa", "other:dev": "sha256:ccc"})
	rebuilt := stamp(ds("idharness.local/nodeagent:dev"), map[string]string{"idharness.local/nodeagent:dev": "sha256:bbb"})
	for _, tc := range []struct {
		name string
		got  string
		want func(string) bool
	}{
		{"stamped", old, func(v string) bool { return v != "" }},
		{"same image, same stamp", same, func(v string) bool { return v == old }},
		{"rebuilt image, new stamp", rebuilt, func(v string) bool { return v != "" && v != old }},
		{"unknown image, no stamp", stamp(ds("registry.example/x:1"), map[string]string{"idharness.local/nodeagent:dev": "sha256:aaa"}), func(v string) bool { return v == "" }},
		{"no IDs (existing cluster), no stamp", stamp(ds("idharness.local/nodeagent:dev"), nil), func(v string) bool { return v == "" }},
	} {
		if !tc.want(tc.got) {
			t.Errorf("%s: annotation %q (first stamp %q)", tc.name, tc.got, old)
		}
	}
}

func TestClaimed(t *testing.T) {
	for _, tc := range []struct {
		claims []string
		mode   string
		want   bool
	}{
		{[]string{"imds", "pod-identity"}, "pod-identity", true},
		{[]string{"imds"}, "pod-identity", false},
		{nil, "pod-identity", false}, // a stack that does not say claims nothing
	} {
		if got := (&Stack{Claims: tc.claims}).Claimed(tc.mode); got != tc.want {
			t.Errorf("claims %v, mode %s: %v, want %v", tc.claims, tc.mode, got, tc.want)
		}
	}
}

// TestProfileModes: every profile claims modes the reports know, so a
// claim always puts specs in scope.
func TestProfileModes(t *testing.T) {
	for _, p := range Profiles() {
		modes, err := ProfileModes(p.Name)
		if err != nil || len(modes) == 0 {
			t.Errorf("profile %s: modes %v, %v", p.Name, modes, err)
		}
		for _, m := range modes {
			if got := report.Modes([]string{m}); len(got) != 1 || got[0] != m {
				t.Errorf("profile %s claims %q, which no spec label names", p.Name, m)
			}
		}
	}
	if _, err := ProfileModes("nope"); err == nil {
		t.Error("an unknown profile has modes")
	}
}
