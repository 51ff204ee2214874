package images

import (
	"debug/elf"
	"fmt"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/kind/pkg/cluster"
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

// LoadArchive loads the Docker image archive at path into the containerd
// store of every node of the kind cluster clusterName, as `kind load
// image-archive` does.
func LoadArchive(provider *cluster.Provider, clusterName, path string) error {
	nodes, err := provider.ListInternalNodes(clusterName)
	if err != nil {
		return fmt.Errorf("list nodes of cluster %q: %w", clusterName, err)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("cluster %q has no nodes; create it first (idharness cluster create --name %s)", clusterName, clusterName)
	}
	for _, n := range nodes {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("load images: %w", err)
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("load %s into node %s: %w", path, n.String(), err)
		}
	}
	return nil
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
