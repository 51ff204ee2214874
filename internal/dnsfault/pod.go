package dnsfault

import (
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	// DNSPort is the resolver pod's one port: DNS, on every address
	// (resolv.conf cannot name another port).
	DNSPort = 53
	// Command is the fakeimds image's command that runs the resolver.
	Command = "dns-resolver"
	// Container is the resolver's container, whose log carries its
	// events.
	Container = "resolver"
)

// PodSpec describes the resolver's pod.
type PodSpec struct {
	Name, Namespace string
	// Node pins the pod (the run's node, beside the pods it serves).
	Node string
	// Image is the fakeimds image, which has the dns-resolver command.
	Image  string
	Labels map[string]string
}

// Pod returns the resolver's pod: the dns-resolver command, as an
// unprivileged user with nothing but port 53 opened to it (the
// namespaced sysctl net.ipv4.ip_unprivileged_port_start, which
// Kubernetes allows every pod), no service account token, ready once it
// accepts DNS over TCP, and its faults in FaultsFile, the downward API
// projection of its FaultsAnnotation (empty: none yet).
func Pod(s PodSpec) *corev1.Pod {
	labels := map[string]string{"app.kubernetes.io/name": "dns-resolver", "app.kubernetes.io/part-of": "idharness"}
	for k, v := range s.Labels {
		labels[k] = v
	}
	user, grace := int64(65532), int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels,
			Annotations: map[string]string{FaultsAnnotation: ""}},
		Spec: corev1.PodSpec{
			NodeName:                      s.Node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			AutomountServiceAccountToken:  new(bool),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: new(true), RunAsUser: &user, RunAsGroup: &user,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				Sysctls:        []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: strconv.Itoa(DNSPort)}},
			},
			Volumes: []corev1.Volume{{Name: faultsVolume, VolumeSource: corev1.VolumeSource{
				DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
					Path:     path.Base(FaultsFile),
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + FaultsAnnotation + "']"},
				}}},
			}}},
			Containers: []corev1.Container{{
				Name: Container, Image: s.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args:         []string{Command, "--dns=:" + strconv.Itoa(DNSPort), "--faults-file=" + FaultsFile},
				VolumeMounts: []corev1.VolumeMount{{Name: faultsVolume, MountPath: path.Dir(FaultsFile), ReadOnly: true}},
				Ports: []corev1.ContainerPort{{Name: "dns", ContainerPort: DNSPort, Protocol: corev1.ProtocolUDP},
					{Name: "dns-tcp", ContainerPort: DNSPort, Protocol: corev1.ProtocolTCP}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(DNSPort)}},
					PeriodSeconds: 1},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// faultsVolume names the volume that holds FaultsFile.
const faultsVolume = "idharness-dns-faults"

// DNSConfig points a pod at the resolver at ip, with the search list
// and options the cluster gives pods of the resolver's namespace.
func DNSConfig(ip string, r Resolv) (corev1.DNSPolicy, *corev1.PodDNSConfig) {
	cfg := &corev1.PodDNSConfig{Nameservers: []string{ip}, Searches: r.Search}
	for _, o := range r.Options {
		name, value, ok := strings.Cut(o, ":")
		opt := corev1.PodDNSConfigOption{Name: name}
		if ok {
			opt.Value = &value
		}
		cfg.Options = append(cfg.Options, opt)
	}
	return corev1.DNSNone, cfg
}
