package nodeagent

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// What the agent does with the node's redirect when it stops. Removing it
// on every stop, as aad-pod-identity's NMI does, opens a window on each
// restart (a rollout, an eviction, a crash loop's SIGTERM) in which pods
// reach the node's metadata endpoint directly and can get a token for any
// identity the VM holds. Keeping it fails closed instead: pods get
// "connection refused" until the next agent replaces the rule.
const (
	// ExitAuto removes the redirect only when the agent is being
	// uninstalled (Uninstalling), and keeps it otherwise.
	ExitAuto = "auto"
	// ExitKeep always keeps the redirect.
	ExitKeep = "keep"
	// ExitRemove always removes it (NMI's behaviour).
	ExitRemove = "remove"
)

// ExitPolicies lists the policies, for flag help and validation.
var ExitPolicies = []string{ExitAuto, ExitKeep, ExitRemove}

// Uninstalling reports whether the agent pod ns/pod is going away for
// good: its DaemonSet is gone or being deleted, or the pod has no
// DaemonSet at all (run by hand). A pod that is merely restarted, evicted
// or rolled to a new version has a live DaemonSet that will start another
// agent on the node.
func Uninstalling(ctx context.Context, kube kubernetes.Interface, ns, pod string) (bool, error) {
	p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read the agent's pod %s/%s: %w", ns, pod, err)
	}
	for _, o := range p.OwnerReferences {
		if o.Kind != "DaemonSet" {
			continue
		}
		ds, err := kube.AppsV1().DaemonSets(ns).Get(ctx, o.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("read the agent's DaemonSet %s/%s: %w", ns, o.Name, err)
		}
		return ds.DeletionTimestamp != nil || ds.UID != o.UID, nil
	}
	return true, nil
}
