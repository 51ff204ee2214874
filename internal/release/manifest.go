// Package release is idharness's release: the binaries and every image a
// run deploys, per platform, with checksums and a versioned manifest
// (release.json), so that `idharness run` works from a directory holding
// only a release, without the source tree its images are otherwise
// built from.
//
// Build writes one (make release, `idharness release`); Open and
// Platform.LoadImage read one back for a run. The layout is:
//
//	release.json            every platform (Manifest)
//	SHA256SUMS              sha256sum -c format, every file below
//	linux-amd64/
//	  idharness, fakeimds   the binaries
//	  release.json          this platform only, so the directory stands alone
//	  images/<name>.tar     one Docker image archive per image
//	linux-arm64/ ...
//
// docs/release.md is the user's description.
package release

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestFile is the manifest's name, in a release's root and in each
// platform's directory.
const ManifestFile = "release.json"

// SumsFile lists every file's SHA-256, as sha256sum writes them.
const SumsFile = "SHA256SUMS"

// SchemaVersion is the manifest format's version: raised when a field
// changes meaning or goes away, so that an older idharness refuses a
// release it would misread instead of guessing.
const SchemaVersion = 1

// The kinds of image a release holds.
const (
	// KindProgram is an image of one of idharness's Go programs.
	KindProgram = "program"
	// KindClient is a language client program's image (clients/).
	KindClient = "client"
)

// Manifest describes a release.
type Manifest struct {
	// SchemaVersion is the format's (the SchemaVersion constant).
	SchemaVersion int `json:"schemaVersion"`
	// Version is `git describe --tags --always --dirty` of the tree it
	// was built from, as `idharness version` prints it.
	Version string `json:"version"`
	// Commit is the full commit hash.
	Commit string `json:"commit"`
	// Platforms are the platforms built, each in a directory of its own.
	Platforms []Platform `json:"platforms"`
}

// Platform is one platform's part of a release.
type Platform struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// Dir is the platform's directory, relative to the manifest's.
	Dir string `json:"dir"`
	// Files are every file of the platform, paths relative to Dir.
	Files []File `json:"files"`
	// Images are the images, each in an archive of its own.
	Images []Image `json:"images"`
	// Missing are images a run may ask for that this platform lacks,
	// with the reason (client images for another architecture than the
	// building machine's).
	Missing []Missing `json:"missingImages,omitempty"`
}

// File is one file of a release.
type File struct {
	// Path is relative to the platform's directory.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Image is one image of a release.
type Image struct {
	// Name is the program's name: fakeimds, probe, nodeagent… for Go
	// programs, the client program's (python-azure-identity) for clients.
	Name string `json:"name"`
	// Kind is KindProgram or KindClient.
	Kind string `json:"kind"`
	// Source is what it was built from: the Go main package, or the
	// client program's folder.
	Source string `json:"source"`
	// Ref is the image's name and tag in the archive and in the nodes.
	Ref string `json:"ref"`
	// Archive is the Docker image archive's path, relative to the
	// platform's directory.
	Archive string `json:"archive"`
	// ConfigDigest is the image ID (its config's digest), as containerd
	// and the report show it.
	ConfigDigest string `json:"configDigest"`
	// Digest is the image manifest's digest.
	Digest string `json:"digest"`
}

// Missing is an image a platform lacks, and why.
type Missing struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Why  string `json:"why"`
}

// Name is a platform's name, such as linux/amd64.
func (p Platform) Name() string { return p.OS + "/" + p.Arch }

// DirName is the directory a platform is written to, such as linux-amd64.
func DirName(goos, goarch string) string { return goos + "-" + goarch }

// Validate reports a manifest this idharness cannot use.
func (m *Manifest) Validate() error {
	switch {
	case m.SchemaVersion == 0:
		return errors.New("no schemaVersion: not an idharness release manifest")
	case m.SchemaVersion > SchemaVersion:
		return fmt.Errorf("schemaVersion %d is newer than this idharness reads (%d): use the idharness binary of the same release", m.SchemaVersion, SchemaVersion)
	case m.Version == "":
		return errors.New("no version")
	case len(m.Platforms) == 0:
		return errors.New("no platforms")
	}
	for _, p := range m.Platforms {
		if p.OS == "" || p.Arch == "" {
			return fmt.Errorf("a platform without os or arch (dir %q)", p.Dir)
		}
		for _, img := range p.Images {
			if img.Ref == "" || img.Archive == "" || img.ConfigDigest == "" {
				return fmt.Errorf("%s: image %s lacks its ref, archive or config digest", p.Name(), img.Name)
			}
			if !slices.ContainsFunc(p.Files, func(f File) bool { return f.Path == img.Archive }) {
				return fmt.Errorf("%s: image %s's archive %s is not among the platform's files, so its checksum is unknown", p.Name(), img.Name, img.Archive)
			}
		}
	}
	return nil
}

// Platform returns m's part for goos/goarch.
func (m *Manifest) Platform(goos, goarch string) (*Platform, error) {
	var have []string
	for i := range m.Platforms {
		p := &m.Platforms[i]
		if p.OS == goos && p.Arch == goarch {
			return p, nil
		}
		have = append(have, p.Name())
	}
	return nil, fmt.Errorf("release %s has no %s/%s platform (it has %s)", m.Version, goos, goarch, strings.Join(have, ", "))
}

// Image returns the platform's image of kind and name.
func (p *Platform) Image(kind, name string) (Image, bool) {
	for _, img := range p.Images {
		if img.Kind == kind && img.Name == name {
			return img, true
		}
	}
	return Image{}, false
}

// File returns the platform's file at path.
func (p *Platform) File(path string) (File, bool) {
	for _, f := range p.Files {
		if f.Path == path {
			return f, true
		}
	}
	return File{}, false
}

// Open reads and validates the manifest in dir.
func Open(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("release manifest %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("release manifest %s: %w", path, err)
	}
	return &m, nil
}

// write writes m as dir/release.json.
func (m *Manifest) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644)
}

// hashFile returns the File record of path, named rel.
func hashFile(path, rel string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("checksum %s: %w", path, err)
	}
	return File{Path: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Verify checks that the file f of the platform directory dir has the
// size and checksum the manifest records.
func Verify(dir string, f File) error {
	got, err := hashFile(filepath.Join(dir, filepath.FromSlash(f.Path)), f.Path)
	if err != nil {
		return err
	}
	if got.Size != f.Size || got.SHA256 != f.SHA256 {
		return fmt.Errorf("%s: checksum mismatch: want sha256 %s (%d bytes), got %s (%d bytes); the release is damaged or was changed: download it again, or build it again with make release",
			filepath.Join(dir, f.Path), f.SHA256, f.Size, got.SHA256, got.Size)
	}
	return nil
}

// WriteSums writes files (paths relative to dir) to dir/SHA256SUMS in
// sha256sum's format, sorted by path, so `sha256sum -c SHA256SUMS` in
// dir checks them.
func WriteSums(dir string, files []File) error {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Path)
	}
	return os.WriteFile(filepath.Join(dir, SumsFile), []byte(b.String()), 0o644)
}

// VerifySums checks every file dir/SHA256SUMS lists, as `sha256sum -c`
// does, and returns every mismatch, missing file or malformed line.
func VerifySums(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return err
	}
	var errs []error
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		sum, path, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != sha256.Size*2 || path == "" {
			errs = append(errs, fmt.Errorf("%s:%d: want \"<sha256>  <path>\", got %q", SumsFile, i+1, line))
			continue
		}
		got, err := hashFile(filepath.Join(dir, filepath.FromSlash(path)), path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got.SHA256 != sum {
			errs = append(errs, fmt.Errorf("%s: sha256 %s, want %s (%s line %d)", path, got.SHA256, sum, SumsFile, i+1))
		}
	}
	return errors.Join(errs...)
}
