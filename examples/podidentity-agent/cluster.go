package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// Cluster is what the handler needs to know of the cluster.
type Cluster interface {
	// PodByIP returns the pod on this node whose address is ip, or nil.
	PodByIP(ctx context.Context, ip string) (*corev1.Pod, error)
	// Objects returns the pod identity objects of namespace ns.
	Objects(ctx context.Context, ns string) (Objects, error)
}

// apiCluster asks the API server on every request. That is the toy's
// simplification: nothing is cached, so a label edited or a binding
// deleted counts from the next request on, at the price of a few API
// calls per token request. An agent for real clusters would use
// informers (and then has to handle their lag).
type apiCluster struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
	node string
}

// PodByIP lists the pods scheduled to this node and picks the one with
// ip. Host-network pods share the node's address and are never
// redirected to the agent, so they are not candidates; finished pods may
// have handed their address on to a new pod.
func (c *apiCluster) PodByIP(ctx context.Context, ip string) (*corev1.Pod, error) {
	pods, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", c.node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list the pods of node %s: %w", c.node, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Status.PodIP == ip {
			return p, nil
		}
		for _, a := range p.Status.PodIPs {
			if a.IP == ip {
				return p, nil
			}
		}
	}
	return nil, nil
}

// Objects lists the AzureIdentities, AzureIdentityBindings and
// AzurePodIdentityExceptions of ns.
func (c *apiCluster) Objects(ctx context.Context, ns string) (Objects, error) {
	var objs Objects
	list := func(res schema.GroupVersionResource, each func(name string, spec map[string]any)) error {
		l, err := c.dyn.Resource(res).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", res.Resource, ns, err)
		}
		for _, o := range l.Items {
			spec, _, _ := unstructured.NestedMap(o.Object, "spec")
			each(o.GetName(), spec)
		}
		return nil
	}
	err := list(podidentity.AzureIdentityGVR, func(name string, spec map[string]any) {
		typ, _, _ := unstructured.NestedInt64(spec, podidentity.FieldType)
		objs.Identities = append(objs.Identities, Identity{Name: name, Type: typ,
			ClientID: str(spec, podidentity.FieldClientID), ResourceID: str(spec, podidentity.FieldResourceID)})
	})
	if err == nil {
		err = list(podidentity.AzureIdentityBindingGVR, func(name string, spec map[string]any) {
			objs.Bindings = append(objs.Bindings, Binding{Name: name,
				Identity: str(spec, podidentity.FieldAzureIdentity), Selector: str(spec, podidentity.FieldSelector)})
		})
	}
	if err == nil {
		err = list(podidentity.AzurePodIdentityExceptionGVR, func(name string, spec map[string]any) {
			labels, _, _ := unstructured.NestedStringMap(spec, podidentity.FieldPodLabels)
			objs.Exceptions = append(objs.Exceptions, Exception{Name: name, PodLabels: labels})
		})
	}
	return objs, err
}

// str is spec's string field, "" when absent or not a string.
func str(spec map[string]any, field string) string {
	s, _, _ := unstructured.NestedString(spec, field)
	return s
}
