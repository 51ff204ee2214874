package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Label keys set on every image idharness builds.
const (
	// LabelManaged marks images and containers that idharness created, so
	// that `idharness cluster delete --all` can find them.
	LabelManaged = "io.idharness.managed"
	// LabelSource records the Go package an image was built from.
	LabelSource = "io.idharness.source"
)

// GoProgram describes an image holding one statically linked Go program.
type GoProgram struct {
	// Package is the main package to build, such as "./cmd/fakeimds".
	Package string
	// ModuleDir is the directory `go build` runs in (the module root);
	// empty means the current directory.
	ModuleDir string
	// Image is the image name with tag, such as "idharness.local/fakeimds:dev".
	Image string
	// Args are the default arguments (the image's Cmd).
	Args []string
	// User is the default user; empty means 65532:65532 (nonroot).
	User string
	// Go is the go command; empty means "go".
	Go string
	// WorkDir receives the built binary; empty means a temporary directory.
	WorkDir string
	// Arch is the GOARCH to build for, and the image's architecture;
	// empty means the architecture this program runs on. Go programs
	// cross-compile with CGO disabled, so a release builds every
	// platform's images on one machine.
	Arch string
}

// arch returns p's target architecture.
func (p GoProgram) arch() string {
	if p.Arch == "" {
		return runtime.GOARCH
	}
	return p.Arch
}

// BinaryName returns the program's name: the last element of its package path.
func (p GoProgram) BinaryName() string {
	return path.Base(strings.TrimSuffix(filepath.ToSlash(p.Package), "/"))
}

// Validate reports a GoProgram that cannot be built.
func (p GoProgram) Validate() error {
	if p.Package == "" {
		return fmt.Errorf("image for a Go program: no main package given")
	}
	if p.Image == "" {
		return fmt.Errorf("image for %s: no image name given (for example idharness.local/%s:dev)", p.Package, p.BinaryName())
	}
	if _, err := tagOf(p.Image); err != nil {
		return err
	}
	if n := p.BinaryName(); n == "." || n == "/" || n == "" {
		return fmt.Errorf("image for %s: cannot name the program after package path %q", p.Image, p.Package)
	}
	return nil
}

// BuildGo compiles p with CGO disabled and returns its image: a minimal root
// layer and a layer with the program at /usr/local/bin/<name>, run as
// nonroot unless p.User says otherwise.
func BuildGo(ctx context.Context, p GoProgram) (img Built, err error) {
	if err := p.Validate(); err != nil {
		return Built{}, err
	}
	work := p.WorkDir
	if work == "" {
		work, err = os.MkdirTemp("", "idharness-image-")
		if err != nil {
			return Built{}, fmt.Errorf("image %s: %w", p.Image, err)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return Built{}, fmt.Errorf("image %s: %w", p.Image, err)
	}
	bin := filepath.Join(work, p.BinaryName())
	goCmd := p.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, p.Package)
	cmd.Dir = p.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.arch())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Built{}, fmt.Errorf("image %s: go build %s: %w\n%s", p.Image, p.Package, err, strings.TrimSpace(stderr.String()))
	}
	root, err := Layer(MinimalRoot())
	if err != nil {
		return Built{}, err
	}
	app, err := Layer([]File{{Path: "/usr/local/bin/" + p.BinaryName(), Source: bin, Mode: 0o755}})
	if err != nil {
		return Built{}, err
	}
	user := p.User
	if user == "" {
		user = "65532:65532"
	}
	i, err := Assemble(Spec{
		Layers:     []v1.Layer{root, app},
		Entrypoint: []string{"/usr/local/bin/" + p.BinaryName()},
		Cmd:        p.Args,
		User:       user,
		Labels:     map[string]string{LabelManaged: "true", LabelSource: p.Package},
		Arch:       p.arch(),
	})
	if err != nil {
		return Built{}, fmt.Errorf("image %s: %w", p.Image, err)
	}
	return Built{Name: p.Image, Image: i, Binary: bin}, nil
}
