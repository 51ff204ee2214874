// Package probepod builds the pod that runs idharness's probe (cmd/probe)
// in a cluster: one container, never restarted, pinned to a node if asked,
// tolerating every taint and with no service account token unless a
// service account is named. The suites (suites/framework) and in-cluster
// scenario runs (internal/scenario) both run the probe this way, so that
// a spec and a scenario exercise the same workload.
package probepod

import (
	"fmt"
	"maps"
	"path"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/idharness/idharness/internal/kubepatch"
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
	// Gated makes the probe, once its clients are built, answer its
	// pod's startupProbe (so that the pod shows Ready) and wait until
	// the pod's StartAnnotation holds the run's start, which the runner
	// sets once every pod of the run is Ready (StartPatch). Args then
	// give --start-offset and --end-offset, not --start-at.
	Gated bool
}

// StartAnnotation carries a gated probe's start (RFC 3339), set by the
// runner; the kubelet projects it into StartFile.
const StartAnnotation = "idharness.io/start"

// StartFile is where a gated probe reads its start: a downward API file.
const StartFile = startDir + "/start"

// startDir is the mount of the downward API volume that holds StartFile.
const startDir = "/etc/idharness"

// ReadyPort is the port on which a gated probe answers its startupProbe
// until the start. Nothing else in a probe pod listens.
const ReadyPort = 17070

// ReadyBound bounds how long a gated probe may take to be ready (the
// startupProbe's failure threshold at one check a second): far beyond a
// cold JVM on a loaded node; the runner's own bound (--lead) is shorter.
const ReadyBound = 10 * time.Minute

// NudgePatch is a merge patch that changes nothing the probe reads (the
// n-th value of another annotation) yet is an update of the pod, which
// makes its kubelet sync it and project StartAnnotation again.
func NudgePatch(n int) []byte {
	return kubepatch.Annotation(StartAnnotation+"-nudge", fmt.Sprint(n))
}

// StartPatch is the merge patch that sets a gated probe pod's start.
func StartPatch(start time.Time) []byte {
	return kubepatch.Annotation(StartAnnotation, start.UTC().Format(time.RFC3339Nano))
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
	pod.Annotations = maps.Clone(s.Annotations)
	if s.Gated {
		gate(pod)
	}
	return pod
}

// gate makes pod a gated probe's: the start's volume, the flags that
// read it and the startupProbe on ReadyPort.
func gate(pod *corev1.Pod) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[StartAnnotation] = ""
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: startVolume, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
			Path:     path.Base(StartFile),
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + StartAnnotation + "']"},
		}}},
	}})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: startVolume, MountPath: startDir, ReadOnly: true})
	c.Args = append(c.Args, "--start-file="+StartFile, fmt.Sprintf("--ready-port=%d", ReadyPort))
	c.StartupProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(ReadyPort)}},
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		FailureThreshold: int32(ReadyBound / time.Second),
	}
}

// startVolume names the volume that holds StartFile.
const startVolume = "idharness-start"

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
