package dnsfault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// The resolver pod's ports: DNS on 53 of every address (resolv.conf
// cannot name another port), the control API on loopback.
const (
	DNSPort     = 53
	ControlPort = 8053
	// Command is the fakeimds image's command that runs the resolver.
	Command = "dns-resolver"
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
// Kubernetes allows every pod), no service account token, and ready once
// it accepts DNS over TCP.
func Pod(s PodSpec) *corev1.Pod {
	labels := map[string]string{"app.kubernetes.io/name": "dns-resolver", "app.kubernetes.io/part-of": "idharness"}
	for k, v := range s.Labels {
		labels[k] = v
	}
	user, grace := int64(65532), int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels},
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
			Containers: []corev1.Container{{
				Name: "resolver", Image: s.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{Command, "--dns=:" + strconv.Itoa(DNSPort), "--control=127.0.0.1:" + strconv.Itoa(ControlPort)},
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

// Forward opens a port-forward from a local port on 127.0.0.1 to port
// of pod ns/name, the Kubernetes API's way into a pod's loopback, and
// returns the local address and how to close it. It takes the
// pods/portforward right.
func Forward(ctx context.Context, cfg *rest.Config, ns, name string, port int) (string, func(), error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, err
	}
	u := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, name, err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, name, err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		return "", nil, fmt.Errorf("port-forward to %s/%s:%d (needs the pods/portforward right): %w", ns, name, port, err)
	case <-ctx.Done():
		close(stop)
		return "", nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward to %s/%s: no local port (%v)", ns, name, err)
	}
	return "127.0.0.1:" + strconv.Itoa(int(ports[0].Local)), func() { close(stop) }, nil
}
