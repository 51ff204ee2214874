package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// ModuleProgram is a main package of a published Go module (someone
// else's program, such as aad-pod-identity's NMI), built from the Go module
// proxy outside idharness's go.mod: the module is its own main module, so
// its go.mod, go.sum and replace directives apply as in its own builds.
type ModuleProgram struct {
	// Module is the module path, such as "github.com/Azure/aad-pod-identity".
	Module string
	// Version is a released version or pseudo-version ("v1.8.17"): a
	// branch or "latest" would make the cached build a guess.
	Version string
	// Package is the main package relative to the module root, "./cmd/nmi"
	// or ".".
	Package string
	// CacheDir keeps the built program (under go-modules/), so that a
	// second build of the same module@version and package with the same
	// toolchain is a stat.
	CacheDir string
	// Go is the go command; empty means "go". It runs with idharness's
	// environment: GOPROXY, GOPRIVATE and the rest apply.
	Go string
}

// Validate reports a ModuleProgram that cannot be built, naming the field.
func (p ModuleProgram) Validate() error {
	if err := module.CheckPath(p.Module); err != nil {
		return fmt.Errorf("module: %w (give a module path such as github.com/Azure/aad-pod-identity)", err)
	}
	if !semver.IsValid(p.Version) || semver.Canonical(p.Version) != p.Version && !module.IsPseudoVersion(p.Version) {
		return fmt.Errorf("version: %q is not a version: pin a released version such as v1.8.17 (or a pseudo-version); builds are cached by module@version", p.Version)
	}
	if err := module.Check(p.Module, p.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if p.Package != "." {
		rel, ok := strings.CutPrefix(p.Package, "./")
		if !ok || rel == "" || path.Clean(rel) != rel || strings.HasPrefix(rel, "..") || strings.Contains(rel, "...") {
			return fmt.Errorf("package: %q is not a package of the module: give its directory from the module root, such as ./cmd/nmi (or . for the root)", p.Package)
		}
	}
	return nil
}

// BinaryName returns the program's name: the last element of the package
// path, or of the module path for ".".
func (p ModuleProgram) BinaryName() string {
	if p.Package == "." {
		prefix, _, _ := module.SplitPathVersion(p.Module) // example.com/app/v2 builds "app"
		return path.Base(prefix)
	}
	return path.Base(path.Clean(p.Package))
}

// BuildModule returns the path of p's program, statically linked for
// Linux, building it only when the cache has no build of the same module,
// version, package, toolchain and architecture.
func BuildModule(ctx context.Context, p ModuleProgram) (bin string, cached bool, err error) {
	if err := p.Validate(); err != nil {
		return "", false, err
	}
	goCmd := p.Go
	if goCmd == "" {
		goCmd = "go"
	}
	what := p.Module + "@" + p.Version + " " + p.Package
	if _, err := exec.LookPath(goCmd); err != nil {
		// A release run (no checkout) on a machine without Go lands here.
		return "", false, fmt.Errorf("build %s: this image is built from its Go module, which needs the Go toolchain (%s: %v): install Go (https://go.dev/dl), or build the image yourself and declare it by archive or ref", what, goCmd, err)
	}
	// The toolchain and target are part of the key: a newer Go or another
	// architecture is another program.
	goEnv, err := p.run(ctx, goCmd, os.TempDir(), "env", "GOVERSION", "GOARCH")
	if err != nil {
		return "", false, fmt.Errorf("build %s: %w", what, err)
	}
	sum := sha256.Sum256([]byte(what + "\n" + goEnv))
	dir := filepath.Join(p.CacheDir, "go-modules", strings.NewReplacer("/", "_", "@", "_").Replace(p.Module)+"-"+p.Version+"-"+hex.EncodeToString(sum[:6]))
	bin = filepath.Join(dir, p.BinaryName())
	if _, err := os.Stat(bin); err == nil {
		return bin, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("build %s: %w (is the cache directory %s writable? --cache-dir chooses another)", what, err, p.CacheDir)
	}
	work, err := os.MkdirTemp(dir, "work-")
	if err != nil {
		return "", false, fmt.Errorf("build %s: %w", what, err)
	}
	defer os.RemoveAll(work)
	out, err := p.run(ctx, goCmd, work, "mod", "download", "-json", p.Module+"@"+p.Version)
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal([]byte(out), &info); err != nil || jerr != nil || info.Error != "" || info.Dir == "" {
		return "", false, fmt.Errorf("build %s: go mod download: %v %s (is the Go module proxy reachable, and does %s exist at %s?)", what, err, info.Error, p.Module, p.Version)
	}
	// The module cache is read-only and -mod=mod may complete go.sum, so
	// the build runs in a copy.
	src := filepath.Join(work, "src")
	if err := os.CopyFS(src, os.DirFS(info.Dir)); err != nil {
		return "", false, fmt.Errorf("build %s: copy the module source: %w", what, err)
	}
	tmp := filepath.Join(work, p.BinaryName())
	// -buildmode=exe: a package that is not main is an error, not an
	// archive written where the program should be.
	if _, err := p.run(ctx, goCmd, src, "build", "-buildmode=exe", "-trimpath", "-ldflags=-s -w", "-o", tmp, p.Package); err != nil {
		return "", false, fmt.Errorf("build %s: %w", what, err)
	}
	// Renamed into place: a reader (or a run beside this one) never sees
	// half a program.
	if err := os.Rename(tmp, bin); err != nil {
		return "", false, fmt.Errorf("build %s: %w", what, err)
	}
	return bin, false, nil
}

// run runs the go command in dir for a build outside idharness's module:
// no workspace, the module's own requirements (-mod=mod: it may have no
// vendor directory in sync), this machine's toolchain, no cgo (the image
// has no C library of its own for the program).
func (p ModuleProgram) run(ctx context.Context, goCmd, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
