package dnsfault

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPod: the resolver's pod runs the fakeimds image's dns-resolver
// command, reading its faults from the downward API file of its own
// annotation (read-only), with no port but DNS, unprivileged but for
// port 53, with no service account token, pinned to the run's node.
func TestPod(t *testing.T) {
	p := Pod(PodSpec{Name: "idh-dns-resolver", Namespace: "run", Node: "w2", Image: "idharness.local/fakeimds:dev", Labels: map[string]string{"x": "y"}})
	c := p.Spec.Containers[0]
	if c.Name != Container || c.Image != "idharness.local/fakeimds:dev" || !slices.Equal(c.Args, []string{Command, "--dns=:53", "--faults-file=" + FaultsFile}) {
		t.Errorf("container %s %s %v: want the dns-resolver command, its faults from %s", c.Name, c.Image, c.Args, FaultsFile)
	}
	if v, ok := p.Annotations[FaultsAnnotation]; !ok || v != "" {
		t.Errorf("annotations %v: want %s, empty (no fault yet)", p.Annotations, FaultsAnnotation)
	}
	if len(p.Spec.Volumes) != 1 || len(c.VolumeMounts) != 1 {
		t.Fatalf("volumes %+v, mounts %+v: want the faults' volume alone", p.Spec.Volumes, c.VolumeMounts)
	}
	v, m := p.Spec.Volumes[0], c.VolumeMounts[0]
	if d := v.DownwardAPI; d == nil || len(d.Items) != 1 || d.Items[0].FieldRef == nil ||
		d.Items[0].FieldRef.FieldPath != "metadata.annotations['"+FaultsAnnotation+"']" ||
		m.Name != v.Name || !m.ReadOnly || m.MountPath+"/"+d.Items[0].Path != FaultsFile {
		t.Errorf("volume %+v mounted %+v: want %s, read-only, the projection of the %s annotation", v, m, FaultsFile, FaultsAnnotation)
	}
	for _, port := range c.Ports {
		if port.ContainerPort != DNSPort {
			t.Errorf("port %+v: want DNS's alone", port)
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
