package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVersionsValidate(t *testing.T) {
	mod := func(f func(*Versions)) Versions { v := DefaultVersions(); f(&v); return v }
	tests := []struct {
		name    string
		v       Versions
		wantErr string
	}{
		{"defaults", DefaultVersions(), ""},
		{"other patch", mod(func(v *Versions) { v.Kubernetes = "v1.34.9" }), ""},
		{"no v", mod(func(v *Versions) { v.Kubernetes = "1.34.4" }), "want a release like v1.34.4"},
		{"too old", mod(func(v *Versions) { v.Kubernetes = "v1.29.1" }), "v1.30 and later"},
		{"etcd with v", mod(func(v *Versions) { v.Etcd = "v3.6.5" }), "without the leading v"},
		{"coredns without v", mod(func(v *Versions) { v.CoreDNS = "1.12.1" }), "leading v"},
		{"bad pause", mod(func(v *Versions) { v.Pause = "latest" }), "pause version"},
		{"bad suite", mod(func(v *Versions) { v.Debian = "Bookworm 12" }), "debian suite"},
		{"empty crictl", mod(func(v *Versions) { v.Crictl = "" }), "crictl version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestControlPlaneImages(t *testing.T) {
	// The names `kubeadm config images list --kubernetes-version v1.34.4` prints.
	want := []string{
		"registry.k8s.io/kube-apiserver:v1.34.4",
		"registry.k8s.io/kube-controller-manager:v1.34.4",
		"registry.k8s.io/kube-scheduler:v1.34.4",
		"registry.k8s.io/kube-proxy:v1.34.4",
		"registry.k8s.io/coredns/coredns:v1.12.1",
		"registry.k8s.io/pause:3.10.1",
		"registry.k8s.io/etcd:3.6.5-0",
	}
	got := DefaultVersions().ControlPlaneImages()
	if len(got) != len(want) {
		t.Fatalf("got %d images, want %d", len(got), len(want))
	}
	have := map[string]bool{}
	for _, v := range got {
		have[v] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing %s in %v", w, got)
		}
	}
	if s := DefaultVersions().StagingVersion(); s != "v0.34.4" {
		t.Errorf("StagingVersion = %s", s)
	}
}

const kubeGoModSample = `module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	github.com/spf13/cobra v1.9.1
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/cri-api => ./staging/src/k8s.io/cri-api
)
`

func TestKubeBuildModule(t *testing.T) {
	mods := stagingModules([]byte(kubeGoModSample))
	if strings.Join(mods, ",") != "k8s.io/api,k8s.io/client-go,k8s.io/cri-api" {
		t.Fatalf("staging modules = %v", mods)
	}
	got, err := kubeBuildModule(DefaultVersions(), []byte(kubeGoModSample))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"\ngo 1.24.0\n",
		"require k8s.io/kubernetes v1.34.4\n",
		"\tk8s.io/api => k8s.io/api v0.34.4\n",
		"\tk8s.io/client-go => k8s.io/client-go v0.34.4\n",
		"\tk8s.io/cri-api => k8s.io/cri-api v0.34.4\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("build module lacks %q:\n%s", w, got)
		}
	}
	if _, err := kubeBuildModule(DefaultVersions(), []byte("module x\n")); err == nil {
		t.Error("want an error for a go.mod without staging replacements")
	}
}

func TestKubeLdflags(t *testing.T) {
	f := kubeLdflags(DefaultVersions())
	for _, w := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.34.4",
		"-X k8s.io/component-base/version.gitMinor=34",
		"-X k8s.io/client-go/pkg/version.gitVersion=v1.34.4",
		"-X k8s.io/client-go/pkg/version.gitMajor=1",
	} {
		if !strings.Contains(f, w) {
			t.Errorf("ldflags lack %q: %s", w, f)
		}
	}
}

func TestKeys(t *testing.T) {
	b1, err := New(WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := b1.keys()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := b1.keys()
	if again != k1 {
		t.Fatal("keys are not stable")
	}
	v := DefaultVersions()
	v.Kubernetes = "v1.34.5"
	b2, _ := New(WithVersions(v), WithCacheDir(t.TempDir()))
	k2, _ := b2.keys()
	if k2.kube == k1.kube || k2.node == k1.node {
		t.Error("kubernetes version change must change the kube and node keys")
	}
	if k2.rootfs != k1.rootfs || k2.etcd != k1.etcd || k2.coredns != k1.coredns {
		t.Error("kubernetes version change must not change unrelated keys")
	}
	v = DefaultVersions()
	v.Debian = "trixie"
	b3, _ := New(WithVersions(v), WithCacheDir(t.TempDir()))
	k3, _ := b3.keys()
	if k3.rootfs == k1.rootfs || k3.images == k1.images || k3.node == k1.node {
		t.Error("debian suite change must change rootfs, images and node keys")
	}
	name, _ := b1.ImageName()
	if !strings.HasPrefix(name, ImageRepository+":v1.34.4-") || len(name) != len(ImageRepository)+len(":v1.34.4-")+12 {
		t.Errorf("ImageName = %s", name)
	}
	if hashParts("ab", "c") == hashParts("a", "bc") {
		t.Error("hashParts must separate parts")
	}
}

func TestNewRejectsBadVersions(t *testing.T) {
	v := DefaultVersions()
	v.Kubernetes = "latest"
	if _, err := New(WithVersions(v)); err == nil {
		t.Fatal("want an error")
	}
}

func TestFilterTar(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, data)
	}
	add(&tar.Header{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./usr/sbin/iptables", Typeflag: tar.TypeReg, Mode: 0o755}, "ipt")
	add(&tar.Header{Name: "./usr/bin/containerd", Typeflag: tar.TypeReg, Mode: 0o755}, "big")
	add(&tar.Header{Name: "./usr/bin/containerd-stress", Typeflag: tar.TypeReg, Mode: 0o755}, "keep: exact names only")
	add(&tar.Header{Name: "./usr/lib/cni/bridge", Typeflag: tar.TypeReg, Mode: 0o755}, "cni")
	add(&tar.Header{Name: "./usr/lib/cni", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./usr/bin/ctr-link", Typeflag: tar.TypeLink, Linkname: "./usr/bin/containerd"}, "")
	tw.Close()

	var out bytes.Buffer
	if err := filterTar(&out, &in, kubeProxyExcludes); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := "./usr/,./usr/sbin/iptables,./usr/bin/containerd-stress"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("kept %s, want %s", got, want)
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	b, err := New(WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	args := b.mmdebstrapArgs("/out/root.tar", "/mod/kind files", "/tmp/assets")
	joined := strings.Join(args, "\n")
	for _, w := range []string{
		"--variant=minbase", "--format=tar",
		"--customize-hook=sh '/tmp/assets/customize-rootfs.sh' \"$1\" '/mod/kind files' '/tmp/assets'",
		"bookworm\n/out/root.tar\ndeb http://deb.debian.org/debian bookworm main",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("args lack %q:\n%s", w, joined)
		}
	}
	var include []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--include="); ok {
			include = strings.Split(v, ",")
		}
	}
	for _, p := range []string{"containerd", "runc", "iptables", "systemd", "containernetworking-plugins", "jq"} {
		if !slices.Contains(include, p) {
			t.Errorf("package %s not included: %v", p, include)
		}
	}
}

func TestAssetsPresent(t *testing.T) {
	for _, p := range []string{
		"assets/customize-rootfs.sh", "assets/idharness-podnet.sh", "assets/idharness-podnet.service",
		"assets/idharness-containerd-caps.sh", "assets/containerd-caps.conf", "assets/kube-proxy-wrapper.sh",
		"assets/default-cni.yaml", "assets/default-storage.yaml", "assets/etcd-main.go.txt", "assets/pause/main.go",
	} {
		if _, err := assets.ReadFile(p); err != nil {
			t.Errorf("asset %s: %v", p, err)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	mounts := `proc /proc proc rw 0 0
proc /var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/proc proc ro 0 0
none /var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/dev/pts devpts rw 0 0
tmpfs /var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/dev/shm tmpfs rw 0 0
tmpfs /var/cache/idh/work/mmdebstrap-tmp-other tmpfs rw 0 0
tmpfs /var/cache/idh/work/mmdebstrap-tmp/with\040space tmpfs rw 0 0
`
	got := mountsUnder(mounts, "/var/cache/idh/work/mmdebstrap-tmp")
	want := []string{
		"/var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/dev/pts",
		"/var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/dev/shm",
		"/var/cache/idh/work/mmdebstrap-tmp/mmdebstrap.x/proc",
		"/var/cache/idh/work/mmdebstrap-tmp/with space",
	}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	// Deepest first; same depth in any order.
	for i := 1; i < len(got); i++ {
		if len(got[i]) > len(got[i-1]) {
			t.Fatalf("not deepest first: %q", got)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %s in %q", w, got)
		}
	}
	if err := cleanScratch(filepath.Join(t.TempDir(), "absent")); err != nil {
		t.Errorf("absent dir: %v", err)
	}
	d := filepath.Join(t.TempDir(), "scratch")
	os.MkdirAll(filepath.Join(d, "a", "b"), 0o755)
	if err := cleanScratch(d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Error("scratch dir not removed")
	}
}

func TestBuildLock(t *testing.T) {
	b, err := New(WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := b.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A second holder waits; with a short context it gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := b.lock(ctx); err == nil {
		t.Fatal("second lock taken while the first is held")
	}
	unlock()
	unlock2, err := b.lock(context.Background())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
