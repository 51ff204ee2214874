package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() {
	registerStep("restart", "deletes a DaemonSet's pod on the run's node (the pod identity agent, …) and waits until its replacement is ready; cluster runs only", func() StepAction { return &restartStep{} })
}

// restartStep deletes the pod of a DaemonSet of the idharness stack on
// the run's node, as a rollout or an eviction does, and returns once the
// DaemonSet's new pod there is ready: the step's end is that moment, from
// which recovery is measured.
type restartStep struct {
	// DaemonSet names the DaemonSet in the stack's namespace.
	DaemonSet string `json:"daemonSet,omitempty"`
	// Agent names a role instead: pod-identity is whichever pod identity
	// agent the stack runs (the reference node agent, aad-pod-identity's NMI).
	Agent string `json:"agent,omitempty"`
	// Ready bounds the wait for the new pod (default 90s).
	Ready duration.Duration `json:"ready,omitempty"`
}

// RestartReadyDefault bounds the wait for a restarted pod's replacement.
const RestartReadyDefault = 90 * time.Second

func (s *restartStep) needsCluster() string {
	return "a restart deletes a pod of the stack on the run's node"
}

// blocks: the step ends when the replacement is ready.
func (s *restartStep) blocks() bool { return true }

func (s *restartStep) validate(_ *Scenario, _ identities, field string) error {
	if (s.DaemonSet == "") == (s.Agent == "") {
		return bad(field, "set exactly one of daemonSet (a DaemonSet of the stack's namespace) and agent (pod-identity)")
	}
	if s.Agent != "" && s.Agent != "pod-identity" {
		return bad(field+".agent", "want pod-identity, got %q", s.Agent)
	}
	if s.Ready.Duration < 0 || s.Ready.Duration > MaxDuration {
		return bad(field+".ready", "want a wait between 0 and %v, got %v", MaxDuration, s.Ready.Duration)
	}
	return nil
}

func (s *restartStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	k := r.kube
	if k == nil {
		return nil, "restart", errors.New("a restart needs a cluster")
	}
	name := s.DaemonSet
	if s.Agent != "" {
		ds, err := k.podIdentityAgent(ctx)
		if err != nil {
			return nil, "restart the pod identity agent", err
		}
		if ds == "" {
			return nil, "restart the pod identity agent", fmt.Errorf("no pod identity agent (DaemonSet %v) in namespace %s: deploy the stack with `idharness run --profile reference --keep-cluster`", k.agents, k.namespace)
		}
		name = ds
	}
	detail := fmt.Sprintf("restart %s's pod on %s", name, k.node)
	ds, err := k.kube.AppsV1().DaemonSets(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, detail, fmt.Errorf("read DaemonSet %s/%s: %w", k.namespace, name, err)
	}
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	list := func() ([]corev1.Pod, error) {
		pods, err := k.kube.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel, FieldSelector: "spec.nodeName=" + k.node})
		if err != nil {
			return nil, fmt.Errorf("list %s's pods on %s: %w", name, k.node, err)
		}
		return pods.Items, nil
	}
	old, err := list()
	if err != nil {
		return nil, detail, err
	}
	if len(old) != 1 {
		return nil, detail, fmt.Errorf("want one pod of %s on %s, found %d", name, k.node, len(old))
	}
	from := time.Now()
	if err := k.kube.CoreV1().Pods(k.namespace).Delete(ctx, old[0].Name, metav1.DeleteOptions{}); err != nil {
		return nil, detail, fmt.Errorf("delete pod %s/%s: %w", k.namespace, old[0].Name, err)
	}
	wait := s.Ready.Duration
	if wait == 0 {
		wait = RestartReadyDefault
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		pods, err := list()
		if err != nil {
			return nil, detail, err
		}
		for _, p := range pods {
			if p.Name == old[0].Name || p.DeletionTimestamp != nil {
				continue
			}
			if podReady(p) {
				return nil, fmt.Sprintf("%s: new pod %s ready after %v", detail, p.Name, time.Since(from).Round(100*time.Millisecond)), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, detail, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, detail, fmt.Errorf("no new %s pod ready on %s within %v of deleting %s", name, k.node, wait, old[0].Name)
}

// podIdentityAgent returns the DaemonSet of the stack's pod identity
// agent that is deployed (the reference node agent, aad-pod-identity's
// NMI), or "" when none is.
func (k *kubeEnv) podIdentityAgent(ctx context.Context) (string, error) {
	for _, ds := range k.agents {
		_, err := k.kube.AppsV1().DaemonSets(k.namespace).Get(ctx, ds, metav1.GetOptions{})
		if err == nil {
			return ds, nil
		}
		if !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("look for the pod identity agent's DaemonSet %s: %w", ds, err)
		}
	}
	return "", nil
}
