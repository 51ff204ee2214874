package framework

import (
	"bytes"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/internal/stack"
)

// runStack is the stack TestRun passes to the run.
var runStack = stack.NewForTest("idharness-system", kubefake.NewClientset(), []string{"imds"})

// handleSaw is the stack a handle's spec saw, for TestRun to read.
var handleSaw *stack.Stack

var _ = Describe("a handle", func() {
	f := New()
	It("is connected before its spec", func() { handleSaw = f.stack })
})

// The run of `go test ./suites/...` connects with the flags.
var _ = Describe("a run from flags", func() {
	It("without a kubeconfig", func(ctx SpecContext) { (&source{}).stack(ctx) })
	It("with a missing kubeconfig", func(ctx SpecContext) {
		(&source{flags: Flags{Kubeconfig: "/nonexistent/kubeconfig"}}).stack(ctx)
	})
})

// TestRun runs this package's specs, once, as ginkgo allows per process,
// with the run's options passed as RunConnected passes them; each check
// then reads what the specs recorded.
func TestRun(t *testing.T) {
	var progress bytes.Buffer
	cfg, rep := GinkgoConfiguration()
	rep.Succinct = true
	r, _ := runSpecs(&failT{}, "framework", &source{preset: runStack}, &progress, "", cfg, rep)
	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"RequirePodIdentityAgent", checkRequirePodIdentityAgent},
		{"the handle's accessors", checkAccessors},
		{"a run from flags", func(t *testing.T) {
			if r := specStates["without a kubeconfig"]; r.State != types.SpecStateSkipped || !strings.Contains(r.Failure.Message, "--kubeconfig") {
				t.Errorf("no kubeconfig: state %v (%q), want skipped, saying how to give one", r.State, r.Failure.Message)
			}
			if r := specStates["with a missing kubeconfig"]; r.State != types.SpecStateFailed || !strings.Contains(r.Failure.Message, "/nonexistent/kubeconfig") {
				t.Errorf("missing kubeconfig: state %v (%q), want failed, naming it", r.State, r.Failure.Message)
			}
		}},
		{"the handle gets the run's stack", func(t *testing.T) {
			if handleSaw != runStack {
				t.Errorf("the handle saw stack %p, want the run's %p", handleSaw, runStack)
			}
		}},
		{"progress lines go to the run's writer", func(t *testing.T) {
			// One per spec: the handle's, the two runs from flags, the two
			// of RequirePodIdentityAgent and the accessors'.
			want := 5 + len(accessorCases)
			if n := strings.Count(progress.String(), "[spec "); n != want {
				t.Errorf("%d progress lines, want %d:\n%s", n, want, progress.String())
			}
		}},
		{"the report is returned", func(t *testing.T) {
			if r.SuiteDescription != "framework" || len(r.SpecReports) < 5 {
				t.Errorf("report %q with %d spec reports", r.SuiteDescription, len(r.SpecReports))
			}
		}},
		{"the run ends with RunSpecs", func(t *testing.T) {
			if running.Load() != nil {
				t.Error("the run is still set after RunSpecs returned")
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}
}
