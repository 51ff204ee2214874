package sut

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/idharness/idharness/fixtures"
)

// LoadShipped loads the declaration idharness ships under name
// (fixtures/sut/NAME, embedded in the binary): its files are written
// under cacheDir/sut/NAME-HASH (HASH of their contents, so that a newer
// binary never reads an older copy) and loaded from there, so that its
// errors and manifests point at files one can open.
func LoadShipped(name, cacheDir string) (*SUT, error) {
	fsys, err := fixtures.ShippedSUT(name)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shipped implementation %s: %w", name, err)
	}
	dir := filepath.Join(cacheDir, "sut", name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, "sut.yaml")); err != nil {
		if err := extract(fsys, dir); err != nil {
			return nil, fmt.Errorf("shipped implementation %s: write its files: %w (is %s writable? --cache-dir moves it)", name, err, cacheDir)
		}
	}
	return Load(filepath.Join(dir, "sut.yaml"))
}

// extract writes fsys into dir, atomically: into a temporary sibling
// renamed at the end, so that an interrupted copy is never loaded.
func extract(fsys fs.FS, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.CopyFS(tmp, fsys); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil && !dirHasSUT(dir) {
		return err
	}
	return nil
}

// dirHasSUT says whether another run extracted the same files first.
func dirHasSUT(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "sut.yaml"))
	return err == nil
}
