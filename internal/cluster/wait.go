package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Health is a snapshot of a cluster's readiness.
type Health struct {
	// Nodes and ReadyNodes count the nodes and those whose Ready condition is True.
	Nodes, ReadyNodes int
	// SystemPods and RunningSystemPods count the kube-system pods and those
	// Running with every container ready (or Succeeded).
	SystemPods, RunningSystemPods int
	// NotReady names what is not ready yet.
	NotReady []string
}

// Healthy tells whether every node is Ready and every kube-system pod runs.
func (h Health) Healthy() bool {
	return h.Nodes > 0 && h.ReadyNodes == h.Nodes && h.SystemPods > 0 && h.RunningSystemPods == h.SystemPods
}

// String summarises h for logs.
func (h Health) String() string {
	s := fmt.Sprintf("nodes %d/%d Ready, kube-system pods %d/%d Running", h.ReadyNodes, h.Nodes, h.RunningSystemPods, h.SystemPods)
	if len(h.NotReady) > 0 {
		s += " (waiting for " + strings.Join(h.NotReady, ", ") + ")"
	}
	return s
}

// nodeReady tells whether n's Ready condition is True.
func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podRunning tells whether p has finished successfully or runs with every
// container ready.
func podRunning(p corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// evaluate computes the Health of the given nodes and kube-system pods.
func evaluate(nodes []corev1.Node, pods []corev1.Pod) Health {
	var h Health
	for _, n := range nodes {
		h.Nodes++
		if nodeReady(n) {
			h.ReadyNodes++
		} else {
			h.NotReady = append(h.NotReady, "node/"+n.Name)
		}
	}
	for _, p := range pods {
		h.SystemPods++
		if podRunning(p) {
			h.RunningSystemPods++
		} else {
			h.NotReady = append(h.NotReady, "pod/"+p.Name)
		}
	}
	sort.Strings(h.NotReady)
	return h
}

// CheckHealth reads the cluster's nodes and kube-system pods once.
func CheckHealth(ctx context.Context, cfg *rest.Config) (Health, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Health{}, fmt.Errorf("kubernetes client: %w", err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Health{}, fmt.Errorf("list nodes: %w", err)
	}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return Health{}, fmt.Errorf("list kube-system pods: %w", err)
	}
	return evaluate(nodes.Items, pods.Items), nil
}

// WaitHealthy polls until CheckHealth reports a healthy cluster, ctx ends or
// timeout passes. It logs progress when the state changes.
func WaitHealthy(ctx context.Context, cfg *rest.Config, timeout time.Duration, report func(Health)) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := rest.CopyConfig(cfg)
	c.Timeout = 10 * time.Second
	var last Health
	var lastErr error
	lastMsg := ""
	for {
		h, err := CheckHealth(ctx, c)
		if err == nil {
			last, lastErr = h, nil
			if h.Healthy() {
				return h, nil
			}
			if msg := h.String(); msg != lastMsg && report != nil {
				report(h)
				lastMsg = msg
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("cluster not healthy after %s: %w", timeout, lastErr)
			}
			return last, fmt.Errorf("cluster not healthy after %s: %s", timeout, last)
		case <-time.After(2 * time.Second):
		}
	}
}
