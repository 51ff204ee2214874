package registry

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ArchiveImage opens the first image of an image archive, as an
// implementation's images arrive (sut.Loaded.Archive): a Docker archive
// (manifest.json, `docker save`) is read in place; an OCI image layout
// archive (index.json) is unpacked into dir first, which must outlive
// the image's use.
func ArchiveImage(path, dir string) (v1.Image, error) {
	kind, err := archiveKind(path)
	if err != nil {
		return nil, err
	}
	if kind == "docker" {
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return nil, fmt.Errorf("image archive %s: %w", path, err)
		}
		return img, nil
	}
	if err := untar(path, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("image archive %s (OCI layout): %w", path, err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		return nil, fmt.Errorf("image archive %s: index.json names no image (%v)", path, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("image archive %s: %w (an index of several platforms is not supported: save one platform)", path, err)
	}
	return img, nil
}

// archiveKind tells a Docker archive ("docker") from an OCI layout ("oci").
func archiveKind(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("image archive %s: neither manifest.json (docker save) nor index.json (OCI image layout)", path)
		}
		if err != nil {
			return "", fmt.Errorf("image archive %s: %w", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			return "docker", nil
		case "index.json":
			return "oci", nil
		}
	}
}

// untar unpacks the regular files and directories of the tar at path into dir.
func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", path, err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpack %s: %w", path, err)
			}
		}
	}
}
