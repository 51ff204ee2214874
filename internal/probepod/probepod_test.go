package probepod

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPod(t *testing.T) {
	p := Pod(Spec{Name: "probe-a", Namespace: "ns", Node: "w1", Image: "idharness.local/probe:x",
		Args: []string{"--client=raw"}, Env: map[string]string{"B": "2", "A": "1"},
		Labels: map[string]string{"x": "y"}, Annotations: map[string]string{"k": "v"}, ServiceAccount: "sa"})
	c := p.Spec.Containers[0]
	if c.Name != Container || c.Image != "idharness.local/probe:x" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("container %+v", c)
	}
	if !reflect.DeepEqual(c.Args, []string{"--exit-zero", "--client=raw"}) {
		t.Errorf("args %v", c.Args)
	}
	if !reflect.DeepEqual(c.Env, []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}) {
		t.Errorf("env %v (want sorted)", c.Env)
	}
	if p.Spec.NodeName != "w1" || p.Spec.RestartPolicy != corev1.RestartPolicyNever || *p.Spec.AutomountServiceAccountToken ||
		*p.Spec.TerminationGracePeriodSeconds != 0 || p.Spec.ServiceAccountName != "sa" || len(p.Spec.Tolerations) != 1 {
		t.Errorf("spec %+v", p.Spec)
	}
	if p.Labels["app.kubernetes.io/name"] != "probe" || p.Labels["x"] != "y" || p.Annotations["k"] != "v" || p.Namespace != "ns" {
		t.Errorf("meta %+v", p.ObjectMeta)
	}
}
