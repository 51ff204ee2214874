package stack

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// AADNMIComponent is the name of the component running aad-pod-identity's
// own NMI in managed mode: the second pod identity implementation under
// test. Its image is not one of idharness's programs: hack/nmi-image.sh
// builds it from the module proxy and loads it into the cluster first.
const AADNMIComponent = "aad-pod-identity"

func init() {
	Register(Component{
		Name: AADNMIComponent,
		Objects: func(p fixtures.Params) ([]*unstructured.Unstructured, error) {
			return fixtures.RenderPodIdentity(p, "crds", "nmi")
		},
		Wait: func(ctx context.Context, dc *deploy.Client, ns string) error {
			if err := dc.WaitDaemonSet(ctx, ns, "aad-nmi"); err != nil {
				return fmt.Errorf("%w (ErrImageNeverPull: load the image first with hack/nmi-image.sh CLUSTER; else look at kubectl -n %s logs ds/aad-nmi)", err, ns)
			}
			return nil
		},
	})
}
