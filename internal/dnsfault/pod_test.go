package dnsfault

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPod: the resolver's pod runs the fakeimds image's dns-resolver
// command with its control API on loopback, unprivileged but for port
// 53, with no service account token, pinned to the run's node.
func TestPod(t *testing.T) {
	p := Pod(PodSpec{Name: "idh-dns-resolver", Namespace: "run", Node: "w2", Image: "idharness.local/fakeimds:dev", Labels: map[string]string{"x": "y"}})
	c := p.Spec.Containers[0]
	if c.Image != "idharness.local/fakeimds:dev" || c.Args[0] != Command || !slices.Contains(c.Args, "--control=127.0.0.1:8053") || !slices.Contains(c.Args, "--dns=:53") {
		t.Errorf("container %s %v: want the dns-resolver command, control on loopback", c.Image, c.Args)
	}
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--control="); ok {
			if err := checkControl(v); err != nil {
				t.Errorf("the pod's control address: %v", err)
			}
		}
	}
	sc, psc := c.SecurityContext, p.Spec.SecurityContext
	if psc == nil || !*psc.RunAsNonRoot || *psc.RunAsUser == 0 || sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Add != nil {
		t.Errorf("security: %+v %+v, want non-root, no capability", psc, sc)
	}
	if len(psc.Sysctls) != 1 || psc.Sysctls[0] != (corev1.Sysctl{Name: "net.ipv4.ip_unprivileged_port_start", Value: "53"}) {
		t.Errorf("sysctls %v: want port 53 opened to the unprivileged user, nothing more", psc.Sysctls)
	}
	if *p.Spec.AutomountServiceAccountToken || p.Spec.NodeName != "w2" || p.Namespace != "run" || p.Labels["x"] != "y" ||
		p.Labels["app.kubernetes.io/name"] != "dns-resolver" || c.ReadinessProbe.TCPSocket.Port.IntVal != DNSPort {
		t.Errorf("pod %+v", p)
	}
}
