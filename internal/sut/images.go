package sut

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/kind/pkg/exec"

	"github.com/idharness/idharness/internal/images"
)

// Loaded is one of the implementation's images as the run loads it.
type Loaded struct {
	// Name is the image's name in the file (.Images.NAME).
	Name string `json:"name"`
	// Ref is the image reference the manifests get and the nodes know.
	Ref string `json:"ref"`
	// ID is the digest of the image's configuration (its image ID), which
	// the report records and which changes whenever the image does.
	ID string `json:"id"`
	// Archive is the archive loaded into the nodes.
	Archive string `json:"-"`
}

// ImageOptions are what preparing the images takes from the run.
type ImageOptions struct {
	// Dir receives the archives of saved and built images.
	Dir string
	// CacheDir keeps built programs between runs.
	CacheDir string
	// Node is a node of the cluster, which builds copy their nodeTools
	// from; nil when the run has no kind node (--kubeconfig).
	Node exec.Cmder
	// Log receives a line per built program; nil is slog.Default().
	Log *slog.Logger
}

// PrepareImages returns the implementation's images as archives to load
// into the nodes, with their references and IDs: an archive as it is, a
// ref saved from the local Docker engine, a build built, each into o.Dir.
// Images of idharness's own programs (Image.Program) are not among them:
// the run builds, loads and records those with its own (ProgramImage).
func (s *SUT) PrepareImages(ctx context.Context, o ImageOptions) ([]Loaded, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	var out []Loaded
	for i, im := range s.Images {
		if im.Program != "" {
			continue
		}
		l := Loaded{Name: im.Name, Archive: s.Path(im.Archive)}
		switch {
		case im.Ref != "":
			l.Archive = filepath.Join(o.Dir, fmt.Sprintf("sut-image-%d.tar", i))
			cmd := osexec.CommandContext(ctx, "docker", "save", "-o", l.Archive, im.Ref)
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("image %s: docker save %s: %v: %s (is the image in the local Docker engine? docker images %s)", im.Name, im.Ref, err, strings.TrimSpace(string(b)), im.Ref)
			}
		case im.Build != nil:
			l.Archive = filepath.Join(o.Dir, fmt.Sprintf("sut-image-%d.tar", i))
			if err := s.build(ctx, im, l.Archive, o); err != nil {
				return nil, fmt.Errorf("image %s: %w", im.Name, err)
			}
		}
		ref, id, err := archiveImage(l.Archive)
		if err != nil {
			return nil, fmt.Errorf("image %s (%s): %w", im.Name, l.Archive, err)
		}
		if im.Ref != "" {
			ref = im.Ref
		}
		l.Ref, l.ID = ref, id
		out = append(out, l)
	}
	return out, nil
}

// BuildRef is the reference of a built image: idharness.local/IMPL-IMAGE:VERSION
// (a version's "+", as in +incompatible, is not allowed in a tag).
func (s *SUT) BuildRef(im Image) string {
	return "idharness.local/" + s.Name + "-" + im.Name + ":" + strings.ReplaceAll(im.Build.Version, "+", "-")
}

// build builds im's program (or finds it in the cache), adds the node
// tools copied from o.Node and writes the image archive.
func (s *SUT) build(ctx context.Context, im Image, archive string, o ImageOptions) error {
	b := im.Build
	if len(b.NodeTools) > 0 && o.Node == nil {
		return fmt.Errorf("nodeTools %s are copied from a node of a kind cluster, and this run has none (--kubeconfig): build the image yourself, make it pullable by the nodes and declare it by ref", strings.Join(b.NodeTools, ", "))
	}
	start := time.Now()
	bin, cached, err := images.BuildModule(ctx, b.program(o.CacheDir))
	if err != nil {
		return err
	}
	o.Log.Info("implementation program built", "image", im.Name, "module", b.Module+"@"+b.Version, "package", b.Package, "cached", cached, "elapsed", time.Since(start).Round(time.Millisecond))
	var tools []images.File
	if len(b.NodeTools) > 0 {
		if tools, err = images.NodeToolFiles(ctx, o.Node, b.NodeTools); err != nil {
			return err
		}
	}
	name := b.program("").BinaryName()
	root, err := images.Layer(append(images.MinimalRoot(), tools...))
	if err != nil {
		return err
	}
	app, err := images.Layer([]images.File{{Path: "/usr/local/bin/" + name, Source: bin, Mode: 0o755}})
	if err != nil {
		return err
	}
	img, err := images.Assemble(images.Spec{
		Layers:     []v1.Layer{root, app},
		Entrypoint: []string{"/usr/local/bin/" + name},
		Labels:     map[string]string{images.LabelManaged: "true", images.LabelSource: b.Module + "@" + b.Version + " " + b.Package},
	})
	if err != nil {
		return err
	}
	return images.WriteArchive(archive, map[string]v1.Image{s.BuildRef(im): img})
}

// archiveImage reads the first image of a Docker image archive
// (manifest.json, as docker save writes) or an OCI image layout archive
// (index.json): its reference and the digest of its configuration.
func archiveImage(path string) (ref, id string, err error) {
	files, err := readTar(path, func(name string) bool {
		return name == "manifest.json" || name == "index.json" || strings.HasPrefix(name, "blobs/")
	})
	if err != nil {
		return "", "", err
	}
	if m, ok := files["manifest.json"]; ok {
		var entries []struct {
			Config   string
			RepoTags []string
		}
		if err := json.Unmarshal(m, &entries); err != nil || len(entries) == 0 {
			return "", "", fmt.Errorf("manifest.json names no image (%v)", err)
		}
		e := entries[0]
		if len(e.RepoTags) == 0 {
			return "", "", errors.New("the image has no name: save it by name (docker save NAME:TAG)")
		}
		// The config is "<hex>.json" (docker save before 25),
		// "blobs/sha256/<hex>" (docker save 25+) or "sha256:<hex>"
		// (go-containerregistry).
		hex := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(e.Config), ".json"), "sha256:")
		return e.RepoTags[0], "sha256:" + hex, nil
	}
	idx, ok := files["index.json"]
	if !ok {
		return "", "", errors.New("neither manifest.json (docker save) nor index.json (OCI image layout) in the archive")
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(idx, &index); err != nil || len(index.Manifests) == 0 {
		return "", "", fmt.Errorf("index.json names no image (%v)", err)
	}
	d := index.Manifests[0]
	ref = d.Annotations["io.containerd.image.name"]
	if ref == "" {
		ref = d.Annotations["org.opencontainers.image.ref.name"]
	}
	if ref == "" || !strings.Contains(ref, ":") {
		return "", "", errors.New("the OCI index gives no full image name (annotation io.containerd.image.name): the nodes would not know what to call it")
	}
	blob := files["blobs/"+strings.Replace(d.Digest, ":", "/", 1)]
	var man struct{ Config struct{ Digest string } }
	if err := json.Unmarshal(blob, &man); err != nil || man.Config.Digest == "" {
		return "", "", fmt.Errorf("manifest %s: no config digest (%v); an index of indexes (several platforms) is not supported: save one platform", d.Digest, err)
	}
	return ref, man.Config.Digest, nil
}

// readTar returns the contents of the small files of the tar at path that
// want selects (blobs are read only when they are JSON-sized).
func readTar(path string, want func(string) bool) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not an image archive: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !want(name) || h.Size > 1<<20 {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
}
