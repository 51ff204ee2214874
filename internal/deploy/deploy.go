// Package deploy applies rendered manifests to a cluster with server-side
// apply (idempotent: a second run updates in place) and waits for the
// workloads to be ready, reporting progress.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager names idharness in managed fields.
const FieldManager = "idharness"

// Client applies objects and waits on workloads.
type Client struct {
	Kube    kubernetes.Interface
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	log     *slog.Logger
	Timeout time.Duration
}

// New returns a client for the cluster cfg points at.
func New(cfg *rest.Config, log *slog.Logger) (*Client, error) {
	// Suites poll dozens of pods at once (a chaos storm runs 32): at
	// client-go's default of 5 requests a second those polls would queue
	// for seconds. A config that sets its own rate keeps it.
	if cfg.QPS == 0 && cfg.Burst == 0 {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = 50, 100
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Client{Kube: kube, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), log: log, Timeout: 3 * time.Minute}, nil
}

// Apply server-side-applies objs in order.
func (c *Client) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		ri, ok := c.resource(o)
		if !ok {
			return fmt.Errorf("apply %s %s: the cluster does not know kind %s (is its CRD installed?)", gvk.Kind, o.GetName(), gvk)
		}
		body, err := json.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		force := true
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
		c.log.Debug("applied", "kind", gvk.Kind, "namespace", o.GetNamespace(), "name", o.GetName())
	}
	return nil
}

// resource returns the dynamic client for o's kind, in its namespace if
// the kind is namespaced; ok is false when the cluster does not know the
// kind (its CRD is not installed).
func (c *Client) resource(o *unstructured.Unstructured) (ri dynamic.ResourceInterface, ok bool) {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset()
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, false
		}
	}
	if m.Scope.Name() == "namespace" {
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), true
	}
	return c.dyn.Resource(m.Resource), true
}

// DeleteOwned deletes those of objs that exist and carry every label of
// owned, last first (the reverse of applying), and waits until each is
// gone: foreground deletion, so a workload is gone once its pods are.
// An object without the labels is someone else's and is left alone;
// kinds the cluster does not know and absent objects are skipped. It
// returns "Kind namespace/name" of each object it deleted.
func (c *Client) DeleteOwned(ctx context.Context, owned map[string]string, objs ...*unstructured.Unstructured) ([]string, error) {
	var gone []doomed
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		ri, ok := c.resource(o)
		if !ok {
			continue
		}
		d := doomedOf(ri, o)
		live, err := ri.Get(ctx, d.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", d.what(), err)
		}
		if !hasLabels(live.GetLabels(), owned) {
			c.log.Info("left in place: not idharness's", "object", d.what())
			continue
		}
		gone = append(gone, d)
	}
	return c.deleteAll(ctx, gone)
}

// Resource is a kind of object DeleteSelected looks through.
type Resource struct {
	schema.GroupVersionResource
	// Namespaced kinds are looked for in the namespace given.
	Namespaced bool
}

// DeleteSelected deletes the objects of resources that match the label
// selector (the namespaced ones in ns) and that remove accepts, in the
// order of resources, and waits until they are gone, workloads with their
// pods. It returns "Kind namespace/name" of each.
func (c *Client) DeleteSelected(ctx context.Context, ns, selector string, resources []Resource, remove func(*unstructured.Unstructured) bool) ([]string, error) {
	var gone []doomed
	for _, r := range resources {
		var ri dynamic.ResourceInterface = c.dyn.Resource(r.GroupVersionResource)
		if r.Namespaced {
			ri = c.dyn.Resource(r.GroupVersionResource).Namespace(ns)
		}
		l, err := ri.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list %s labelled %s: %w", r.Resource, selector, err)
		}
		for i := range l.Items {
			o := &l.Items[i]
			if remove(o) {
				gone = append(gone, doomedOf(ri, o))
			}
		}
	}
	return c.deleteAll(ctx, gone)
}

// doomed is an object to delete: where it is, its kind, namespace and
// name.
type doomed struct {
	ri                    dynamic.ResourceInterface
	kind, namespace, name string
}

// doomedOf is o, found through ri, as an object to delete.
func doomedOf(ri dynamic.ResourceInterface, o *unstructured.Unstructured) doomed {
	return doomed{ri, o.GetKind(), o.GetNamespace(), o.GetName()}
}

// what names d in logs, errors and the deleted list: "Kind namespace/name".
func (d doomed) what() string { return d.kind + " " + d.namespace + "/" + d.name }

// runsPods reports whether kind is a workload, whose pods may still need
// the objects deleted after it while they stop.
func runsPods(kind string) bool {
	switch kind {
	case "DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job", "Pod":
		return true
	}
	return false
}

// deleteAll deletes objs in their order, in the foreground (a workload
// is gone once its pods are), and waits until every one is gone. An
// object is deleted only once the workloads before it are gone: a pod
// that stops may still need its ServiceAccount and RBAC (the reference
// agent reads its DaemonSet on SIGTERM to tell an uninstall from a
// restart, and keeps its redirect when it cannot). Objects with no
// workload between them are deleted together and waited for together:
// waiting for each before deleting the next took a poll per object. An
// object already gone counts as deleted. It returns what each deleted
// object is.
func (c *Client) deleteAll(ctx context.Context, objs []doomed) ([]string, error) {
	fg := metav1.DeletePropagationForeground
	var deleted []string
	var pending []doomed
	waitPending := func() error {
		for _, o := range pending {
			err := c.poll(ctx, o.what()+" deletion", func(ctx context.Context) (bool, string, error) {
				_, err := o.ri.Get(ctx, o.name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true, "", nil
				}
				return false, "deleting", err
			})
			if err != nil {
				return err
			}
		}
		pending = nil
		return nil
	}
	for _, o := range objs {
		if slices.ContainsFunc(pending, func(p doomed) bool { return runsPods(p.kind) }) {
			if err := waitPending(); err != nil {
				return deleted, err
			}
		}
		if err := o.ri.Delete(ctx, o.name, metav1.DeleteOptions{PropagationPolicy: &fg}); ignoreNotFound(err) != nil {
			return deleted, fmt.Errorf("delete %s: %w", o.what(), err)
		}
		deleted = append(deleted, o.what())
		pending = append(pending, o)
	}
	return deleted, waitPending()
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// WaitDaemonSet waits until every scheduled pod of the DaemonSet runs
// the current template and is ready.
func (c *Client) WaitDaemonSet(ctx context.Context, ns, name string) error {
	return c.poll(ctx, "daemonset "+ns+"/"+name, func(ctx context.Context) (bool, string, error) {
		ds, err := c.Kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", ignoreNotFound(err)
		}
		st := ds.Status
		msg := fmt.Sprintf("%d/%d ready, %d updated", st.NumberReady, st.DesiredNumberScheduled, st.UpdatedNumberScheduled)
		return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
			st.NumberReady == st.DesiredNumberScheduled && st.UpdatedNumberScheduled == st.DesiredNumberScheduled, msg, nil
	})
}

// WaitDeployment waits until the Deployment's pods run the current
// template and are available.
func (c *Client) WaitDeployment(ctx context.Context, ns, name string) error {
	return c.poll(ctx, "deployment "+ns+"/"+name, func(ctx context.Context) (bool, string, error) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", ignoreNotFound(err)
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		msg := fmt.Sprintf("%d/%d available", st.AvailableReplicas, want)
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want, msg, nil
	})
}

// WaitServiceEndpoints waits until Service name in ns has a ready
// endpoint in its EndpointSlices: a Deployment is available as soon as
// its pod is ready, but a caller through the Service (the API server
// calling a webhook) is refused until the endpoint is published.
func (c *Client) WaitServiceEndpoints(ctx context.Context, ns, name string) error {
	return c.poll(ctx, "service "+ns+"/"+name+" endpoints", func(ctx context.Context) (bool, string, error) {
		l, err := c.Kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
		if err != nil {
			return false, "", ignoreNotFound(err)
		}
		ok, msg := readyEndpoints(l.Items)
		return ok, msg, nil
	})
}

// readyEndpoints reports whether slices hold a ready endpoint, and says
// how many of how many are.
func readyEndpoints(slices []discoveryv1.EndpointSlice) (bool, string) {
	ready, all := 0, 0
	for _, s := range slices {
		for _, e := range s.Endpoints {
			all++
			// A nil Ready is ready (the field's documented default).
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
	}
	return ready > 0, fmt.Sprintf("%d/%d endpoints ready", ready, all)
}

// pollInterval is how often a wait asks the API server again. A deploy
// waits a dozen times (each workload's rollout, each deletion, the
// webhook's first call); at a second, each wait overshot its condition
// by half a second on average, and a run's deploys (make e2e, make chaos
// and the redeploys CI makes on the kept cluster) add up to dozens. A
// GET every quarter second is nothing to the API server.
const pollInterval = 250 * time.Millisecond

func (c *Client) poll(ctx context.Context, what string, cond func(context.Context) (bool, string, error)) error {
	start := time.Now()
	var last string
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		ok, msg, err := cond(ctx)
		if msg != last && msg != "" {
			c.log.Info("waiting", "for", what, "status", msg, "elapsed", time.Since(start).Round(time.Second))
			last = msg
		}
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("%s not ready after %s (last status: %s): %w", what, time.Since(start).Round(time.Second), last, err)
	}
	return nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// PodsOf returns the pods matching selector in ns.
func (c *Client) PodsOf(ctx context.Context, ns, selector string) ([]corev1.Pod, error) {
	l, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pods %s in %s: %w", selector, ns, err)
	}
	return l.Items, nil
}

// NodeNames returns the cluster's node names.
func (c *Client) NodeNames(ctx context.Context) ([]string, error) {
	l, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	return out, nil
}

// DeleteNamespace deletes ns and, when wait is set, waits until it is gone.
func (c *Client) DeleteNamespace(ctx context.Context, ns string, waitGone bool) error {
	err := c.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	if !waitGone {
		return nil
	}
	return c.poll(ctx, "namespace "+ns+" deletion", func(ctx context.Context) (bool, string, error) {
		_, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, "terminating", err
	})
}
