package conformance

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/pkg/escape"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// Escape specs: a workload tries every request shape in pkg/escape to
// get a token it is not entitled to, or to reach the harness's control
// APIs. They judge the responses and the fake's journal, so they hold any
// implementation (the reference agent, NMI, a vendor's) to the same rules.

// nodeIP returns node's InternalIP.
func nodeIP(ctx context.Context, f *Framework, node string) string {
	GinkgoHelper()
	n, err := f.Kube().CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	Fail("node " + node + " has no InternalIP")
	return ""
}

// escapeParams are the plan's targets around the metadata address: the
// node's own address and the fake's other ports, the fake's Service, and
// every harness control API (each node's fakeimds, the authority).
func escapeParams(ctx context.Context, f *Framework, node string) escape.Params {
	GinkgoHelper()
	ip := nodeIP(ctx, f, node)
	ports := []string{strconv.Itoa(fixtures.ServicesPort), strconv.Itoa(fixtures.ControlPort)}
	p := escape.Params{
		Resource:   uniqueResource(),
		NodeIP:     ip,
		OtherPorts: ports,
		Services:   []string{"fakeimds." + f.StackNamespace() + ".svc:80"},
		Controls:   []string{net.JoinHostPort(ip, strconv.Itoa(fixtures.ControlPort)), net.JoinHostPort("169.254.169.254", strconv.Itoa(fixtures.ControlPort))},
	}
	// Without an authority (no workload identity) there is none to try;
	// a list that failed would leave targets out unseen, so it fails.
	authority, err := f.AuthorityControls(ctx)
	Expect(err).NotTo(HaveOccurred(), "find the workload identity authority's control APIs")
	p.Controls = append(p.Controls, authority...)
	return p
}

// expectNoEscape judges every attempt for a pod bound to ownOID ("": to
// nothing) and records the outcome in the report.
func expectNoEscape(run ProbeRun, ownOID string) {
	GinkgoHelper()
	var problems []string
	for _, r := range run.Escapes {
		if v := escape.Violation(r, ownOID); v != "" {
			problems = append(problems, v)
		}
	}
	AddReportEntry(fmt.Sprintf("escape attempts from %s (%d)", run.Pod, len(run.Escapes)), ReportEntryVisibilityFailureOrVerbose, escapeTable(run.Escapes))
	RecordClients(map[string]bool{"raw": len(problems) == 0})
	Expect(problems).To(BeEmpty(), "%d of %d escape attempts from pod %s on %s got what they must not", len(problems), len(run.Escapes), run.Pod, run.Node)
}

func escapeTable(rs []escape.Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%-60s %-22s HTTP %3d token=%-5v %s\n", r.Escape, r.Addr, r.Status, r.Token, r.Error)
	}
	return b.String()
}

// neverServedTo checks the fake's journal: no token for resource went out
// for any of the identities (client IDs).
func neverServedTo(ctx context.Context, f *Framework, node, resource string, clientIDs ...string) {
	GinkgoHelper()
	for _, id := range clientIDs {
		neverServed(ctx, f, node, id, resource)
	}
}

var _ = Describe("Harness integrity", Label("imds", "security"), func() {
	f := New()

	Conformance("IDH-CONF-0016", MUST, "the metadata faces answer only at 169.254.169.254: a pod gets no token at its node's address, the fake's other ports or its Service, and the harness's control APIs refuse it",
		[]string{"imds", "security", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.Namespace(ctx)
			p := escapeParams(ctx, f, node)
			b := f.Identity("id-b")
			p.ForeignClientID, p.ForeignObjectID, p.ForeignResourceID = b.ClientID, b.ObjectID, f.Identities().ResourceID("id-b")
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Shared: true, Args: []string{"--escape=" + p.Encode()}})
			// At 169.254.169.254 without an agent every identity of the
			// node is the pod's to ask for; judge only the other targets.
			var around []escape.Result
			for _, r := range run.Escapes {
				if r.Addr != escape.MetadataAddr {
					around = append(around, r)
				}
			}
			Expect(around).NotTo(BeEmpty())
			run.Escapes = around
			expectNoEscape(run, "")
		})
})

// Not Ordered: each spec has its namespace, bindings and resource, so a
// parallel run spreads them (internal/parallel).
var _ = Describe("Pod identity escapes", Label("pod-identity", "security"), func() {
	f := New()
	BeforeEach(func(ctx SpecContext) { f.RequirePodIdentityAgent(ctx) })

	Conformance("IDH-CONF-0216", MUST, "a pod with no binding gets no token by any request shape (path variants, methods, selectors, forwarding headers, the node's other addresses and ports, Services) and cannot reach the harness's control APIs",
		[]string{"pod-identity", "security", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			// The bound pod asks for tokens all along (an agent that
			// remembered a pod's token by address would hand it out), and
			// is deleted once the escape attempts are done.
			bound := f.StartProbe(ctx, ns, Probe{Node: node, Labels: Bound("web"),
				Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource(), "--duration=3m", "--interval=1s", "--exit-zero"}})
			boundIP := bound.PodIP
			other := f.PodIdentityNamespace(ctx)
			p := escapeParams(ctx, f, node)
			b := f.Identity("id-b")
			p.ForeignClientID, p.ForeignObjectID, p.ForeignResourceID = b.ClientID, b.ObjectID, f.Identities().ResourceID("id-b")
			p.ImpersonateIP = boundIP
			run := f.RunProbe(ctx, other, Probe{StartDelay: PodIdentityWarmUp, Node: node, Shared: true, Args: []string{"--escape=" + p.Encode()}})
			expectNoEscape(run, "")
			a := f.Identity("id-a")
			neverServedTo(ctx, f, node, p.Resource, a.ClientID, b.ClientID, f.SystemAssigned(node).ClientID)
			bound.Stop(ctx)
		})

	Conformance("IDH-CONF-0217", MUST, "a pod bound to one identity gets no other identity's token (nor the node's) by any request shape, and cannot reach the harness's control APIs",
		[]string{"pod-identity", "security", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			f.BindIdentity(ctx, ns, "id-b", "api")
			other := f.StartProbe(ctx, ns, Probe{Node: node, Labels: Bound("api"),
				Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource(), "--duration=3m", "--interval=1s", "--exit-zero"}})
			otherIP := other.PodIP
			a := f.Identity("id-a")
			b := f.Identity("id-b")
			p := escapeParams(ctx, f, node)
			p.ForeignClientID, p.ForeignObjectID, p.ForeignResourceID = b.ClientID, b.ObjectID, f.Identities().ResourceID("id-b")
			p.OwnClientID = a.ClientID
			p.ImpersonateIP = otherIP
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Shared: true, Labels: Bound("web"), Args: []string{"--escape=" + p.Encode()}})
			expectNoEscape(run, a.ObjectID)
			neverServedTo(ctx, f, node, p.Resource, b.ClientID, f.SystemAssigned(node).ClientID)
			other.Stop(ctx)
		})
})
