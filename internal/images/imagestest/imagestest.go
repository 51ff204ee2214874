// Package imagestest serves Go modules to the go command from a file
// system proxy, so that tests of builds from the module proxy
// (images.BuildModule, a sut.yaml's build) run offline and build a module
// of their own rather than someone else's.
package imagestest

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// GoProxy writes the module mod with files (path in the module to
// contents) as a file:// module proxy and points the go command of the
// test's process at it: GOPROXY, no checksum database (the module is
// nobody's), a module cache of the test's own (removed afterwards, though
// the go command writes it read-only).
func GoProxy(t testing.TB, mod module.Version, files map[string]string) {
	t.Helper()
	src, proxy, cache := t.TempDir(), t.TempDir(), t.TempDir()
	t.Cleanup(func() {
		filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	for p, body := range files {
		write(t, filepath.Join(src, p), []byte(body))
	}
	dir := filepath.Join(proxy, mod.Path, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(dir, mod.Version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromDir(zf, mod, src); err != nil {
		t.Fatal(err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]string{"Version": mod.Version, "Time": "2026-01-01T00:00:00Z"})
	write(t, filepath.Join(dir, mod.Version+".info"), info)
	write(t, filepath.Join(dir, mod.Version+".mod"), []byte(files["go.mod"]))
	write(t, filepath.Join(dir, "list"), []byte(mod.Version+"\n"))
	t.Setenv("GOPROXY", "file://"+filepath.ToSlash(proxy))
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOMODCACHE", cache)
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
