package images

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/idharness/idharness/internal/images/imagestest"
)

func TestModuleProgramValidate(t *testing.T) {
	good := ModuleProgram{Module: "github.com/Azure/aad-pod-identity", Version: "v1.8.17", Package: "./cmd/nmi"}
	tests := []struct {
		name   string
		change func(*ModuleProgram)
		want   string // "" for valid
		bin    string
	}{
		{name: "good", change: func(*ModuleProgram) {}, bin: "nmi"},
		{name: "module root", change: func(p *ModuleProgram) { p.Module, p.Package, p.Version = "example.com/app/v2", ".", "v2.0.0" }, bin: "app"},
		{name: "pseudo-version", change: func(p *ModuleProgram) { p.Version = "v0.0.0-20240102150405-abcdefabcdef" }, bin: "nmi"},
		{name: "no module", change: func(p *ModuleProgram) { p.Module = "" }, want: "module: "},
		{name: "module not a path", change: func(p *ModuleProgram) { p.Module = "aad pod identity" }, want: "module: "},
		{name: "latest", change: func(p *ModuleProgram) { p.Version = "latest" }, want: "version: \"latest\" is not a version"},
		{name: "branch", change: func(p *ModuleProgram) { p.Version = "master" }, want: "version: "},
		{name: "not canonical", change: func(p *ModuleProgram) { p.Version = "v1.8" }, want: "version: "},
		{name: "major version mismatch", change: func(p *ModuleProgram) { p.Version = "v2.0.0" }, want: "version: "},
		{name: "package without ./", change: func(p *ModuleProgram) { p.Package = "cmd/nmi" }, want: "package: "},
		{name: "package outside the module", change: func(p *ModuleProgram) { p.Package = "./../x" }, want: "package: "},
		{name: "package pattern", change: func(p *ModuleProgram) { p.Package = "./cmd/..." }, want: "package: "},
		{name: "package not clean", change: func(p *ModuleProgram) { p.Package = "./cmd//nmi" }, want: "package: "},
		{name: "no package", change: func(p *ModuleProgram) { p.Package = "" }, want: "package: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.change(&p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil || p.BinaryName() != tt.bin {
					t.Fatalf("error %v, binary %q; want none and %q", err, p.BinaryName(), tt.bin)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want one starting %q", err, tt.want)
			}
		})
	}
}

// TestBuildModule builds a module's main package from a module proxy (a
// file:// one, so the test runs offline), runs it, and checks that a
// second build is the cached program.
func TestBuildModule(t *testing.T) {
	mod := module.Version{Path: "example.test/agent", Version: "v1.2.3"}
	imagestest.GoProxy(t, mod, map[string]string{
		"go.mod":              "module example.test/agent\n\ngo 1.22\n",
		"cmd/agent/main.go":   "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"agent from the proxy\") }\n",
		"internal/x/x.go":     "package x\n",
		"cmd/broken/main.go":  "package main\n\nfunc main() { undefined() }\n",
		"cmd/agent/README.md": "not Go\n",
	})
	cache := t.TempDir()
	p := ModuleProgram{Module: mod.Path, Version: mod.Version, Package: "./cmd/agent", CacheDir: cache}
	bin, cached, err := BuildModule(context.Background(), p)
	if err != nil || cached {
		t.Fatalf("build: %v (cached %v)", err, cached)
	}
	if !strings.HasPrefix(bin, filepath.Join(cache, "go-modules")+string(filepath.Separator)) || filepath.Base(bin) != "agent" {
		t.Errorf("program at %s, want <cache>/go-modules/…/agent", bin)
	}
	out, err := exec.Command(bin).Output()
	if err != nil || string(out) != "agent from the proxy\n" {
		t.Fatalf("running the program: %q %v", out, err)
	}
	st, _ := os.Stat(bin)
	again, cached, err := BuildModule(context.Background(), p)
	if err != nil || !cached || again != bin {
		t.Fatalf("second build: %s %v %v, want the cached %s", again, cached, err, bin)
	}
	if st2, _ := os.Stat(bin); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the cached program was rebuilt")
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "work-*")); len(m) != 0 {
		t.Errorf("work directories left behind: %v", m)
	}

	tests := []struct {
		name string
		p    ModuleProgram
		want string
	}{
		{"unknown version", ModuleProgram{Module: mod.Path, Version: "v1.9.9", Package: "./cmd/agent"}, "go mod download"},
		{"unknown package", ModuleProgram{Module: mod.Path, Version: mod.Version, Package: "./cmd/nope"}, "go build"},
		{"package that does not compile", ModuleProgram{Module: mod.Path, Version: mod.Version, Package: "./cmd/broken"}, "undefined"},
		{"not a main package", ModuleProgram{Module: mod.Path, Version: mod.Version, Package: "./internal/x"}, "go build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.CacheDir = cache
			_, _, err := BuildModule(context.Background(), tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), mod.Path+"@"+tt.p.Version) {
				t.Errorf("error %v, want one naming %s@%s and containing %q", err, mod.Path, tt.p.Version, tt.want)
			}
		})
	}
}

// TestBuildModuleWithoutGo: a machine without the Go toolchain (a
// release run, no checkout) is told what the build needs and the other
// ways to bring the image.
func TestBuildModuleWithoutGo(t *testing.T) {
	_, _, err := BuildModule(context.Background(), ModuleProgram{Module: "example.test/agent", Version: "v1.2.3", Package: "./cmd/agent", CacheDir: t.TempDir(), Go: "/nonexistent/go"})
	if err == nil || !strings.Contains(err.Error(), "needs the Go toolchain") || !strings.Contains(err.Error(), "declare it by archive or ref") {
		t.Fatalf("error %v", err)
	}
}
