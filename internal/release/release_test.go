package release

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all" // the Go clients the registry checks
	"github.com/idharness/idharness/internal/images"
)

// valid returns a small manifest that Validate accepts.
func valid() *Manifest {
	return &Manifest{SchemaVersion: SchemaVersion, Version: "v1.0.0", Commit: "abc", Platforms: []Platform{{
		OS: "linux", Arch: "amd64", Dir: "linux-amd64",
		Files:  []File{{Path: "images/fakeimds.tar", Size: 1, SHA256: "00"}},
		Images: []Image{{Name: "fakeimds", Kind: KindProgram, Ref: "idharness.local/fakeimds:v1.0.0", Archive: "images/fakeimds.tar", ConfigDigest: "sha256:00"}},
	}}}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m *Manifest)
		want   string // "" when valid
	}{
		{"valid", func(*Manifest) {}, ""},
		{"not a manifest", func(m *Manifest) { m.SchemaVersion = 0 }, "not an idharness release manifest"},
		{"newer format", func(m *Manifest) { m.SchemaVersion = SchemaVersion + 1 }, "newer than this idharness reads"},
		{"no version", func(m *Manifest) { m.Version = "" }, "no version"},
		{"no platforms", func(m *Manifest) { m.Platforms = nil }, "no platforms"},
		{"no arch", func(m *Manifest) { m.Platforms[0].Arch = "" }, "without os or arch"},
		{"image without digest", func(m *Manifest) { m.Platforms[0].Images[0].ConfigDigest = "" }, "lacks its ref, archive or config digest"},
		{"archive not a listed file", func(m *Manifest) { m.Platforms[0].Files = nil }, "not among the platform's files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.change(m)
			err := m.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPlatform(t *testing.T) {
	m := valid()
	if p, err := m.Platform("linux", "amd64"); err != nil || p.Arch != "amd64" {
		t.Fatalf("linux/amd64: %v %v", p, err)
	}
	_, err := m.Platform("linux", "arm64")
	if err == nil || !strings.Contains(err.Error(), "has no linux/arm64 platform (it has linux/amd64)") {
		t.Fatalf("linux/arm64: %v", err)
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "v1.2.3",
		"v1.2.3-4-gabcdef0-dirty": "v1.2.3-4-gabcdef0-dirty",
		"0763331-dirty":           "0763331-dirty",
		"release/1.0+meta":        "release-1.0-meta",
		"-x":                      "v-x",
		"":                        "v",
		strings.Repeat("a", 200):  strings.Repeat("a", 128),
	} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSums(t *testing.T) {
	dir := t.TempDir()
	var files []File
	for name, content := range map[string]string{"a": "one", "sub/b": "two"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
		f, err := hashFile(p, name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if err := WriteSums(dir, files); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, SumsFile))
	// sha256sum's format, sorted: `sha256sum -c` reads it.
	want := "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed  a\n3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3  sub/b\n"
	if string(b) != want {
		t.Fatalf("SHA256SUMS:\n%s\nwant:\n%s", b, want)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "-c", SumsFile)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, out)
		}
	}
	if err := VerifySums(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func()
		want   string
	}{
		{"changed file", func() { os.WriteFile(filepath.Join(dir, "sub/b"), []byte("tWo"), 0o644) }, "sub/b: sha256 "},
		{"missing file", func() { os.Remove(filepath.Join(dir, "a")) }, "no such file"},
		{"malformed line", func() { os.WriteFile(filepath.Join(dir, SumsFile), []byte("xyz a\n"), 0o644) }, `SHA256SUMS:1: want "<sha256>  <path>"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			if err := VerifySums(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifySums = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	empty, broken, other := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(broken, ManifestFile), []byte("{"), 0o644)
	m := valid()
	if err := m.write(other); err != nil {
		t.Fatal(err)
	}
	// No manifest anywhere: no release, and no error (the caller says
	// where it looked).
	if r, err := Find([]string{empty}, "linux", "amd64"); r != nil || err != nil {
		t.Fatalf("empty: %v %v", r, err)
	}
	// The first directory with a manifest wins.
	if r, err := Find([]string{empty, other}, "linux", "amd64"); err != nil || r.Root != other || r.Dir() != filepath.Join(other, "linux-amd64") {
		t.Fatalf("other: %+v %v", r, err)
	}
	for _, tc := range []struct {
		dirs []string
		arch string
		want string
	}{
		{[]string{broken}, "amd64", "release manifest " + filepath.Join(broken, ManifestFile)},
		{[]string{other}, "arm64", filepath.Join(other, ManifestFile) + ": release v1.0.0 has no linux/arm64 platform"},
	} {
		if _, err := Find(tc.dirs, "linux", tc.arch); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Find(%v, %s) = %v, want %q", tc.dirs, tc.arch, err, tc.want)
		}
	}
}

// TestBuild builds a real release of a small stand-in for idharness and
// one program, for this machine's architecture and the other of
// amd64/arm64, with one client program, and reads it back as a run does.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles programs for two architectures")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other == "" {
		t.Skipf("no other architecture for %s", runtime.GOARCH)
	}
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var client *clients.Program
	for _, p := range reg.Programs() {
		if p.Name == "python-azure-identity" {
			client = p
		}
	}
	if client == nil {
		t.Fatal("no client program python-azure-identity")
	}
	// A client root is a tar of a Debian system (mmdebstrap, minutes);
	// any root tar makes the same image structure.
	root := filepath.Join(t.TempDir(), "root.tar")
	var rb bytes.Buffer
	tw := tar.NewWriter(&rb)
	tw.WriteHeader(&tar.Header{Name: "client/main.py", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("#\n"))
	tw.Close()
	os.WriteFile(root, rb.Bytes(), 0o644)

	out := t.TempDir()
	const version = "v9.9.9-test"
	var asked []string // the architectures whose client roots Build asked for
	m, err := Build(context.Background(), Options{
		ModuleDir: "../..", OutDir: out, Version: version, Commit: "0123abc",
		Platforms: []string{"linux/" + runtime.GOARCH, "linux/" + other},
		CLI:       "./internal/release/testdata/hello",
		Programs: []Program{
			{Name: "probe", Package: "./internal/release/testdata/hello", Binary: true},
			{Name: "fakeimds", Package: "./internal/release/testdata/hello", User: "0:0"},
		},
		Clients: []*clients.Program{client},
		ClientRoot: func(_ context.Context, _ *clients.Program, goarch string) (string, error) {
			asked = append(asked, goarch)
			return root, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != version || m.Commit != "0123abc" || len(m.Platforms) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	if want := []string{runtime.GOARCH, other}; !slices.Equal(asked, want) {
		t.Errorf("client roots asked for %v, want %v (one per platform)", asked, want)
	}
	if err := VerifySums(out); err != nil {
		t.Fatalf("SHA256SUMS of a fresh release: %v", err)
	}
	// The top manifest on disk is the one returned.
	var back Manifest
	b, _ := os.ReadFile(filepath.Join(out, ManifestFile))
	if err := json.Unmarshal(b, &back); err != nil || back.Platforms[1].Arch != other {
		t.Fatalf("release.json: %v %+v", err, back)
	}
	for _, arch := range []string{runtime.GOARCH, other} {
		t.Run(arch, func(t *testing.T) {
			// A platform directory copied alone is a release of its own.
			alone := filepath.Join(t.TempDir(), "rel")
			if err := os.CopyFS(alone, os.DirFS(filepath.Join(out, DirName("linux", arch)))); err != nil {
				t.Fatal(err)
			}
			r, err := Find([]string{alone}, "linux", arch)
			if err != nil || r == nil {
				t.Fatalf("Find: %v %v", r, err)
			}
			p := r.Platform
			for _, f := range []string{"idharness", "probe", "images/probe.tar", "images/fakeimds.tar"} {
				if _, ok := p.File(f); !ok {
					t.Errorf("no file %s in %+v", f, p.Files)
				}
			}
			if _, ok := p.File("fakeimds"); ok {
				t.Errorf("fakeimds's binary shipped though Binary is false")
			}
			bin, err := elf.Open(filepath.Join(alone, "idharness"))
			if err != nil {
				t.Fatal(err)
			}
			bin.Close()
			if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; bin.Machine != want {
				t.Errorf("idharness built for %v, want %v", bin.Machine, want)
			}
			if arch == runtime.GOARCH {
				// The version is linked in: `idharness version` prints it.
				got, err := exec.Command(filepath.Join(alone, "idharness")).Output()
				if err != nil || strings.TrimSpace(string(got)) != version {
					t.Errorf("binary's version %q (%v), want %s", got, err, version)
				}
			}
			img, ok := p.Image(KindProgram, "fakeimds")
			if !ok || img.Ref != "idharness.local/fakeimds:"+version {
				t.Fatalf("fakeimds image %+v", img)
			}
			built, err := r.LoadImage(img)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := built.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Architecture != arch || cf.Config.User != "0:0" {
				t.Errorf("fakeimds image: arch %s user %s, want %s 0:0", cf.Architecture, cf.Config.User, arch)
			}
			// A run writes the images it loaded into one archive for the
			// nodes: the image's ID must survive that.
			all := filepath.Join(t.TempDir(), "images.tar")
			if err := images.WriteBuiltArchive(all, built); err != nil {
				t.Fatal(err)
			}
			tag, _ := name.NewTag(img.Ref)
			again, err := tarball.ImageFromPath(all, &tag)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := again.ConfigName(); err != nil || id.String() != img.ConfigDigest {
				t.Errorf("image ID after re-archiving %v (%v), want %s", id, err, img.ConfigDigest)
			}
			// Every platform has its client image, of its architecture.
			ci, hasClient := p.Image(KindClient, client.Name)
			if !hasClient || len(p.Missing) != 0 {
				t.Fatalf("%s: client image %v, missing %+v; want it, none missing", arch, hasClient, p.Missing)
			}
			cb, err := r.LoadImage(ci)
			if err != nil {
				t.Fatal(err)
			}
			if cf, err := cb.Image.ConfigFile(); err != nil || cf.Architecture != arch {
				t.Errorf("client image's config %+v (%v), want architecture %s", cf, err, arch)
			}
			// A damaged archive is refused, naming the file.
			path := filepath.Join(alone, "images", "fakeimds.tar")
			data, _ := os.ReadFile(path)
			data[len(data)/2] ^= 0xff
			os.WriteFile(path, data, 0o644)
			if _, err := r.LoadImage(img); err == nil || !strings.Contains(err.Error(), path+": checksum mismatch") {
				t.Errorf("damaged archive: %v", err)
			}
		})
	}
}

// TestFailedBuildKeepsRelease: a build that fails leaves the release
// already in the directory whole, and no staging directory behind.
func TestFailedBuildKeepsRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	out := t.TempDir()
	o := Options{ModuleDir: "../..", OutDir: out, Version: "v1", Commit: "c", Platforms: []string{"linux/" + runtime.GOARCH},
		CLI: "./internal/release/testdata/hello", Programs: []Program{{Name: "probe", Package: "./internal/release/testdata/hello"}}}
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Version = "v2"
	o.Programs = append(o.Programs, Program{Name: "broken", Package: "./internal/release/testdata/nonexistent"})
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("build of a missing package: %v", err)
	}
	m, err := Open(out)
	if err != nil || m.Version != "v1" {
		t.Fatalf("release after a failed build: %+v %v; want v1 whole", m, err)
	}
	if err := VerifySums(out); err != nil {
		t.Fatalf("release after a failed build: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".partial-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// TestGitVersion: the version is git describe's, with -dirty for a tree
// with changes; outside a git tree the error says how to give one.
func TestGitVersion(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("1"), 0o644)
	git("add", "f")
	git("commit", "-q", "-m", "one")
	git("tag", "v1.2.3")
	v, c, err := GitVersion(context.Background(), dir)
	if err != nil || v != "v1.2.3" || len(c) != 40 {
		t.Fatalf("tagged: %q %q %v", v, c, err)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("2"), 0o644)
	if v, _, err := GitVersion(context.Background(), dir); err != nil || v != "v1.2.3-dirty" {
		t.Fatalf("changed: %q %v", v, err)
	}
	if _, _, err := GitVersion(context.Background(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Fatalf("not a git tree: %v", err)
	}
}
