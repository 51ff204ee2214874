package stack

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// rendered is a component with its objects for this run.
type rendered struct {
	Component
	objs []*unstructured.Unstructured
}

// objKey names an object across components.
func objKey(o *unstructured.Unstructured) string {
	return o.GroupVersionKind().GroupKind().String() + " " + o.GetNamespace() + "/" + o.GetName()
}

// pruneOthers removes from the cluster what a registered component that
// this run does not deploy left there: a kept cluster that ran another
// profile before would otherwise still run its agent, and two agents
// would race for 169.254.169.254. It deletes only objects that no
// deployed component renders too and that carry idharness's labels, and
// it waits until they are gone, so the run's own agent starts alone.
// CustomResourceDefinitions stay: every stack on the cluster shares them,
// they are inert without an agent, and deleting one deletes every object
// of its kind.
func pruneOthers(ctx context.Context, dc *deploy.Client, p fixtures.Params, keep []rendered, log *slog.Logger) error {
	kept := map[string]bool{}
	deployed := map[string]bool{}
	for _, r := range keep {
		deployed[r.Name] = true
		for _, o := range r.objs {
			kept[objKey(o)] = true
		}
	}
	for _, c := range Components() {
		if deployed[c.Name] {
			continue
		}
		objs, err := c.Objects(placeholderImages(p, c))
		if err != nil {
			return fmt.Errorf("component %s (not deployed by this run): render its objects to remove them: %w", c.Name, err)
		}
		var gone []*unstructured.Unstructured
		for _, o := range objs {
			if !kept[objKey(o)] && o.GetKind() != "CustomResourceDefinition" {
				gone = append(gone, o)
			}
		}
		deleted, err := dc.DeleteOwned(ctx, fixtures.Labels, gone...)
		if err != nil {
			return fmt.Errorf("component %s (not deployed by this run): %w", c.Name, err)
		}
		if len(deleted) > 0 {
			log.Info("component removed: this run does not deploy it", "name", c.Name, "objects", deleted)
		}
	}
	return nil
}

// placeholderImages returns p with an image name for each of c's
// programs that this run did not build, so that c's objects render: only
// their kinds and names matter for removing them.
func placeholderImages(p fixtures.Params, c Component) fixtures.Params {
	extra := make(map[string]string, len(p.Images.Extra)+len(c.Programs))
	for k, v := range p.Images.Extra {
		extra[k] = v
	}
	for name := range c.Programs {
		if extra[name] == "" {
			extra[name] = "unused.invalid/" + name + ":none"
		}
	}
	p.Images.Extra = extra
	if p.Images.FakeIMDS == "" {
		p.Images.FakeIMDS = "unused.invalid/fakeimds:none"
	}
	return p
}

// SUTLabel marks the objects of an implementation declared as data
// (--sut) with its name, so that a later run that deploys another can
// find and remove them.
const SUTLabel = "idharness.io/sut"

// sutResources returns the kinds an implementation's manifests may hold
// that a later run removes (workloads first; CRDs stay, as above).
func sutResources() []deploy.Resource {
	return []deploy.Resource{
		{GroupVersionResource: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}},
		{GroupVersionResource: schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}},
		{GroupVersionResource: schema.GroupVersionResource{Version: "v1", Resource: "services"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, Namespaced: true},
		{GroupVersionResource: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}},
		{GroupVersionResource: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}},
	}
}

// pruneSUTs removes what implementations declared as data left on the
// cluster, but for those this run deploys (keep) and the objects the run
// deploys anyway.
func pruneSUTs(ctx context.Context, dc *deploy.Client, ns string, keep []string, deployed []rendered, log *slog.Logger) error {
	sel := sutSelector(keep)
	kept := map[string]bool{}
	for _, r := range deployed {
		for _, o := range r.objs {
			kept[objKey(o)] = true
		}
	}
	deleted, err := dc.DeleteSelected(ctx, ns, sel, sutResources(), func(o *unstructured.Unstructured) bool { return !kept[objKey(o)] })
	if err != nil {
		return fmt.Errorf("remove the objects of an implementation an earlier run deployed (labelled %s): %w", SUTLabel, err)
	}
	if len(deleted) > 0 {
		log.Info("implementation removed: this run does not deploy it", "objects", deleted)
	}
	return nil
}

// sutSelector selects the objects of implementations declared as data
// other than keep.
func sutSelector(keep []string) string {
	if len(keep) == 0 {
		return SUTLabel
	}
	return SUTLabel + "," + SUTLabel + " notin (" + strings.Join(keep, ",") + ")"
}
