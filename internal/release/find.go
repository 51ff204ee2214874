package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/idharness/idharness/internal/images"
)

// Opened is one platform of a release on disk.
type Opened struct {
	// Root is the directory of the manifest that was read.
	Root     string
	Manifest *Manifest
	Platform *Platform
}

// Dir is the platform's directory.
func (r *Opened) Dir() string { return filepath.Join(r.Root, r.Platform.Dir) }

// BesideBinary returns the directories searched for a release when none
// is named: the running binary's own directory (a release's platform
// directory holds idharness beside release.json) and its parent (a
// binary installed in bin/ of a release).
func BesideBinary() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	d := filepath.Dir(exe)
	return []string{d, filepath.Dir(d)}
}

// Find opens the release for goos/goarch in the first of dirs that holds
// a manifest. It returns nil and no error when none does; a manifest
// that cannot be read, or lacks the platform, is an error.
func Find(dirs []string, goos, goarch string) (*Opened, error) {
	for _, d := range dirs {
		m, err := Open(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		p, err := m.Platform(goos, goarch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(d, ManifestFile), err)
		}
		return &Opened{Root: d, Manifest: m, Platform: p}, nil
	}
	return nil, nil
}

// LoadImage returns img from its archive, once the archive's checksum
// and the image's config digest match the manifest's.
func (r *Opened) LoadImage(img Image) (images.Built, error) {
	f, ok := r.Platform.File(img.Archive)
	if !ok {
		return images.Built{}, fmt.Errorf("release %s: image %s's archive %s is not among its files", r.Root, img.Name, img.Archive)
	}
	if err := Verify(r.Dir(), f); err != nil {
		return images.Built{}, err
	}
	tag, err := name.NewTag(img.Ref)
	if err != nil {
		return images.Built{}, fmt.Errorf("release %s: image %s: ref %q: %w", r.Root, img.Name, img.Ref, err)
	}
	path := filepath.Join(r.Dir(), filepath.FromSlash(img.Archive))
	i, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		return images.Built{}, fmt.Errorf("release image %s (%s): %w", img.Ref, path, err)
	}
	cfg, err := i.ConfigName()
	if err != nil {
		return images.Built{}, fmt.Errorf("release image %s (%s): %w", img.Ref, path, err)
	}
	if cfg.String() != img.ConfigDigest {
		return images.Built{}, fmt.Errorf("release image %s (%s): config digest %s, the manifest says %s; the release is damaged or was changed: download it again, or build it again with make release", img.Ref, path, cfg, img.ConfigDigest)
	}
	return images.Built{Name: img.Ref, Image: i}, nil
}
