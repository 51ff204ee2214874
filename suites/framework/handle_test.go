package framework

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

// accessorStack is the stack the accessor specs run against: node n1
// with a system-assigned and a user-assigned identity, n2 with neither,
// two authority pods of which one is running and one is going.
func accessorStack() *stack.Stack {
	authority := func(name, ip string, going bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "idh", Labels: map[string]string{"app.kubernetes.io/name": stack.WIAuthorityName}},
			Status: corev1.PodStatus{PodIP: ip}}
		if going {
			p.DeletionTimestamp = &metav1.Time{}
			p.Finalizers = []string{"test"}
		}
		return p
	}
	st := stack.NewForTest("idh", kubefake.NewClientset(authority("a-1", "10.0.0.5", false), authority("a-2", "10.0.0.6", true)), []string{"imds"})
	st.Nodes = map[string]config.Config{
		"n1": {SystemAssigned: &config.Identity{Name: "system", ObjectID: "sys-1"}, UserAssigned: []config.Identity{{Name: "id-a", ClientID: "ca"}}},
		"n2": {},
	}
	st.Identities = fixtures.Identities{TenantID: "t", UserAssigned: []fixtures.UserAssigned{{Identity: config.Identity{Name: "id-a", ClientID: "ca"}}}}
	st.Images = fixtures.Images{Probe: "probe:1", Clients: map[string]string{"java": "java:1"}}
	return st
}

// accessorCases are the handle's accessors, each with a handle, what it
// does with it and what must become of its spec: passed, or failed with
// a message saying why. TestRun runs them as specs (Fail needs one).
var accessorCases = []struct {
	name string
	// unconnected runs the case with a handle that has no stack.
	unconnected bool
	body        func(ctx context.Context, f *Framework, st *stack.Stack)
	// failure is what the spec's failure says; empty: it passes.
	failure string
}{
	{"an unconnected handle fails the spec", true, func(_ context.Context, f *Framework, _ *stack.Stack) { f.StackNamespace() },
		"not connected to a stack yet"},
	{"a node without a fakeimds fails the spec", false, func(_ context.Context, f *Framework, _ *stack.Stack) { f.UserAssigned("n9") },
		`node "n9" has no fakeimds in the stack (nodes: ["n1" "n2"])`},
	{"a node without a system-assigned identity fails the spec", false, func(_ context.Context, f *Framework, _ *stack.Stack) { f.SystemAssigned("n2") },
		"node n2 has no system-assigned identity"},
	{"the stack's own values", false, func(_ context.Context, f *Framework, st *stack.Stack) {
		Expect(f.StackNamespace()).To(Equal("idh"))
		Expect(f.Kube()).To(BeIdenticalTo(st.Deployer().Kube))
		Expect(f.NodeNames()).To(Equal([]string{"n1", "n2"}))
		Expect(f.SystemAssigned("n1").ObjectID).To(Equal("sys-1"))
		Expect(f.UserAssigned("n1")).To(HaveLen(1))
		Expect(f.UserAssigned("n2")).To(BeEmpty())
		Expect(f.Claimed("imds")).To(BeTrue())
		Expect(f.Claimed("pod-identity")).To(BeFalse())
		Expect(f.VaultURL()).To(Equal("http://vault.idh.svc"))
		Expect(f.Images().Probe).To(Equal("probe:1"))
	}, ""},
	{"what a spec changes in a copy stays in it", false, func(_ context.Context, f *Framework, st *stack.Stack) {
		f.Identities().UserAssigned[0].Name = "changed"
		f.UserAssigned("n1")[0].Name = "changed"
		f.Images().Clients["java"] = "changed"
		Expect(st.Identities.UserAssigned[0].Name).To(Equal("id-a"))
		Expect(st.Nodes["n1"].UserAssigned[0].Name).To(Equal("id-a"))
		Expect(st.Images.Clients["java"]).To(Equal("java:1"))
	}, ""},
	{"the authority's control APIs are its running pods'", false, func(ctx context.Context, f *Framework, _ *stack.Stack) {
		Expect(f.AuthorityControls(ctx)).To(Equal([]string{"10.0.0.5:8079"}))
	}, ""},
	{"workload identity not deployed says how to deploy it", false, func(ctx context.Context, f *Framework, _ *stack.Stack) {
		_, err := f.WorkloadIdentity(ctx)
		Expect(err).To(MatchError(ContainSubstring("workload identity is not deployed in idh")))
	}, ""},
}

var _ = Describe("the handle's accessors", func() {
	for _, tc := range accessorCases {
		It(tc.name, func(ctx SpecContext) {
			st := accessorStack()
			f := &Framework{stack: st}
			if tc.unconnected {
				f = &Framework{}
			}
			tc.body(ctx, f, st)
		})
	}
})

// checkAccessors: each accessor case ended as it says. TestRun runs the
// specs.
func checkAccessors(t *testing.T) {
	for _, tc := range accessorCases {
		r, ok := specStates[tc.name]
		switch {
		case !ok:
			t.Errorf("%s: did not run", tc.name)
		case tc.failure == "" && r.State != types.SpecStatePassed:
			t.Errorf("%s: state %v (%s), want passed", tc.name, r.State, r.Failure.Message)
		case tc.failure != "" && (r.State != types.SpecStateFailed || !strings.Contains(r.Failure.Message, tc.failure)):
			t.Errorf("%s: state %v (%q), want failed saying %q", tc.name, r.State, r.Failure.Message, tc.failure)
		}
	}
}
