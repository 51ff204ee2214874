package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func tarEntries(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestWriteLayerTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/usr/local/bin/app", Source: src, Mode: 0o755},
		{Path: "etc/motd", Data: []byte("hi")},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/bin", Link: "usr/bin"},
	}
	var a, b bytes.Buffer
	if err := WriteLayerTar(&a, files); err != nil {
		t.Fatal(err)
	}
	// Same files in another order: same bytes.
	if err := WriteLayerTar(&b, []File{files[3], files[2], files[1], files[0]}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("layer depends on input order")
	}
	e := tarEntries(t, a.Bytes())
	tests := []struct {
		name string
		typ  byte
		mode int64
	}{
		{"usr/", tar.TypeDir, 0o755},
		{"usr/local/", tar.TypeDir, 0o755},
		{"usr/local/bin/", tar.TypeDir, 0o755},
		{"usr/local/bin/app", tar.TypeReg, 0o755},
		{"etc/motd", tar.TypeReg, 0o644},
		{"tmp/", tar.TypeDir, 0o1777},
		{"bin", tar.TypeSymlink, 0o777},
	}
	for _, tt := range tests {
		h, ok := e[tt.name]
		if !ok {
			t.Errorf("missing %s (have %v)", tt.name, e)
			continue
		}
		if h.Typeflag != tt.typ || h.Mode != tt.mode || !h.ModTime.Equal(Epoch) {
			t.Errorf("%s: type %c mode %o time %v", tt.name, h.Typeflag, h.Mode, h.ModTime)
		}
	}
	if e["usr/local/bin/app"].Size != 12 {
		t.Errorf("app size %d", e["usr/local/bin/app"].Size)
	}
	if err := WriteLayerTar(io.Discard, []File{{Path: "/x", Source: "/does/not/exist"}}); err == nil {
		t.Error("want an error for a missing source file")
	}
}

func TestAssembleAndWriteArchive(t *testing.T) {
	l, err := Layer([]File{{Path: "/hello", Data: []byte("hello"), Mode: 0o755}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(Spec{
		Layers:     append([]v1.Layer{mustLayer(t, MinimalRoot())}, l),
		Entrypoint: []string{"/hello"},
		Cmd:        []string{"--flag"},
		User:       "65532:65532",
		Labels:     map[string]string{LabelManaged: "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images.tar")
	if err := WriteArchive(path, map[string]v1.Image{
		"idharness.local/hello:test":           img,
		"registry.k8s.io/pause:3.10.1":         img,
		"registry.k8s.io/coredns/coredns:v1.1": img,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary archive left behind")
	}
	for _, tag := range []string{"idharness.local/hello:test", "registry.k8s.io/coredns/coredns:v1.1"} {
		ref, _ := name.NewTag(tag)
		got, err := tarball.ImageFromPath(path, &ref)
		if err != nil {
			t.Fatalf("read %s back: %v", tag, err)
		}
		cf, err := got.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Config.Entrypoint[0] != "/hello" || cf.Config.User != "65532:65532" ||
			cf.Config.Labels[LabelManaged] != "true" || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
			t.Errorf("%s config: %+v", tag, cf.Config)
		}
		layers, err := got.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s layers: %d, %v", tag, len(layers), err)
		}
		d1, _ := layers[1].Digest()
		d2, _ := l.Digest()
		if d1 != d2 {
			t.Errorf("layer digest changed in the archive: %s vs %s", d1, d2)
		}
	}
	if err := WriteArchive(path, map[string]v1.Image{"Bad Name": img}); err == nil {
		t.Error("want an error for an invalid tag")
	}
}

func mustLayer(t *testing.T, files []File) v1.Layer {
	t.Helper()
	l, err := Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestGoProgramValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       GoProgram
		wantErr string
	}{
		{"ok", GoProgram{Package: "./cmd/fakeimds", Image: "idharness.local/fakeimds:dev"}, ""},
		{"no package", GoProgram{Image: "x/y:z"}, "no main package"},
		{"no image", GoProgram{Package: "./cmd/fakeimds"}, "idharness.local/fakeimds:dev"},
		{"bad image", GoProgram{Package: "./cmd/a", Image: "UPPER/case:tag"}, "image name"},
		{"dot package", GoProgram{Package: ".", Image: "idharness.local/a:b"}, "cannot name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if n := (GoProgram{Package: "./cmd/fakeimds/"}).BinaryName(); n != "fakeimds" {
		t.Errorf("BinaryName = %s", n)
	}
}

func TestBuildGo(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	if testing.Short() {
		t.Skip("builds a program")
	}
	work := t.TempDir()
	built, err := BuildGo(context.Background(), GoProgram{
		Package: "./testdata/hello",
		Image:   "idharness.local/hello:test",
		Args:    []string{"--addr", ":9090"},
		WorkDir: work,
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := built.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/usr/local/bin/hello" {
		t.Errorf("entrypoint %q", got)
	}
	if strings.Join(cf.Config.Cmd, " ") != "--addr :9090" || cf.Config.User != "65532:65532" {
		t.Errorf("config %+v", cf.Config)
	}
	path := filepath.Join(work, "hello.tar")
	if err := WriteBuiltArchive(path, built); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("idharness.local/hello:test")
	img, err := tarball.ImageFromPath(path, &ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	h := tarEntries(t, b)["usr/local/bin/hello"]
	st, _ := os.Stat(built.Binary)
	if h == nil || h.Size != st.Size() || h.Mode != 0o755 {
		t.Fatalf("program entry %+v", h)
	}
	// A package that does not build reports go's error.
	_, err = BuildGo(context.Background(), GoProgram{Package: "./testdata/nonexistent", Image: "idharness.local/x:y", WorkDir: work})
	if err == nil || !strings.Contains(err.Error(), "go build") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuildGoArch builds for the other of amd64/arm64 than this machine:
// the binary must be an ELF for that machine and the image's config must
// name that architecture, or a node of it would refuse the image (and one
// of this machine's would run a binary it cannot execute).
func TestBuildGoArch(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	if testing.Short() {
		t.Skip("builds a program")
	}
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		t.Run(tc.arch, func(t *testing.T) {
			built, err := BuildGo(context.Background(), GoProgram{Package: "./testdata/hello", Image: "idharness.local/hello:" + tc.arch, WorkDir: t.TempDir(), Arch: tc.arch})
			if err != nil {
				t.Fatal(err)
			}
			cf, err := built.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Architecture != tc.arch || cf.OS != "linux" {
				t.Errorf("image platform %s/%s, want linux/%s", cf.OS, cf.Architecture, tc.arch)
			}
			f, err := elf.Open(built.Binary)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != tc.machine {
				t.Errorf("binary for %v, want %v", f.Machine, tc.machine)
			}
		})
	}
}

// TestBuildGoCached builds a program twice with one CacheDir: the second
// build must not link again (its kept binary is the same file) and must give
// the same image, and each image's binary must be a copy in its own
// WorkDir, which a later build cannot change under its layer.
func TestBuildGoCached(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	if testing.Short() {
		t.Skip("builds a program")
	}
	cache := t.TempDir()
	p := GoProgram{Package: "./testdata/hello", Image: "idharness.local/hello:test", CacheDir: cache}
	build := func() (Built, os.FileInfo) {
		t.Helper()
		q := p
		q.WorkDir = t.TempDir()
		b, err := BuildGo(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(b.Binary) != q.WorkDir {
			t.Fatalf("binary %s is not in the build's WorkDir %s", b.Binary, q.WorkDir)
		}
		dir, err := q.cacheDir()
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, "hello"))
		if err != nil {
			t.Fatalf("no kept binary: %v", err)
		}
		return b, fi
	}
	// go build moves a new link's output into place (a new inode) and
	// only touches an output that is current.
	first, kept1 := build()
	second, kept2 := build()
	if i1, i2 := kept1.Sys().(*syscall.Stat_t).Ino, kept2.Sys().(*syscall.Stat_t).Ino; i1 != i2 {
		t.Errorf("the second build linked again: kept binary's inode %d, then %d", i1, i2)
	}
	d1, _ := first.Image.Digest()
	d2, _ := second.Image.Digest()
	if d1 != d2 {
		t.Errorf("same program, two images: %s and %s", d1, d2)
	}
}

// TestCacheDirKey: runs of two checkouts, two programs or two
// architectures never share a kept binary.
func TestCacheDirKey(t *testing.T) {
	base := GoProgram{Package: "./cmd/fakeimds", ModuleDir: "/src/a", Image: "x:y", CacheDir: "/c"}
	dir := func(p GoProgram) string {
		d, err := p.cacheDir()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	other := map[string]GoProgram{}
	o := base
	o.ModuleDir = "/src/b"
	other["another checkout"] = o
	o = base
	o.Package = "./cmd/probe"
	other["another program"] = o
	o = base
	o.Arch = map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	other["another architecture"] = o
	for why, p := range other {
		if dir(p) == dir(base) {
			t.Errorf("%s shares %s", why, dir(base))
		}
	}
	if !strings.HasPrefix(dir(base), "/c/programs/fakeimds-") {
		t.Errorf("dir %s", dir(base))
	}
}
