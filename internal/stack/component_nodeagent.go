package stack

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// NodeAgentComponent is the name of the reference pod identity node agent
// component: aad-pod-identity's CRDs and cmd/nodeagent on every node.
const NodeAgentComponent = "nodeagent"

func init() {
	Register(Component{
		Name:     NodeAgentComponent,
		Programs: map[string]string{"nodeagent": "./cmd/nodeagent"},
		Objects: func(p fixtures.Params) ([]*unstructured.Unstructured, error) {
			return fixtures.RenderPodIdentity(p, "crds", "nodeagent")
		},
		Wait: func(ctx context.Context, dc *deploy.Client, ns string) error {
			if err := dc.WaitDaemonSet(ctx, ns, "nodeagent"); err != nil {
				return fmt.Errorf("%w (look at: kubectl -n %s logs ds/nodeagent; kubectl -n %s describe ds/nodeagent)", err, ns, ns)
			}
			return nil
		},
		// Opt-in: the agent sits in front of every pod's metadata requests.
		// Pods of namespaces without idharness.io/pod-identity=true are
		// passed through unchanged, but the IMDS specs should not depend on
		// the agent's pass-through unless a run asks for pod identity.
		Default: false,
	})
}
