package stack

import (
	"slices"
	"testing"

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
