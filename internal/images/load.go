package images

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/kind/pkg/cluster"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// Built is an image assembled in memory.
type Built struct {
	// Name is the image name with tag.
	Name string
	// Image is the assembled image.
	Image v1.Image
	// Binary is the program the image was built from, when there is one.
	Binary string
}

func tagOf(s string) (name.Tag, error) {
	t, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: %w (use a form like idharness.local/app:dev)", s, err)
	}
	return t, nil
}

// WriteBuiltArchive writes the images in one Docker image archive at path.
func WriteBuiltArchive(path string, built ...Built) error {
	m := make(map[string]v1.Image, len(built))
	for _, b := range built {
		m[b.Name] = b.Image
	}
	return WriteArchive(path, m)
}

// loadConcurrency is how many nodes LoadArchive loads at once. A node's
// import is bound by the disk (containerd writes the content, then the
// unpacked snapshot): several at once gained 15-30 % over one after
// another on 2 cores, and three keep that without five imports' writes
// competing (docs/performance.md#loading-images).
const loadConcurrency = 3

// LoadArchive loads the Docker image archive at path into the containerd
// store of every node of the kind cluster clusterName, as `kind load
// image-archive` does, several nodes at once.
func LoadArchive(provider *cluster.Provider, clusterName, path string) error {
	nodes, err := provider.ListInternalNodes(clusterName)
	if err != nil {
		return fmt.Errorf("list nodes of cluster %q: %w", clusterName, err)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("cluster %q has no nodes; create it first (idharness cluster create --name %s)", clusterName, clusterName)
	}
	return loadNodes(nodes, path, nodeutils.LoadImageArchive)
}

// LoadArchiveInto loads the archive at path into the named nodes of the
// cluster, unpacked as LoadArchive does, several at once: a run unpacks
// big images (the client programs', 18 CPU-s a node) only on the nodes
// that will run them.
func LoadArchiveInto(provider *cluster.Provider, clusterName, path string, names []string) error {
	all, err := provider.ListInternalNodes(clusterName)
	if err != nil {
		return fmt.Errorf("list nodes of cluster %q: %w", clusterName, err)
	}
	var nodes []kindnodes.Node
	for _, name := range names {
		i := slices.IndexFunc(all, func(n kindnodes.Node) bool { return n.String() == name })
		if i < 0 {
			return fmt.Errorf("cluster %q has no node %s to load %s into", clusterName, name, path)
		}
		nodes = append(nodes, all[i])
	}
	return loadNodes(nodes, path, nodeutils.LoadImageArchive)
}

// loadNodes loads the archive at path into nodes with load, several at
// once.
func loadNodes(nodes []kindnodes.Node, path string, load func(kindnodes.Node, io.Reader) error) error {
	return loadEach(nodes, loadConcurrency, func(n kindnodes.Node) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("load images: %w", err)
		}
		defer f.Close()
		if err := load(n, f); err != nil {
			return fmt.Errorf("load %s into node %s: %w", path, n.String(), err)
		}
		return nil
	})
}

// loadEach calls load for every node, at most limit at once, and returns
// every error, in node order.
func loadEach[N any](nodes []N, limit int, load func(N) error) error {
	errs := make([]error, len(nodes))
	var g errgroup.Group
	g.SetLimit(limit)
	for i, n := range nodes {
		g.Go(func() error {
			errs[i] = load(n)
			return nil
		})
	}
	g.Wait()
	return errors.Join(errs...)
}

// CheckStatic refuses a program an image built here (no C library)
// could not run, what naming the image in errors: not a
// Linux ELF of this machine's architecture, or dynamically linked.
func CheckStatic(path, what string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %s is not a Linux program (%v): run a Linux build of idharness", what, path, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("%s: %s is built for %s, Docker here runs %s", what, path, f.Machine, runtime.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %s is dynamically linked and the image has no C library: build idharness with CGO_ENABLED=0 (CGO_ENABLED=0 go build -o bin/idharness ./cmd/idharness)", what, path)
		}
	}
	return nil
}
