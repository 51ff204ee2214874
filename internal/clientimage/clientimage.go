// Package clientimage builds the image of a client program (clients/)
// without a registry, as the node image is built: a Debian root file
// system made by mmdebstrap with the program's runtime packages, the
// program in /client, prepared (its pinned packages installed), and the
// probe binary, which drives the program over the line protocol in a pod.
//
// The root file system is the slow part (apt downloads, pip, npm): it is
// cached under the cache directory, keyed by everything it is made from,
// so a warm build only adds the probe's layer (seconds).
//
// A root of another architecture (a release's linux/arm64 images on an
// amd64 machine) is made by mmdebstrap --arch with the target's programs
// (maintainer scripts, an image's prepare step) run under qemu-user,
// registered with binfmt_misc (hack/binfmt.sh).
package clientimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/internal/images"
)

// recipe changes whenever the way roots are built changes, so that no
// cached root of an older recipe is reused.
const recipe = "3"

// Suite is the Debian release the images are built from, as the node
// image's.
const Suite = "bookworm"

// Dir is where a program lives in its image.
const Dir = "/client"

// Builder builds client images.
type Builder struct {
	// CacheDir holds the cached roots (client-images/) and prepared
	// programs (clients/).
	CacheDir string
	// Log receives progress.
	Log *slog.Logger
	// Out, when set, receives mmdebstrap's and prepare's output.
	Out io.Writer
	// Arch is the GOARCH of the roots (amd64 or arm64); empty means this
	// machine's. Another one's runs its programs under qemu-user.
	Arch string
	// BinfmtDir is where binfmt_misc's handlers are listed; empty means
	// BinfmtDir.
	BinfmtDir string
	// SetupEmulation, when set, is run once when Arch's programs cannot
	// run here (SetupScript: hack/binfmt.sh).
	SetupEmulation func(ctx context.Context, goarch string) error
}

// arch is the GOARCH of b's roots.
func (b *Builder) arch() string {
	if b.Arch == "" {
		return runtime.GOARCH
	}
	return b.Arch
}

// foreign says whether b's roots are of another architecture than this
// machine's.
func (b *Builder) foreign() bool { return b.arch() != runtime.GOARCH }

// mirrors are the Debian sources the roots are built from.
var mirrors = []string{
	"deb http://deb.debian.org/debian " + Suite + " main",
	"deb http://deb.debian.org/debian " + Suite + "-updates main",
	"deb http://deb.debian.org/debian-security " + Suite + "-security main",
}

// Root returns the cached root file system archive of p, building it
// first when needed.
func (b *Builder) Root(ctx context.Context, p *clients.Program) (string, error) {
	progKey, err := p.Key()
	if err != nil {
		return "", err
	}
	hostPkgs, err := hostPackageVersions(ctx, p.Image.HostPackages)
	if err != nil {
		return "", err
	}
	if err := checkArch(b.arch()); err != nil {
		return "", err
	}
	key := rootKey(p, b.arch(), hostPkgs, progKey)
	dir := filepath.Join(b.CacheDir, "client-images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, p.Name+"-"+key[:12]+".tar")
	if _, err := os.Stat(path); err == nil {
		b.Log.Info("client image root cached", "program", p.Name, "arch", b.arch(), "root", path)
		return path, nil
	}
	if b.foreign() {
		if err := b.ensureEmulation(ctx); err != nil {
			return "", fmt.Errorf("client image of %s: %w", p.Name, err)
		}
	}
	start := time.Now()
	b.Log.Info("building client image root (first time only: Debian packages and the program's own)", "program", p.Name, "arch", b.arch(), "packages", strings.Join(packages(p), ","))
	work, err := os.MkdirTemp(b.CacheDir, "client-image-work-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	hooks, err := b.hooks(ctx, p, work, hostPkgs)
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	args := []string{"--mode=root", "--variant=minbase", "--format=tar",
		"--include=" + strings.Join(packages(p), ","),
		"--aptopt=Acquire::Retries \"3\"",
		// Not /usr/share/man: update-alternatives (openjdk's) needs it
		// (the last hook removes it).
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
		// /usr merged by mmdebstrap's hook, which installs usr-is-merged:
		// otherwise init-system-helpers pulls in usrmerge and with it Perl,
		// 4,000 files and 25 MB in every root.
		"--hook-dir=" + mergedUsrHooks}
	if b.foreign() {
		args = append(args, "--arch="+b.arch())
	}
	for _, h := range hooks {
		args = append(args, "--customize-hook="+h)
	}
	args = append(append(args, Suite, tmp), mirrors...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	scratch := filepath.Join(work, "tmp")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return "", err
	}
	cmd.Env = append(os.Environ(), "TMPDIR="+scratch)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	ws := []io.Writer{&out}
	if b.Out != nil {
		ws = append(ws, b.Out)
	}
	cmd.Stdout = io.MultiWriter(ws...)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("client image of %s: mmdebstrap: %w (install it with make prereqs)\n%s", p.Name, err, tail(out.String(), 40))
	}
	// Every binary must be the target's: a host-prepared program's native
	// module, or a host package copied in, would not run in its pods.
	if err := CheckRootArch(tmp, b.arch()); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("client image of %s: %w", p.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	fi, _ := os.Stat(path)
	b.Log.Info("client image root built", "program", p.Name, "arch", b.arch(), "elapsed", time.Since(start).Round(time.Second), "size_mb", fi.Size()>>20)
	return path, nil
}

// rootKey is the cache key of p's root for goarch: everything the root
// is made from.
func rootKey(p *clients.Program, goarch, hostPkgs, progKey string) string {
	return hash(recipe, goarch, Suite, strings.Join(packages(p), ","), strings.Join(mirrors, "|"), hostPkgs, p.Image.Prepare, progKey)
}

// packages are the Debian packages of p's image.
func packages(p *clients.Program) []string {
	out := []string{"ca-certificates"}
	for _, d := range p.Runtime.Debian {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// hooks returns mmdebstrap's customize hooks for p: the host packages'
// files (hostPkgs: "name=version" as hostPackageVersions gives; for
// another architecture its build of them), the program in /client, its
// preparation, and clean-up.
func (b *Builder) hooks(ctx context.Context, p *clients.Program, work, hostPkgs string) ([]string, error) {
	var hooks []string
	if len(p.Image.HostPackages) > 0 {
		t := filepath.Join(work, "host-packages.tar")
		var err error
		if b.foreign() {
			err = crossPackagesTar(ctx, t, work, b.arch(), strings.Split(hostPkgs, ","))
		} else {
			err = hostPackagesTar(ctx, t, p.Image.HostPackages)
		}
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, "tar-in "+t+" /")
	}
	src := ""
	if p.Image.Prepare == "host" {
		dir, err := p.Prepare(ctx, b.CacheDir, b.Out)
		if err != nil {
			return nil, err
		}
		src = dir
	} else {
		src = filepath.Join(work, "program")
		if err := copyProgram(src, p); err != nil {
			return nil, err
		}
	}
	t := filepath.Join(work, "program.tar")
	if err := dirTar(t, src); err != nil {
		return nil, err
	}
	hooks = append(hooks, `mkdir -p "$1`+Dir+`"`, "tar-in "+t+" "+Dir)
	if p.Image.Prepare == "image" && len(p.PrepareCmd) > 0 {
		// The package registries are reached as from this machine: through
		// its proxy, if any, trusting its CA bundle (which may hold a
		// TLS-inspecting proxy's CA that the image's Debian bundle lacks).
		// The bundle is used for the build only and not kept in the image.
		env := buildEnv()
		in := ""
		if ca := hostCABundle(); ca != "" {
			hooks = append(hooks, "copy-in "+ca+" /tmp")
			in = "/tmp/" + filepath.Base(ca)
			for _, k := range []string{"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"} {
				env = append(env, k+"="+in)
			}
		}
		hooks = append(hooks, `chroot "$1" env `+shellJoin(env)+` sh -c 'cd `+Dir+` && `+shellJoin(p.PrepareCmd)+`'`)
		if in != "" {
			hooks = append(hooks, `rm -f "$1`+in+`"`)
		}
	}
	// Readable by the probe's non-root user; apt's lists and the manual
	// pages are not needed.
	hooks = append(hooks, `chmod -R a+rX "$1`+Dir+`"`, `rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/usr/share/man/*`)
	return hooks, nil
}

// buildEnv is the environment of a prepare run in an image's root: a
// plain PATH and HOME, and this machine's proxy settings.
func buildEnv() []string {
	env := []string{"PATH=" + images.DefaultPath, "HOME=/root"}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// hostCABundle returns this machine's CA bundle, if it has one.
func hostCABundle() string {
	for _, f := range []string{os.Getenv("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			return f
		}
	}
	return ""
}

// Image assembles p's image for goarch (empty: this machine's) from its
// root and the probe binary, both of that architecture.
func Image(root, probeBin, goarch string, p *clients.Program, name string) (images.Built, error) {
	rootLayer, err := images.CachedLayerFromFile(root)
	if err != nil {
		return images.Built{}, fmt.Errorf("client image %s: %w", name, err)
	}
	probeLayer, err := images.Layer([]images.File{{Path: "/usr/local/bin/probe", Source: probeBin, Mode: 0o755}})
	if err != nil {
		return images.Built{}, err
	}
	img, err := images.Assemble(images.Spec{
		Layers:     []v1.Layer{rootLayer, probeLayer},
		Entrypoint: []string{"/usr/local/bin/probe"},
		Env:        []string{"HOME=/tmp", "IDHARNESS_CLIENT_DIR=" + Dir, "PYTHONDONTWRITEBYTECODE=1"},
		User:       "65532:65532",
		WorkingDir: "/tmp",
		Labels:     map[string]string{images.LabelManaged: "true", images.LabelSource: "clients/" + p.Name},
		Arch:       goarch,
	})
	if err != nil {
		return images.Built{}, err
	}
	return images.Built{Name: name, Image: img}, nil
}

// hostPackageVersions returns "pkg=version" for each installed package.
func hostPackageVersions(ctx context.Context, pkgs []string) (string, error) {
	var out []string
	for _, pkg := range pkgs {
		v, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
		if err != nil || len(v) == 0 {
			return "", fmt.Errorf("the client image takes Debian package %s from this machine, which does not have it installed: install it (for Node.js 20, the nodejs package this machine kind ships)", pkg)
		}
		out = append(out, pkg+"="+string(v))
	}
	return strings.Join(out, ","), nil
}

// mergedUsrHooks is mmdebstrap's hook directory that merges /usr the
// way debootstrap does (Debian's mmdebstrap package ships it).
const mergedUsrHooks = "/usr/share/mmdebstrap/hooks/merged-usr"

// unneeded reports whether a host package's file is left out of an
// image: documentation and C headers, which no client runs (Node.js's
// are 85 MB and 3,000 files, written again into every node that unpacks
// the image).
func unneeded(path string) bool {
	for _, dir := range []string{"/usr/share/doc/", "/usr/share/man/", "/usr/include/"} {
		if strings.HasPrefix(path, dir) {
			return true
		}
	}
	return false
}

// hostPackagesTar writes the files of installed packages to a tar,
// leaving out the unneeded ones.
func hostPackagesTar(ctx context.Context, path string, pkgs []string) error {
	var files []images.File
	for _, pkg := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg", "-L", pkg).Output()
		if err != nil {
			return fmt.Errorf("list the files of package %s: %w", pkg, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := sc.Text()
			if unneeded(f) {
				continue
			}
			fi, err := os.Lstat(f)
			if err != nil || fi.IsDir() {
				continue
			}
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				l, err := os.Readlink(f)
				if err != nil {
					return err
				}
				files = append(files, images.File{Path: f, Link: l})
			case fi.Mode().IsRegular():
				files = append(files, images.File{Path: f, Source: f, Mode: int64(fi.Mode().Perm())})
			}
		}
	}
	return writeTar(path, files)
}

// copyProgram writes p's embedded files to dir.
func copyProgram(dir string, p *clients.Program) error {
	return os.CopyFS(dir, p.Files())
}

// dirTar writes dir's files to a tar, paths relative to dir.
func dirTar(path, dir string) error {
	var files []images.File
	err := filepath.Walk(dir, func(f string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, f)
		if rel == "." {
			return nil
		}
		p := "/" + filepath.ToSlash(rel)
		switch {
		case fi.IsDir():
			files = append(files, images.File{Path: p, Dir: true, Mode: 0o755})
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(f)
			if err != nil {
				return err
			}
			files = append(files, images.File{Path: p, Link: l})
		case fi.Mode().IsRegular():
			mode := int64(0o644)
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
			files = append(files, images.File{Path: p, Source: f, Mode: mode})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeTar(path, files)
}

// writeTar writes files as a tar at path.
func writeTar(path string, files []images.File) error {
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := images.WriteLayerTar(w, files); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
	}
	return strings.Join(q, " ")
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Name is the image name of program p with tag.
func Name(p *clients.Program, tag string) string {
	return "idharness.local/client-" + p.Name + ":" + tag
}
