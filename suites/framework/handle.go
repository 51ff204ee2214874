package framework

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

// The handle's accessors: what a spec may know of the stack it runs
// against, each in a type another module can name (client-go's, the
// fakeimds packages', fixtures'). The stack itself stays internal: a spec
// written in another module could receive it but never name it, and a
// spec that held it could reach the harness's deployer and the reference
// implementations' internals rather than the contract
// (internal/boundary's rules). Each accessor fails the spec when the
// handle is not connected yet (called from a container's body, or from a
// BeforeAll before Setup), instead of a nil dereference.

// connected returns the handle's stack, failing the spec when the handle
// has none yet.
func (f *Framework) connected() *stack.Stack {
	GinkgoHelper()
	if f.stack == nil {
		Fail("framework: the handle is not connected to a stack yet: call its methods from a spec or a BeforeEach, " +
			"or call f.Setup(ctx) first in a BeforeAll")
	}
	return f.stack
}

// Kube is a Kubernetes client of the cluster the stack runs in, with the
// run's credentials (a kubeconfig's, or the in-cluster runner's service
// account, whose roles grant what the suites call: internal/incluster).
func (f *Framework) Kube() kubernetes.Interface {
	GinkgoHelper()
	return f.connected().Deployer().Kube
}

// RESTConfig is the configuration Kube's client was made from, for the
// clients Kube is not (a dynamic client, a pod proxy), as Kubernetes'
// e2e Framework.ClientConfig is.
func (f *Framework) RESTConfig() *rest.Config {
	GinkgoHelper()
	return f.connected().REST()
}

// StackNamespace is the namespace the stack runs in (idharness-system by
// default): its fakeimds DaemonSet and Service, the protected resource,
// the implementation under test. Specs create namespaces of their own
// with Namespace.
func (f *Framework) StackNamespace() string {
	GinkgoHelper()
	return f.connected().Namespace
}

// NodeNames are the nodes with a fakeimds, sorted.
func (f *Framework) NodeNames() []string {
	GinkgoHelper()
	return f.connected().NodeNames()
}

// Workers are the nodes with a fakeimds that are not control-plane nodes,
// sorted: where specs and scenarios that own a node run. A cluster of one
// node (its control plane) has that node.
func (f *Framework) Workers(ctx context.Context) ([]string, error) {
	GinkgoHelper()
	return f.connected().Workers(ctx)
}

// nodeConfig returns node's fakeimds configuration as the run deployed
// it, failing the spec for a node without a fakeimds.
func (f *Framework) nodeConfig(node string) config.Config {
	GinkgoHelper()
	st := f.connected()
	c, ok := st.Nodes[node]
	if !ok {
		Fail(fmt.Sprintf("node %q has no fakeimds in the stack (nodes: %q)", node, st.NodeNames()))
	}
	return c
}

// SystemAssigned is node's system-assigned identity, as the run
// configured its fakeimds; the spec fails when node has none (the run's
// identity set gives nodes none: fixtures.Identities.SystemAssigned).
func (f *Framework) SystemAssigned(node string) config.Identity {
	GinkgoHelper()
	c := f.nodeConfig(node)
	if c.SystemAssigned == nil {
		Fail(fmt.Sprintf("node %s has no system-assigned identity in the run's identity set", node))
	}
	return *c.SystemAssigned
}

// UserAssigned are the user-assigned identities the run attached to
// node's fakeimds (a copy: changing it changes nothing in the cluster;
// the fakeimds control client does).
func (f *Framework) UserAssigned(node string) []config.Identity {
	GinkgoHelper()
	return slices.Clone(f.nodeConfig(node).UserAssigned)
}

// Identities is the run's identity set: the tenant, every user-assigned
// identity and the nodes it is attached to, their resource IDs (a copy of
// its list: changing it changes nothing in the cluster). Identity is the
// shorthand for one identity.
func (f *Framework) Identities() fixtures.Identities {
	GinkgoHelper()
	ids := f.connected().Identities
	ids.UserAssigned = slices.Clone(ids.UserAssigned)
	return ids
}

// Images are the images the run deployed, by program: the probe's, the
// protected resource's (empty when the stack has none), the client
// programs' (a copy).
func (f *Framework) Images() fixtures.Images {
	GinkgoHelper()
	im := f.connected().Images
	im.Extra, im.Clients = maps.Clone(im.Extra), maps.Clone(im.Clients)
	return im
}

// Seed is the run's seed, which every fakeimds's faults and the
// scenarios' draws derive from: the same seed replays the same faults.
func (f *Framework) Seed() int64 {
	GinkgoHelper()
	return f.connected().Seed
}

// Claimed reports whether the implementation under test claims the
// identity mode (imds, pod-identity, workload-identity, app-service): a
// spec of a claimed mode whose component is missing fails instead of
// skipping, so that a missing component is never a pass.
func (f *Framework) Claimed(mode string) bool {
	GinkgoHelper()
	return f.connected().Claimed(mode)
}

// FakeIMDS is a client of node's fakeimds control API (its journal,
// identities, faults), reached through the API server's pod proxy with
// the run's control token, so that it works from anywhere the Kubernetes
// API does.
func (f *Framework) FakeIMDS(ctx context.Context, node string) (*client.Client, error) {
	GinkgoHelper()
	return f.connected().FakeIMDS(ctx, node)
}

// VaultURL is the protected resource's URL inside the cluster (the
// probe's --vault-url).
func (f *Framework) VaultURL() string {
	GinkgoHelper()
	return f.connected().VaultURL()
}

// AppServiceEndpoint is the App Service face's IDENTITY_ENDPOINT inside
// the cluster; AppServiceSecret is the IDENTITY_HEADER it requires.
func (f *Framework) AppServiceEndpoint() string {
	GinkgoHelper()
	return f.connected().AppServiceEndpoint()
}

// AppServiceSecret is the IDENTITY_HEADER the App Service face requires.
func (f *Framework) AppServiceSecret() string {
	GinkgoHelper()
	return f.connected().AppServiceSecret
}

// AuthorityControls are the addresses (pod IP and control port) of the
// control API of the stack's workload identity authority, one per
// running pod; none when the stack has no authority. The escape specs
// check that a workload cannot reach them.
func (f *Framework) AuthorityControls(ctx context.Context) ([]string, error) {
	GinkgoHelper()
	st := f.connected()
	pods, err := st.Deployer().PodsOf(ctx, st.Namespace, "app.kubernetes.io/name="+stack.WIAuthorityName)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pods {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			out = append(out, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(fixtures.ControlPort)))
		}
	}
	return out, nil
}
