package run

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	_ "github.com/idharness/idharness/clients/all" // the Go clients the registry checks
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/release"
)

// writeRelease writes a release manifest for this machine's platform
// with the named program and client images (the archives need not exist
// to choose a source).
func writeRelease(t *testing.T, programs, clients []string, missing []release.Missing) string {
	t.Helper()
	p := release.Platform{OS: "linux", Arch: runtime.GOARCH, Dir: ".", Missing: missing}
	add := func(kind, name string) {
		a := "images/" + kind + "-" + name + ".tar"
		p.Files = append(p.Files, release.File{Path: a, Size: 1, SHA256: "00"})
		p.Images = append(p.Images, release.Image{Name: name, Kind: kind, Ref: "idharness.local/" + name + ":v1", Archive: a, ConfigDigest: "sha256:00"})
	}
	for _, n := range programs {
		add(release.KindProgram, n)
	}
	for _, n := range clients {
		add(release.KindClient, n)
	}
	m := release.Manifest{SchemaVersion: release.SchemaVersion, Version: "v1", Commit: "c", Platforms: []release.Platform{p}}
	b, _ := json.Marshal(m)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, release.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestImageSource: a run takes its images from the source tree when it
// has the programs, else from a release, and otherwise fails before any
// cluster exists, saying what is missing, where it looked and what to do.
func TestImageSource(t *testing.T) {
	programs := map[string]string{"fakeimds": "./cmd/fakeimds", "probe": "./cmd/probe", "vault": "./cmd/vault"}
	allClients := []string{"java-azure-identity", "node-azure-identity", "python-azure-identity"}
	full := writeRelease(t, []string{"fakeimds", "probe", "vault"}, allClients, nil)
	noVault := writeRelease(t, []string{"fakeimds", "probe"}, allClients, nil)
	noClients := writeRelease(t, []string{"fakeimds", "probe", "vault"}, []string{"python-azure-identity"},
		[]release.Missing{{Name: "java-azure-identity", Kind: release.KindClient, Why: "built for amd64 only"}})
	emptyDir := t.TempDir()
	for _, tc := range []struct {
		name         string
		moduleDir    string
		imagesDir    string
		clientImages []string
		wantRelease  string // the release chosen; "" the tree
		wantErr      []string
	}{
		{name: "checkout", moduleDir: "../.."},
		{name: "explicit release beats the checkout", moduleDir: "../..", imagesDir: full, wantRelease: full},
		{name: "no checkout, no release", moduleDir: emptyDir,
			wantErr: []string{"the source tree " + emptyDir + " lacks fakeimds (./cmd/fakeimds), probe (./cmd/probe), vault (./cmd/vault)", "looked in", "--images DIR"}},
		{name: "--images without a manifest", moduleDir: emptyDir, imagesDir: emptyDir,
			wantErr: []string{"--images " + emptyDir + ": no release.json there"}},
		{name: "release lacks a program", moduleDir: emptyDir, imagesDir: noVault,
			wantErr: []string{"has no image of vault"}},
		{name: "release lacks client images", moduleDir: emptyDir, imagesDir: noClients,
			wantErr: []string{"has no image of client programs java-azure-identity, node-azure-identity", "java-azure-identity: built for amd64 only",
				"node-azure-identity: not built into this release", "--client-images none", "--client-images python-azure-identity"}},
		{name: "no client images asked for", moduleDir: emptyDir, imagesDir: noClients, clientImages: []string{"none"}, wantRelease: noClients},
		{name: "the clients it has", moduleDir: emptyDir, imagesDir: noClients, clientImages: []string{"python-azure-identity"}, wantRelease: noClients},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ModuleDir: tc.moduleDir, ImagesDir: tc.imagesDir, ClientImages: tc.clientImages, CacheDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			s, err := newImageSource(o, programs)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s.rel != nil {
				got = s.rel.Root
			}
			if got != tc.wantRelease {
				t.Fatalf("release %q, want %q", got, tc.wantRelease)
			}
		})
	}
}

// TestReleasePrograms: a release holds every program any run may deploy,
// the components' too, each with the user a run gives it.
func TestReleasePrograms(t *testing.T) {
	got := map[string]string{}
	for _, p := range ReleasePrograms() {
		got[p.Name] = p.Package + " " + p.User
	}
	for name, want := range map[string]string{"fakeimds": "./cmd/fakeimds 0:0", "probe": "./cmd/probe ", "vault": "./cmd/vault ", "nodeagent": "./cmd/nodeagent "} {
		if got[name] != want {
			t.Errorf("program %s: %q, want %q (all: %v)", name, got[name], want, got)
		}
	}
	if len(got) < 5 {
		t.Errorf("programs %v: want the webhook's too", got)
	}
}

// TestImageSourceLoadsRelease: from a real release (small stand-in
// programs), a run's images are the release's, by their refs and IDs.
func TestImageSourceLoadsRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles programs")
	}
	out := t.TempDir()
	hello := "./internal/release/testdata/hello"
	m, err := release.Build(context.Background(), release.Options{ModuleDir: "../..", OutDir: out, Version: "v0.0.1-test", Commit: "c",
		Platforms: []string{"linux/" + runtime.GOARCH}, CLI: hello,
		Programs: []release.Program{{Name: "fakeimds", Package: hello}, {Name: "probe", Package: hello}, {Name: "vault", Package: hello}},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{ModuleDir: t.TempDir(), ImagesDir: out, ClientImages: []string{"none"}, ImageTag: "dev", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := newImageSource(o, map[string]string{"fakeimds": "./cmd/fakeimds", "probe": "./cmd/probe", "vault": "./cmd/vault"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.program(context.Background(), "fakeimds")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.Platforms[0].Image(release.KindProgram, "fakeimds")
	id, _ := b.Image.ConfigName()
	if b.Name != "idharness.local/fakeimds:v0.0.1-test" || id.String() != want.ConfigDigest {
		t.Fatalf("image %s %s, want the release's %s %s", b.Name, id, want.Ref, want.ConfigDigest)
	}
	if c, err := s.clients(context.Background(), []images.Built{b}); err != nil || len(c) != 0 {
		t.Fatalf("clients with --client-images none: %v %v", c, err)
	}
}
