package nodeimage

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/idharness/idharness/internal/images"
)

// kubeProxyExcludes are root file system paths left out of the kube-proxy
// image: the node's container runtime, CNI plugins and kind's files.
var kubeProxyExcludes = []string{
	"usr/bin/containerd", "usr/bin/containerd-shim", "usr/bin/containerd-shim-runc-v1",
	"usr/bin/containerd-shim-runc-v2", "usr/bin/ctr", "usr/sbin/runc",
	"usr/lib/cni/", "opt/cni/", "kind/", "usr/local/bin/", "etc/containerd/",
	"usr/share/doc/", "usr/share/man/", "var/lib/containerd/",
}

// excluded tells whether a tar entry name falls under one of the prefixes.
func excluded(name string, prefixes []string) bool {
	n := strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")
	for _, p := range prefixes {
		if strings.HasSuffix(p, "/") {
			if n == strings.TrimSuffix(p, "/") || strings.HasPrefix(n, p) {
				return true
			}
		} else if n == p {
			return true
		}
	}
	return false
}

// filterTar copies the tar stream r to w without the excluded entries (and
// without hard links to them).
func filterTar(w io.Writer, r io.Reader, prefixes []string) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read root file system: %w", err)
		}
		if excluded(hdr.Name, prefixes) || (hdr.Typeflag == tar.TypeLink && excluded(hdr.Linkname, prefixes)) {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// rootfsLayer returns a layer holding the root file system archive at path,
// filtered by prefixes.
func rootfsLayer(path string, prefixes []string) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			err := filterTar(pw, f, prefixes)
			f.Close()
			pw.CloseWithError(err)
		}()
		return pr, nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
}

// controlPlaneImages assembles the images kubeadm runs, by image name.
func (b *Builder) controlPlaneImages(bins binaries, rootfs string) (map[string]v1.Image, error) {
	names := b.versions.ControlPlaneImages()
	minimal, err := images.Layer(images.MinimalRoot())
	if err != nil {
		return nil, err
	}
	out := map[string]v1.Image{}
	add := func(component string, layers []v1.Layer, entrypoint []string) error {
		img, err := images.Assemble(images.Spec{
			Layers:     layers,
			Entrypoint: entrypoint,
			Labels:     map[string]string{LabelManaged: "true"},
		})
		if err != nil {
			return fmt.Errorf("image %s: %w", names[component], err)
		}
		out[names[component]] = img
		return nil
	}
	bin := func(p, src string) (v1.Layer, error) {
		return images.Layer([]images.File{{Path: p, Source: src, Mode: 0o755}})
	}
	// kubeadm's static pod manifests run these by name through PATH.
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		l, err := bin("/usr/local/bin/"+c, bins[c])
		if err != nil {
			return nil, err
		}
		if err := add(c, []v1.Layer{minimal, l}, nil); err != nil {
			return nil, err
		}
	}
	etcd, err := images.Layer([]images.File{
		{Path: "/usr/local/bin/etcd", Source: bins["etcd"], Mode: 0o755},
		{Path: "/var/lib/etcd", Dir: true, Mode: 0o700},
	})
	if err != nil {
		return nil, err
	}
	if err := add("etcd", []v1.Layer{minimal, etcd}, nil); err != nil {
		return nil, err
	}
	// CoreDNS's deployment passes only arguments.
	coredns, err := bin("/coredns", bins["coredns"])
	if err != nil {
		return nil, err
	}
	if err := add("coredns", []v1.Layer{minimal, coredns}, []string{"/coredns"}); err != nil {
		return nil, err
	}
	pause, err := bin("/pause", bins["pause"])
	if err != nil {
		return nil, err
	}
	if err := add("pause", []v1.Layer{pause}, []string{"/pause"}); err != nil {
		return nil, err
	}
	// kube-proxy programs iptables: it runs on the Debian root file system
	// (iptables, conntrack) behind a wrapper that picks the node's backend.
	base, err := rootfsLayer(rootfs, kubeProxyExcludes)
	if err != nil {
		return nil, err
	}
	wrapper, err := assets.ReadFile("assets/kube-proxy-wrapper.sh")
	if err != nil {
		return nil, err
	}
	proxy, err := images.Layer([]images.File{
		{Path: "/usr/local/bin/kube-proxy.real", Source: bins["kube-proxy"], Mode: 0o755},
		{Path: "/usr/local/bin/kube-proxy", Data: wrapper, Mode: 0o755},
	})
	if err != nil {
		return nil, err
	}
	if err := add("kube-proxy", []v1.Layer{base, proxy}, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// controlPlaneArchive writes (or reuses) the Docker image archive of the
// control-plane images and returns its path.
func (b *Builder) controlPlaneArchive(ctx context.Context, k keys, bins binaries) (string, error) {
	path := filepath.Join(b.cacheDir, "images", "control-plane-"+b.versions.Kubernetes+"-"+k.images[:12]+".tar")
	rootfs := filepath.Join(b.cacheDir, "rootfs", b.versions.Debian+"-"+k.rootfs[:12]+".tar")
	err := b.phase("control-plane images", func(*status) error {
		hit, err := cached(path, func(tmp string) error {
			imgs, err := b.controlPlaneImages(bins, rootfs)
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := images.WriteArchive(tmp, imgs); err != nil {
				return err
			}
			// WriteArchive wrote tmp+".tmp" and renamed it to tmp.
			return nil
		})
		if hit {
			b.log.Info("cached", "archive", path)
		}
		return err
	})
	return path, err
}
