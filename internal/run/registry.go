package run

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/registry"
)

// pushImages is the images phase's end with --image-registry: instead of
// loading the images into the nodes, it pushes every image the run uses
// (idharness's programs, the client images, the implementation's images)
// to o.ImageRegistry and points the manifests at them by digest, so that
// the nodes pull exactly what was built, on a kind cluster (through a
// registry mirror) as on any cluster behind --kubeconfig. Nothing is
// loaded: a pod that runs proves its image was pulled.
func pushImages(ctx context.Context, o Options, cl *cluster.Cluster, res *Result, built []images.Built, imgs *fixtures.Images, imageIDs map[string]string) error {
	repo, err := registry.ParseRepository(o.ImageRegistry, o.ImageRegistryInsecure)
	if err != nil {
		return err
	}
	var node kindexec.Cmder
	if !cl.Existing() {
		if err := checkNodesReach(cl, res.Cluster, repo); err != nil {
			return err
		}
		if nodes, err := cl.Nodes(); err == nil && len(nodes) > 0 {
			node = nodes[0] // an implementation's build copies node tools from it
		}
	}
	srcs := make([]registry.Source, 0, len(built))
	for _, b := range built {
		srcs = append(srcs, registry.Source{Local: b.Name, Image: b.Image})
	}
	dir, err := os.MkdirTemp("", "idharness-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if len(o.SUTs) > 0 {
		if res.SUTImages, err = prepareSUTImages(ctx, o, dir, node); err != nil {
			return err
		}
		for i, ls := range res.SUTImages {
			for j, l := range ls {
				img, err := registry.ArchiveImage(l.Archive, filepath.Join(dir, fmt.Sprintf("layout-%d-%d", i, j)))
				if err != nil {
					return fmt.Errorf("implementation %s, image %s: %w", o.SUTs[i].Name, l.Name, err)
				}
				srcs = append(srcs, registry.Source{Local: l.Ref, Image: img})
			}
		}
	}
	start := time.Now()
	pushed, err := registry.Push(ctx, o.ImageRegistry, srcs, registry.Options{Insecure: o.ImageRegistryInsecure})
	if err != nil {
		return err
	}
	o.Log.Info("images pushed", "registry", repo.String(), "images", len(pushed), "elapsed", time.Since(start).Round(time.Millisecond))
	byLocal := make(map[string]registry.Pushed, len(pushed))
	for _, p := range pushed {
		byLocal[p.Local] = p
		imageIDs[p.Ref] = p.ID
		o.Log.Info("image pushed", "image", p.Local, "ref", p.Ref, "id", p.ID)
	}
	retarget(imgs, byLocal)
	for _, ls := range res.SUTImages {
		for i := range ls {
			l := &ls[i]
			p := byLocal[l.Ref]
			l.Ref, l.ID = p.Ref, p.ID
		}
	}
	// Push returns the images in the order given: the implementation's
	// come last and are recorded in res.SUTImages.
	res.Pushed = pushed[:len(built)]
	return nil
}

// retarget replaces every image reference of imgs that was pushed with
// its digest reference.
func retarget(imgs *fixtures.Images, pushed map[string]registry.Pushed) {
	swap := func(s *string) {
		if p, ok := pushed[*s]; ok {
			*s = p.Ref
		}
	}
	swap(&imgs.FakeIMDS)
	swap(&imgs.Probe)
	swap(&imgs.Vault)
	for _, m := range []map[string]string{imgs.Extra, imgs.Clients} {
		for k, v := range m {
			swap(&v)
			m[k] = v
		}
	}
}

// checkNodesReach refuses a push whose images the kind cluster's nodes
// could not pull: on a node, localhost is the node itself, so a registry
// on this machine's loopback is reachable only through a mirror
// (cluster.WithRegistryMirror).
func checkNodesReach(cl *cluster.Cluster, name string, repo registry.Repository) error {
	host := repo.Registry.RegistryStr()
	h := repo.Registry.Name()
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil
	}
	ok, err := cl.HasMirror(host)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("kind cluster %s cannot pull from %s: on its nodes %s is the node itself, and no registry mirror maps it; recreate the cluster with one: idharness run --registry-mirror %s=http://%s:%d (or idharness cluster create --name %s --registry-mirror …), with the registry of `idharness registry start`", name, host, h, host, registry.DefaultContainer, registry.ContainerPort, name)
	}
	return nil
}
