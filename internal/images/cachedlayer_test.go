package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeTar writes a one-file tar holding body at path.
func writeTar(t *testing.T, path, body string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/hello", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A cached layer has the digests go-containerregistry gives the same tar
// (diff ID) and its own compressed file (digest); it is compressed once
// and taken from the cache after, again when the tar is newer or the
// record is bad; an image archive written with it reads back with the
// tar's bytes; a missing tar is an error naming it.
func TestCachedLayerFromFile(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root.tar")
	writeTar(t, root, strings.Repeat("a client root's file\n", 1000))
	want, err := tarball.LayerFromFile(root)
	if err != nil {
		t.Fatal(err)
	}
	wantDiff, _ := want.DiffID()

	check := func(step string) (v1.Layer, time.Time) {
		t.Helper()
		l, err := CachedLayerFromFile(root)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		gz, err := os.ReadFile(root + ".gz")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		d, _ := l.Digest()
		id, _ := l.DiffID()
		size, _ := l.Size()
		if id != wantDiff || d.String() != fmt.Sprintf("sha256:%x", sha256.Sum256(gz)) || size != int64(len(gz)) {
			t.Errorf("%s: digest %s, diff ID %s, size %d; want the gz file's sha256, %s, %d", step, d, id, size, wantDiff, len(gz))
		}
		st, _ := os.Stat(root + ".gz")
		return l, st.ModTime()
	}
	l, first := check("first call")
	time.Sleep(10 * time.Millisecond)
	if _, again := check("second call"); !again.Equal(first) {
		t.Errorf("second call compressed again (gz written at %v, then %v); want the cached file", first, again)
	}

	// A newer tar is compressed again, with its own digests.
	time.Sleep(10 * time.Millisecond)
	writeTar(t, root, strings.Repeat("another root\n", 500))
	want, _ = tarball.LayerFromFile(root)
	wantDiff, _ = want.DiffID()
	l, _ = check("newer tar")

	// A bad record is recomputed.
	os.WriteFile(root+".gz.json", []byte(`{"digest":"nope"}`), 0o644)
	l, _ = check("bad record")

	img, err := Assemble(Spec{Layers: []v1.Layer{l}, Entrypoint: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "images.tar")
	if err := WriteArchive(archive, map[string]v1.Image{"idharness.local/cached:dev": img}); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers read back: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if tarBytes, _ := os.ReadFile(root); !bytes.Equal(got, tarBytes) {
		t.Errorf("the archive's layer holds %d bytes uncompressed; want the tar's %d", len(got), len(tarBytes))
	}

	missing := filepath.Join(dir, "gone.tar")
	if _, err := CachedLayerFromFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing tar: %v; want an error naming %s", err, missing)
	}
}
