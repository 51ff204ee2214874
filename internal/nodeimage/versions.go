// Package nodeimage builds kind node images with no container registry.
//
// Users who can pull use kind's published node image. Where nothing can be
// pulled (air-gapped CI, the machines idharness is developed on), the Builder
// makes an equivalent image from Debian packages and Go modules only:
//
//   - a Debian root file system by mmdebstrap with kind's node files
//     (entrypoint, /kind helpers, containerd, kubelet and crictl
//     configuration, from the sigs.k8s.io/kind module's images/base/files),
//     imported into Docker as the base image;
//   - the Kubernetes binaries, built from the k8s.io/kubernetes module through
//     a generated build module that pins every k8s.io staging module to the
//     matching v0.x version, with the version set through ldflags; etcd,
//     CoreDNS, crictl and a pause program at the versions kubeadm expects;
//   - the control-plane images with the exact names kubeadm expects,
//     assembled with go-containerregistry and imported, pinned, into the
//     node's containerd store;
//   - a pod network that needs no image: a systemd unit on every node writes
//     the CNI configuration for the node's pod range and routes to the other
//     nodes' ranges.
//
// Every product is cached under a content key (versions and recipe), so a
// rebuild with nothing changed takes seconds.
package nodeimage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Versions are the versions of everything that goes into a node image.
type Versions struct {
	// Kubernetes is the Kubernetes release, such as "v1.34.4".
	Kubernetes string
	// Etcd is the etcd release without "v", such as "3.6.5"; the image tag
	// is Etcd + "-0" as kubeadm expects.
	Etcd string
	// CoreDNS is the CoreDNS release, such as "v1.12.1".
	CoreDNS string
	// Pause is the pause image tag kubeadm expects, such as "3.10.1".
	Pause string
	// Crictl is the cri-tools release, such as "v1.34.0".
	Crictl string
	// Debian is the Debian suite of the root file system, such as "bookworm".
	Debian string
}

// DefaultVersions returns the versions idharness is tested with: Kubernetes
// v1.34.4 (1.35 and later refuse cgroup v1 hosts by default) and the etcd,
// CoreDNS and pause versions `kubeadm config images list` prints for it.
func DefaultVersions() Versions {
	return Versions{
		Kubernetes: "v1.34.4",
		Etcd:       "3.6.5",
		CoreDNS:    "v1.12.1",
		Pause:      "3.10.1",
		Crictl:     "v1.34.0",
		Debian:     "bookworm",
	}
}

var (
	kubeVersionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)$`)
	semverRE      = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)
	pauseRE       = regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`)
	suiteRE       = regexp.MustCompile(`^[a-z]+$`)
)

// Validate reports versions the builder cannot use, saying what to use instead.
func (v Versions) Validate() error {
	m := kubeVersionRE.FindStringSubmatch(v.Kubernetes)
	if m == nil {
		return fmt.Errorf("kubernetes version %q: want a release like v1.34.4", v.Kubernetes)
	}
	if minor, _ := strconv.Atoi(m[1]); minor < 30 {
		return fmt.Errorf("kubernetes version %s: the offline node image supports v1.30 and later", v.Kubernetes)
	}
	checks := []struct{ what, val string }{
		{"etcd", v.Etcd}, {"CoreDNS", v.CoreDNS}, {"crictl", v.Crictl},
	}
	for _, c := range checks {
		if !semverRE.MatchString(c.val) {
			return fmt.Errorf("%s version %q: want a release like 1.2.3", c.what, c.val)
		}
	}
	if strings.HasPrefix(v.Etcd, "v") {
		return fmt.Errorf("etcd version %q: write it without the leading v (3.6.5)", v.Etcd)
	}
	if !strings.HasPrefix(v.CoreDNS, "v") || !strings.HasPrefix(v.Crictl, "v") {
		return fmt.Errorf("CoreDNS and crictl versions take a leading v (v1.12.1, v1.34.0)")
	}
	if !pauseRE.MatchString(v.Pause) {
		return fmt.Errorf("pause version %q: want a tag like 3.10.1", v.Pause)
	}
	if !suiteRE.MatchString(v.Debian) {
		return fmt.Errorf("debian suite %q: want a suite name like bookworm", v.Debian)
	}
	return nil
}

// KubeMinor returns the minor version of Kubernetes (34 for v1.34.4).
func (v Versions) KubeMinor() int {
	m := kubeVersionRE.FindStringSubmatch(v.Kubernetes)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// StagingVersion returns the version of the k8s.io staging modules (such as
// k8s.io/client-go) released with v.Kubernetes: v1.34.4 → v0.34.4.
func (v Versions) StagingVersion() string {
	return "v0" + strings.TrimPrefix(v.Kubernetes, "v1")
}

// ControlPlaneImages returns the images kubeadm pulls for v.Kubernetes, by
// component, with the exact names `kubeadm config images list` prints.
func (v Versions) ControlPlaneImages() map[string]string {
	const r = "registry.k8s.io/"
	return map[string]string{
		"kube-apiserver":          r + "kube-apiserver:" + v.Kubernetes,
		"kube-controller-manager": r + "kube-controller-manager:" + v.Kubernetes,
		"kube-scheduler":          r + "kube-scheduler:" + v.Kubernetes,
		"kube-proxy":              r + "kube-proxy:" + v.Kubernetes,
		"etcd":                    r + "etcd:" + v.Etcd + "-0",
		"coredns":                 r + "coredns/coredns:" + v.CoreDNS,
		"pause":                   r + "pause:" + v.Pause,
	}
}

// rootfsPackages are the Debian packages of the node's root file system.
var rootfsPackages = []string{
	"systemd", "systemd-sysv", "dbus", "containerd", "runc", "iptables", "nftables",
	"conntrack", "ethtool", "socat", "mount", "kmod", "ca-certificates", "procps",
	"util-linux", "containernetworking-plugins", "iproute2", "libseccomp2", "ebtables",
	"bash", "findutils", "pigz", "e2fsprogs", "jq",
}
