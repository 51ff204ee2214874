package framework

import (
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/internal/stack"
)

// claimedStack is the stack the spec below runs against; each case of
// TestRequirePodIdentityAgent sets its claims.
var claimedStack = map[string]*stack.Stack{
	"claims pod-identity": stack.NewForTest("idharness-system", kubefake.NewClientset(), []string{"imds", "pod-identity"}),
	"claims imds only":    stack.NewForTest("idharness-system", kubefake.NewClientset(), []string{"imds"}),
}

// specStates records the specs' outcomes for the test to read.
var specStates = map[string]types.SpecReport{}

var _ = ReportAfterEach(func(r SpecReport) { specStates[r.LeafNodeText] = r })

var _ = Describe("RequirePodIdentityAgent without an agent", func() {
	for name, st := range claimedStack {
		It(name, func(ctx SpecContext) {
			f := &Framework{stack: st}
			f.RequirePodIdentityAgent(ctx)
		})
	}
})

// checkRequirePodIdentityAgent: with no agent deployed, a stack whose
// profile claims pod-identity fails the spec (the implementation's part
// is missing); one that does not claim it skips. TestRun runs the specs.
func checkRequirePodIdentityAgent(t *testing.T) {
	states := specStates
	if r := states["claims pod-identity"]; r.State != types.SpecStateFailed || !strings.Contains(r.Failure.Message, "claims pod-identity") {
		t.Errorf("claimed: state %v, failure %q; want failed, naming the claim", r.State, r.Failure.Message)
	}
	if r := states["claims imds only"]; r.State != types.SpecStateSkipped {
		t.Errorf("not claimed: state %v (%q), want skipped", r.State, r.Failure.Message)
	}
}
