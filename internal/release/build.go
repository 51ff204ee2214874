package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/internal/clientimage"
	"github.com/idharness/idharness/internal/images"
)

// Program is one of idharness's Go programs whose image a release holds.
type Program struct {
	// Name is the image's short name (fakeimds), as a run knows it.
	Name string
	// Package is its main package (./cmd/fakeimds).
	Package string
	// User is the image's user; empty means nonroot.
	User string
	// Binary ships the program's binary beside idharness's, too.
	Binary bool
}

// Options say what a release holds and where it goes.
type Options struct {
	// ModuleDir is the idharness source tree.
	ModuleDir string
	// OutDir receives the release; its previous content is replaced.
	OutDir string
	// Version and Commit are recorded in the manifest and linked into
	// idharness (-X main.version); empty: from git in ModuleDir.
	Version, Commit string
	// Platforms are GOOS/GOARCH pairs, such as linux/amd64.
	Platforms []string
	// Programs are the Go programs to package as images.
	Programs []Program
	// Clients are the client programs to package as images, each with
	// that platform's probe; ClientRoot returns a program's root file
	// system for a GOARCH (clientimage.Builder.Root; another
	// architecture's is built under qemu-user).
	Clients    []*clients.Program
	ClientRoot func(ctx context.Context, p *clients.Program, goarch string) (string, error)
	// CLI is idharness's main package; empty means CLIPackage. (The
	// tests give a small stand-in.)
	CLI string
	// Go is the go command; empty means "go".
	Go string
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
}

// CLIPackage is idharness's own main package.
const CLIPackage = "./cmd/idharness"

// Build writes a release to o.OutDir and returns its manifest.
func Build(ctx context.Context, o Options) (*Manifest, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.OutDir == "" {
		return nil, errors.New("release: no output directory")
	}
	if len(o.Platforms) == 0 {
		return nil, errors.New("release: no platforms (for example linux/amd64)")
	}
	plats := make([][2]string, 0, len(o.Platforms))
	for _, p := range o.Platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok || goos != "linux" || goarch == "" {
			return nil, fmt.Errorf("release: platform %q: want linux/ARCH (kind nodes run Linux), such as linux/amd64 or linux/arm64", p)
		}
		plats = append(plats, [2]string{goos, goarch})
	}
	if o.Version == "" || o.Commit == "" {
		v, c, err := GitVersion(ctx, o.ModuleDir)
		if err != nil {
			return nil, err
		}
		if o.Version == "" {
			o.Version = v
		}
		if o.Commit == "" {
			o.Commit = c
		}
	}
	tag := ImageTag(o.Version)
	// The platforms are built in a staging directory and moved into
	// place once all are built, so that a failed build leaves the
	// previous release whole. Only what Build writes is replaced: a
	// mistaken --output keeps the rest of its directory.
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(o.OutDir, ".partial-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	m := &Manifest{SchemaVersion: SchemaVersion, Version: o.Version, Commit: o.Commit}
	var sums []File
	for _, pl := range plats {
		start := time.Now()
		p, err := buildPlatform(ctx, o, stage, pl[0], pl[1], tag)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(stage, p.Dir)
		// The platform's own manifest, for a platform directory copied alone.
		own := &Manifest{SchemaVersion: SchemaVersion, Version: o.Version, Commit: o.Commit, Platforms: []Platform{*p}}
		own.Platforms[0].Dir = "."
		if err := own.write(dir); err != nil {
			return nil, err
		}
		for _, f := range p.Files {
			sums = append(sums, File{Path: p.Dir + "/" + f.Path, Size: f.Size, SHA256: f.SHA256})
		}
		f, err := hashFile(filepath.Join(dir, ManifestFile), p.Dir+"/"+ManifestFile)
		if err != nil {
			return nil, err
		}
		sums = append(sums, f)
		m.Platforms = append(m.Platforms, *p)
		o.Log.Info("release platform built", "platform", p.Name(), "images", len(p.Images), "missing", len(p.Missing), "elapsed", time.Since(start).Round(time.Second))
	}
	for _, f := range []string{ManifestFile, SumsFile} {
		if err := os.Remove(filepath.Join(o.OutDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	for _, p := range m.Platforms {
		dst := filepath.Join(o.OutDir, p.Dir)
		if err := os.RemoveAll(dst); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(stage, p.Dir), dst); err != nil {
			return nil, err
		}
	}
	if err := m.write(o.OutDir); err != nil {
		return nil, err
	}
	f, err := hashFile(filepath.Join(o.OutDir, ManifestFile), ManifestFile)
	if err != nil {
		return nil, err
	}
	if err := WriteSums(o.OutDir, append(sums, f)); err != nil {
		return nil, err
	}
	return m, nil
}

// buildPlatform writes one platform's directory under stage.
func buildPlatform(ctx context.Context, o Options, stage, goos, goarch, tag string) (*Platform, error) {
	p := &Platform{OS: goos, Arch: goarch, Dir: DirName(goos, goarch)}
	dir := filepath.Join(stage, p.Dir)
	work, err := os.MkdirTemp("", "idharness-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return nil, err
	}
	addFile := func(rel string) error {
		f, err := hashFile(filepath.Join(dir, rel), rel)
		if err == nil {
			p.Files = append(p.Files, f)
		}
		return err
	}
	// idharness itself, with the version linked in.
	start := time.Now()
	cli := o.CLI
	if cli == "" {
		cli = CLIPackage
	}
	if err := goBuild(ctx, o, goarch, filepath.Join(dir, "idharness"), cli, "-X main.version="+o.Version); err != nil {
		return nil, err
	}
	if err := addFile("idharness"); err != nil {
		return nil, err
	}
	o.Log.Info("binary built", "platform", p.Name(), "program", "idharness", "elapsed", time.Since(start).Round(time.Millisecond))
	addImage := func(b images.Built, img Image) error {
		img.Ref, img.Archive = b.Name, "images/"+archiveName(img)
		if err := images.WriteBuiltArchive(filepath.Join(dir, img.Archive), b); err != nil {
			return err
		}
		cfg, err := b.Image.ConfigName()
		if err != nil {
			return fmt.Errorf("image %s: %w", b.Name, err)
		}
		dg, err := b.Image.Digest()
		if err != nil {
			return fmt.Errorf("image %s: %w", b.Name, err)
		}
		img.ConfigDigest, img.Digest = cfg.String(), dg.String()
		p.Images = append(p.Images, img)
		return addFile(img.Archive)
	}
	probeBin := ""
	for _, prog := range o.Programs {
		start := time.Now()
		b, err := images.BuildGo(ctx, images.GoProgram{Package: prog.Package, ModuleDir: o.ModuleDir, Image: "idharness.local/" + prog.Name + ":" + tag,
			User: prog.User, Go: o.Go, WorkDir: filepath.Join(work, prog.Name), Arch: goarch})
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", p.Name(), err)
		}
		if err := addImage(b, Image{Name: prog.Name, Kind: KindProgram, Source: prog.Package}); err != nil {
			return nil, err
		}
		if prog.Binary {
			if err := images.CopyExecutable(b.Binary, filepath.Join(dir, prog.Name)); err != nil {
				return nil, err
			}
			if err := addFile(prog.Name); err != nil {
				return nil, err
			}
		}
		if prog.Name == "probe" {
			probeBin = b.Binary
		}
		o.Log.Info("image built", "platform", p.Name(), "image", b.Name, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	for _, c := range o.Clients {
		if probeBin == "" {
			return nil, fmt.Errorf("release %s: client image %s needs the probe, which is not among the programs", p.Name(), c.Name)
		}
		start := time.Now()
		root, err := o.ClientRoot(ctx, c, goarch)
		if err != nil {
			return nil, fmt.Errorf("release %s: client program %s: %w", p.Name(), c.Name, err)
		}
		b, err := clientimage.Image(root, probeBin, goarch, c, clientimage.Name(c, tag))
		if err != nil {
			return nil, err
		}
		if err := addImage(b, Image{Name: c.Name, Kind: KindClient, Source: "clients/" + c.Name}); err != nil {
			return nil, err
		}
		o.Log.Info("image built", "platform", p.Name(), "image", b.Name, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return p, nil
}

// archiveName is an image's archive's file name.
func archiveName(img Image) string {
	if img.Kind == KindClient {
		return "client-" + img.Name + ".tar"
	}
	return img.Name + ".tar"
}

// goBuild builds pkg for linux/goarch, statically, to out.
func goBuild(ctx context.Context, o Options, goarch, out, pkg, ldflags string) error {
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags=-s -w "+ldflags, "-o", out, pkg)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for linux/%s: %w\n%s", pkg, goarch, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// GitVersion returns `git describe --tags --always --dirty` and the
// commit of the tree in dir.
func GitVersion(ctx context.Context, dir string) (version, commit string, err error) {
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("release version: git %s in %s: %w (%s); build from a git checkout, or give the version (--version, make release VERSION=...)",
				strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if version, err = run("describe", "--tags", "--always", "--dirty"); err != nil {
		return "", "", err
	}
	if commit, err = run("rev-parse", "HEAD"); err != nil {
		return "", "", err
	}
	return version, commit, nil
}

// badTagChars are the characters an image tag may not hold.
var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// ImageTag returns the image tag of a release of version: the version
// with what a tag may not hold replaced by '-' (a tag is
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
func ImageTag(version string) string {
	t := badTagChars.ReplaceAllString(version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
