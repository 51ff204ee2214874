package sut

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
	"github.com/idharness/idharness/internal/stack"
)

// Upstream is the metadata endpoint an implementation's own token
// requests go to: fakeimds answers there on every node.
const Upstream = "http://169.254.169.254"

// Label marks the objects of an implementation under test with its name.
const Label = stack.SUTLabel

// Component is the implementation as a stack component: its manifests
// rendered for the run with the loaded images, its readiness as the wait.
func (s *SUT) Component(images []Loaded) stack.Component {
	refs := map[string]string{}
	for _, l := range images {
		refs[l.Name] = l.Ref
	}
	return stack.Component{
		Name: "sut-" + s.Name,
		Objects: func(p fixtures.Params) ([]*unstructured.Unstructured, error) {
			labels := map[string]string{Label: s.Name}
			for k, v := range fixtures.Labels {
				labels[k] = v
			}
			v, err := s.values(p.Namespace, p.Identities.TenantID, refs, inlineMap(fixtures.Labels), time.Now())
			if err != nil {
				return nil, err
			}
			return s.Render(v, labels)
		},
		Wait: func(ctx context.Context, dc *deploy.Client, ns string) error {
			for _, d := range s.Readiness.DaemonSets {
				if err := dc.WaitDaemonSet(ctx, ns, d); err != nil {
					return fmt.Errorf("%s: %w (look at: kubectl -n %s describe ds/%s; kubectl -n %s logs ds/%s)", s.Name, err, ns, d, ns, d)
				}
			}
			for _, d := range s.Readiness.Deployments {
				if err := dc.WaitDeployment(ctx, ns, d); err != nil {
					return fmt.Errorf("%s: %w (look at: kubectl -n %s describe deploy/%s; kubectl -n %s logs deploy/%s)", s.Name, err, ns, d, ns, d)
				}
			}
			// A certificate's Service is one the API server calls (a
			// webhook's): until its endpoint is published the API server
			// is refused, and a webhook with failurePolicy Fail refuses
			// the specs' pods; nor until kube-proxy on the API server's
			// node routes the Service, which a dry-run pod shows.
			for _, c := range s.Certificates {
				if err := dc.WaitServiceEndpoints(ctx, ns, c.Service); err != nil {
					return fmt.Errorf("%s: %w (look at: kubectl -n %s get endpointslices -l kubernetes.io/service-name=%s; kubectl -n %s describe service/%s)", s.Name, err, ns, c.Service, ns, c.Service)
				}
				if err := dc.WaitWebhookCalls(ctx, ns, c.Service); err != nil {
					return fmt.Errorf("%s: %w (look at: kubectl -n %s describe service/%s; kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations -o yaml)", s.Name, err, ns, c.Service)
				}
			}
			return nil
		},
	}
}

// Agents are the implementation's pod identity agents: its DaemonSets
// when it claims pod-identity.
func (s *SUT) Agents() []string {
	for _, m := range s.Claims {
		if m == "pod-identity" {
			return s.Readiness.DaemonSets
		}
	}
	return nil
}

// LabelFilter is the label filter a run uses when the user gives none:
// an agent that intercepts every pod would stand between the specs of
// modes it does not claim and IMDS, so only the claimed modes' specs run.
func (s *SUT) LabelFilter() string {
	if s.Intercepts != InterceptsAll {
		return ""
	}
	return strings.Join(s.Claims, " || ")
}

// inlineMap writes m as an inline YAML map, keys sorted.
func inlineMap(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%q: %q", k, v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}
