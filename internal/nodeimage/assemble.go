package nodeimage

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/idharness/idharness/internal/dockerenv"
)

// buildContainerPrefix names the containers the node assembly runs; a stale
// one (from an interrupted build) is removed before the next build.
const buildContainerPrefix = "idharness-nodebuild-"

// assemble turns the base image into the node image: Kubernetes programs,
// version file, sandbox image pin, and the control-plane images imported
// (pinned) into the node's containerd store; then commits the container.
func (b *Builder) assemble(ctx context.Context, k keys, base string, bins binaries, archive, image string) error {
	v := b.versions
	ctr := buildContainerPrefix + k.node[:12]
	return b.phase("assemble node image", func(*status) error {
		// Leftovers of an interrupted build are ours to remove.
		dockerenv.Run(ctx, nil, "rm", "-f", ctr)
		if _, err := dockerenv.Run(ctx, nil, "run", "-d", "--name", ctr,
			"--label", LabelManaged+"=true", "--label", "io.idharness.role=nodebuild",
			"--entrypoint", "sleep", base, "infinity"); err != nil {
			return err
		}
		defer func() {
			// Runs on cancellation too: a fresh context so the container goes.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			dockerenv.Run(cctx, nil, "rm", "-f", ctr)
		}()
		exec := func(args ...string) (string, error) {
			return dockerenv.Run(ctx, nil, append([]string{"exec", ctr}, args...)...)
		}
		for _, p := range []string{"kubeadm", "kubelet", "kubectl"} {
			if _, err := dockerenv.Run(ctx, nil, "cp", bins[p], ctr+":/usr/bin/"+p); err != nil {
				return err
			}
		}
		if _, err := dockerenv.Run(ctx, nil, "cp", bins["crictl"], ctr+":/usr/local/bin/crictl"); err != nil {
			return err
		}
		pause := v.ControlPlaneImages()["pause"]
		script := fmt.Sprintf(`set -e
printf '%%s' %s > /kind/version
sed -i 's#^\( *sandbox_image = \).*#\1"%s"#' /etc/containerd/config.toml
grep -q 'sandbox_image = "%s"' /etc/containerd/config.toml
`, shellQuote(v.Kubernetes), pause, pause)
		if _, err := exec("sh", "-c", script); err != nil {
			return fmt.Errorf("configure node: %w", err)
		}
		if _, err := dockerenv.Run(ctx, nil, "exec", "-d", ctr, "sh", "-c", "containerd >/tmp/containerd.log 2>&1"); err != nil {
			return err
		}
		if err := waitFor(ctx, 60*time.Second, func() error { _, err := exec("ctr", "version"); return err }); err != nil {
			log, _ := exec("cat", "/tmp/containerd.log")
			return fmt.Errorf("containerd did not start in the build container: %w\n%s", err, tail(log, 20))
		}
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		_, err = dockerenv.Run(ctx, f, "exec", "-i", ctr, "ctr", "-n", "k8s.io", "images", "import",
			"--all-platforms", "--no-unpack", "--digests", "-")
		f.Close()
		if err != nil {
			return fmt.Errorf("import control-plane images: %w", err)
		}
		// --digests also leaves import-<date>@sha256 references; drop them.
		if _, err := exec("sh", "-c", `ctr -n k8s.io images ls -q | grep '^import-' | xargs -r ctr -n k8s.io images rm >/dev/null`); err != nil {
			return err
		}
		// Pin them, so the kubelet's image garbage collection never removes
		// images that cannot be pulled again.
		for _, img := range sortedKeys(invert(v.ControlPlaneImages())) {
			if _, err := exec("ctr", "-n", "k8s.io", "images", "label", img, "io.cri-containerd.pinned=pinned"); err != nil {
				return fmt.Errorf("pin %s: %w", img, err)
			}
		}
		if err := b.verifyNode(ctx, exec); err != nil {
			return err
		}
		if _, err := exec("sh", "-c", `kill $(pidof containerd); for i in $(seq 1 50); do pidof containerd >/dev/null || break; sleep 0.2; done; rm -rf /tmp/* /run/containerd`); err != nil {
			return fmt.Errorf("stop containerd in the build container: %w", err)
		}
		if _, err := dockerenv.Run(ctx, nil, "commit",
			"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
			"--change", `CMD []`,
			"--change", "ENV container=docker",
			"--change", "LABEL "+LabelManaged+"=true",
			"--change", "LABEL "+LabelKey+"="+k.node,
			"--change", "LABEL io.idharness.kubernetes-version="+v.Kubernetes,
			"--change", "LABEL io.idharness.role=node",
			ctr, image); err != nil {
			return err
		}
		_, err = dockerenv.Run(ctx, nil, "tag", image, ImageRepository+":"+v.Kubernetes)
		return err
	})
}

// verifyNode checks, inside the build container, that kubeadm reports the
// wanted version and that every image it will ask for is in containerd.
func (b *Builder) verifyNode(ctx context.Context, exec func(args ...string) (string, error)) error {
	v := b.versions
	got, err := exec("kubeadm", "version", "-o", "short")
	if err != nil {
		return err
	}
	if got != v.Kubernetes {
		return fmt.Errorf("kubeadm reports %s, want %s (version ldflags not applied)", got, v.Kubernetes)
	}
	want, err := exec("kubeadm", "config", "images", "list", "--kubernetes-version", v.Kubernetes)
	if err != nil {
		return err
	}
	have, err := exec("ctr", "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return err
	}
	haveSet := map[string]bool{}
	for _, l := range strings.Fields(have) {
		haveSet[l] = true
	}
	var missing []string
	for _, img := range strings.Fields(want) {
		if !haveSet[img] {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubeadm %s wants images the node lacks: %s (adjust the etcd, CoreDNS or pause versions to what `kubeadm config images list` prints)", v.Kubernetes, strings.Join(missing, ", "))
	}
	b.log.Info("node verified", "kubeadm", got, "images", len(strings.Fields(want)))
	return nil
}

// waitFor retries fn every 200ms until it succeeds or the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// invert returns m with keys and values swapped.
func invert(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}
