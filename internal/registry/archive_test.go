package registry

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/idharness/idharness/internal/images"
)

// An implementation's image arrives as a docker save archive or an OCI
// layout archive; both open as the same image, and anything else fails
// saying what an archive must hold.
func TestArchiveImage(t *testing.T) {
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dir := t.TempDir()

	dockerTar := filepath.Join(dir, "docker.tar")
	if err := images.WriteArchive(dockerTar, map[string]v1.Image{"example.com/agent:v1": img}); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(dir, "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	tarDir(t, lay, ociTar)
	emptyTar := filepath.Join(dir, "empty.tar")
	tarDir(t, t.TempDir(), emptyTar)

	for _, tc := range []struct{ path, err string }{
		{path: dockerTar},
		{path: ociTar},
		{path: emptyTar, err: "neither manifest.json (docker save) nor index.json"},
		{path: filepath.Join(dir, "missing.tar"), err: "no such file"},
	} {
		got, err := ArchiveImage(tc.path, t.TempDir())
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ArchiveImage(%s) = %v; want error %q", filepath.Base(tc.path), err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ArchiveImage(%s): %v", filepath.Base(tc.path), err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("ArchiveImage(%s): digest %s, want %s", filepath.Base(tc.path), d, want)
		}
	}
}

// tarDir writes the files under dir as a tar at out.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	defer tw.Close()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
