package publicapi

import (
	"context"
	"flag"
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/suites/framework"
)

// A spec of another module, written against suites/framework's handle as
// idharness's own specs are: everything it learns of the stack comes from
// the handle's methods, in types this module can name (client-go's,
// fakeimds's, fixtures'). It checks what any deployed stack must show:
// every node with a fakeimds is a node of the cluster, and its fakeimds
// serves the identities the run gave it.
var _ = Describe("another module's spec", func() {
	f := framework.New()

	It("sees the stack through the handle", func(ctx context.Context) {
		nodes, err := f.Kube().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		inCluster := map[string]bool{}
		for _, n := range nodes.Items {
			inCluster[n.Name] = true
		}
		Expect(f.NodeNames()).NotTo(BeEmpty(), "a stack without a fakeimds node")
		for _, node := range f.NodeNames() {
			Expect(inCluster).To(HaveKey(node), "fakeimds node %s is not a node of the cluster", node)
			c, err := f.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			served, err := c.Identities(ctx)
			Expect(err).NotTo(HaveOccurred())
			var clientIDs []string
			for _, id := range served {
				clientIDs = append(clientIDs, id.ClientID)
			}
			for _, id := range f.UserAssigned(node) {
				Expect(clientIDs).To(ContainElement(id.ClientID), "fakeimds on %s does not serve %s", node, id.Name)
			}
		}
		Expect(f.Identities().TenantID).NotTo(BeEmpty())
	})
})

// TestSuiteOfAnotherModule runs the spec above against the stack that
// IDH_KUBECONFIG names (a cluster after `idharness run --keep-cluster`);
// without one the spec is skipped, as idharness's own suites are under
// `go test ./...`. The flags go on a set of their own: e2e-framework's
// (cluster_test.go) are on the command line's.
func TestSuiteOfAnotherModule(t *testing.T) {
	fs := flag.NewFlagSet("idharness", flag.ContinueOnError)
	flags := framework.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !framework.RunSuite(t, "another module's suite", flags) {
		t.Error("the suite failed")
	}
}
