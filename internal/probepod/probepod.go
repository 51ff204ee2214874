// Package probepod builds the pod that runs idharness's probe (cmd/probe)
// in a cluster: one container, never restarted, pinned to a node if asked,
// tolerating every taint and with no service account token unless a
// service account is named. The suites (suites/framework) and in-cluster
// scenario runs (internal/scenario) both run the probe this way, so that
// a spec and a scenario exercise the same workload.
package probepod

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Container is the name of the probe's container, whose log holds the
// result lines.
const Container = "probe"

// Spec describes one probe pod.
type Spec struct {
	// Name and Namespace name the pod.
	Name      string
	Namespace string
	// Node pins the pod to a node; empty lets the scheduler choose.
	Node string
	// Image is the probe image (stack.Stack's Images.Probe).
	Image string
	// Args are the probe's flags; --exit-zero is always added first,
	// because callers judge the result lines, not the exit status.
	Args []string
	// Env adds environment variables.
	Env map[string]string
	// ServiceAccount runs the pod as this service account (default: the
	// namespace's "default").
	ServiceAccount string
	// Labels and Annotations are added to the pod's own.
	Labels      map[string]string
	Annotations map[string]string
}

// Pod returns the pod for s.
func Pod(s Spec) *corev1.Pod {
	args := append([]string{"--exit-zero"}, s.Args...)
	var env []corev1.EnvVar
	for _, k := range sortedKeys(s.Env) {
		env = append(env, corev1.EnvVar{Name: k, Value: s.Env[k]})
	}
	zero := int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "probe", "app.kubernetes.io/part-of": "idharness"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			NodeName:                      s.Node,
			TerminationGracePeriodSeconds: &zero,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			AutomountServiceAccountToken:  new(bool),
			ServiceAccountName:            s.ServiceAccount,
			Containers: []corev1.Container{{
				Name: Container, Image: s.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: args, Env: env,
			}},
		},
	}
	for k, v := range s.Labels {
		pod.Labels[k] = v
	}
	pod.Annotations = s.Annotations
	return pod
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
