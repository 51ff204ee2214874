package probepod

import (
	"reflect"
	"testing"
	"time"

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

// TestGatedPod: a gated probe reads its start from a downward API file of
// the annotation the runner sets, and answers its startupProbe on
// ReadyPort; an ungated one has none of it.
func TestGatedPod(t *testing.T) {
	p := Pod(Spec{Name: "probe-a", Namespace: "ns", Image: "img", Args: []string{"--client=raw"}, Gated: true})
	c := p.Spec.Containers[0]
	if !reflect.DeepEqual(c.Args, []string{"--exit-zero", "--client=raw", "--start-file=/etc/idharness/start", "--ready-port=17070"}) {
		t.Errorf("args %v", c.Args)
	}
	if v, ok := p.Annotations[StartAnnotation]; !ok || v != "" {
		t.Errorf("annotations %v: want %s, empty", p.Annotations, StartAnnotation)
	}
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].DownwardAPI == nil ||
		p.Spec.Volumes[0].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.annotations['idharness.io/start']" ||
		p.Spec.Volumes[0].DownwardAPI.Items[0].Path != "start" {
		t.Errorf("volumes %+v", p.Spec.Volumes)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/idharness" || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
	if sp := c.StartupProbe; sp == nil || sp.TCPSocket == nil || sp.TCPSocket.Port.IntValue() != ReadyPort || sp.PeriodSeconds != 1 || sp.FailureThreshold != 600 {
		t.Errorf("startupProbe %+v", sp)
	}
	plain := Pod(Spec{Name: "probe-a", Namespace: "ns", Image: "img"})
	if plain.Spec.Containers[0].StartupProbe != nil || len(plain.Spec.Volumes) != 0 || plain.Annotations != nil {
		t.Errorf("ungated pod %+v", plain.Spec)
	}
	want := `{"metadata":{"annotations":{"idharness.io/start":"2026-01-02T15:04:05.5Z"}}}`
	if got := string(StartPatch(time.Date(2026, 1, 2, 16, 4, 5, 5e8, time.FixedZone("x", 3600)))); got != want {
		t.Errorf("StartPatch = %s, want %s", got, want)
	}
}
