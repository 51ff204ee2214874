package images

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cachedLayer is a layer whose uncompressed tar and gzip-compressed form
// are both files on disk, with their digests recorded beside them.
type cachedLayer struct {
	tar, gz        string
	digest, diffID v1.Hash
	size           int64
}

// layerSums is the record kept beside a compressed layer (PATH.gz.json).
type layerSums struct {
	Digest string `json:"digest"`
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
}

// CachedLayerFromFile returns the tar file at path as a gzip-compressed
// layer, compressing it once into path.gz (with path.gz.json holding its
// digests) and taking both from there on every later call, as long as
// they are newer than the tar.
//
// Why: a client root is hundreds of megabytes, which
// tarball.LayerFromFile compressed twice per run (once for the digest,
// once into the archive: 25 s of the images phase for three roots on 2
// cores). Uncompressed layers would skip that but write twice the bytes
// into every node's containerd, which costs more from three nodes on
// (docs/performance.md#loading-images). path must not change while
// cached: the client image cache names each root by its content's key.
func CachedLayerFromFile(path string) (v1.Layer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", path, err)
	}
	l := &cachedLayer{tar: path, gz: path + ".gz"}
	if s, ok := readSums(l.gz, st); ok {
		return l.with(s)
	}
	s, err := compressLayer(path, l.gz)
	if err != nil {
		return nil, err
	}
	return l.with(s)
}

// readSums returns the record of gz when gz and its record exist and are
// not older than the tar whose stat is st.
func readSums(gz string, st os.FileInfo) (layerSums, bool) {
	gst, err := os.Stat(gz)
	if err != nil || gst.ModTime().Before(st.ModTime()) {
		return layerSums{}, false
	}
	b, err := os.ReadFile(gz + ".json")
	if err != nil {
		return layerSums{}, false
	}
	var s layerSums
	if json.Unmarshal(b, &s) != nil || s.Size != gst.Size() {
		return layerSums{}, false
	}
	return s, true
}

// compressLayer writes tar compressed to gz and its record to gz.json,
// each through a temporary file renamed into place, so that a run
// interrupted half way or a second run at the same time never leaves a
// partial file under the final name.
func compressLayer(tar, gz string) (layerSums, error) {
	in, err := os.Open(tar)
	if err != nil {
		return layerSums{}, fmt.Errorf("layer %s: %w", tar, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(gz), ".layer-*.gz")
	if err != nil {
		return layerSums{}, fmt.Errorf("layer %s: %w", tar, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	diff, dig := sha256.New(), sha256.New()
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(tmp, dig), gzip.BestSpeed)
	if _, err := io.Copy(io.MultiWriter(zw, diff), in); err != nil {
		return layerSums{}, fmt.Errorf("compress layer %s: %w", tar, err)
	}
	// A cache file as readable as the tar beside it (CreateTemp makes 0600).
	if err := errors.Join(zw.Close(), tmp.Chmod(0o644), tmp.Close()); err != nil {
		return layerSums{}, fmt.Errorf("compress layer %s into %s: %w", tar, gz, err)
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return layerSums{}, err
	}
	s := layerSums{Digest: fmt.Sprintf("sha256:%x", dig.Sum(nil)), DiffID: fmt.Sprintf("sha256:%x", diff.Sum(nil)), Size: st.Size()}
	b, _ := json.Marshal(s)
	if err := os.Rename(tmp.Name(), gz); err != nil {
		return layerSums{}, fmt.Errorf("compress layer %s: %w", tar, err)
	}
	rec := tmp.Name() + ".json"
	defer os.Remove(rec)
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		return layerSums{}, fmt.Errorf("compress layer %s: record its digests: %w", tar, err)
	}
	if err := os.Rename(rec, gz+".json"); err != nil {
		return layerSums{}, fmt.Errorf("compress layer %s: record its digests: %w", tar, err)
	}
	return s, nil
}

// with fills l's digests from s.
func (l *cachedLayer) with(s layerSums) (v1.Layer, error) {
	var err error
	if l.digest, err = v1.NewHash(s.Digest); err != nil {
		return nil, fmt.Errorf("layer %s: record %s.json: %w (delete it to compress again)", l.tar, l.gz, err)
	}
	if l.diffID, err = v1.NewHash(s.DiffID); err != nil {
		return nil, fmt.Errorf("layer %s: record %s.json: %w (delete it to compress again)", l.tar, l.gz, err)
	}
	l.size = s.Size
	return l, nil
}

// Digest is the sha256 of the compressed file.
func (l *cachedLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the sha256 of the tar.
func (l *cachedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Compressed opens the compressed file.
func (l *cachedLayer) Compressed() (io.ReadCloser, error) { return open(l.gz) }

// Uncompressed opens the tar itself: no decompression needed.
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) { return open(l.tar) }

// Size is the compressed file's size.
func (l *cachedLayer) Size() (int64, error) { return l.size, nil }

// MediaType is a gzip-compressed Docker layer's.
func (l *cachedLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// open opens a file of a cached layer, saying what to do when it is gone.
func open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cached layer: %w (the cache changed under the run: run again to rebuild it)", err)
	}
	return f, nil
}
