package clientimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/idharness/idharness/internal/images"
)

// BinfmtDir is where the kernel lists its binfmt_misc handlers.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// EmulationScript registers qemu-user for an architecture (relative to
// the source tree).
const EmulationScript = "hack/binfmt.sh"

// arches maps a GOARCH to its qemu name and ELF machine.
var arches = map[string]struct {
	qemu    string
	machine elf.Machine
}{
	"amd64": {"x86_64", elf.EM_X86_64},
	"arm64": {"aarch64", elf.EM_AARCH64},
}

// checkArch says whether roots can be built for goarch at all.
func checkArch(goarch string) error {
	if _, ok := arches[goarch]; !ok {
		return fmt.Errorf("client images are built for amd64 and arm64, not %q", goarch)
	}
	return nil
}

// Emulated returns nil when this machine runs goarch's programs: it is
// its own architecture, or binfmt_misc (in dir) has an enabled qemu
// handler for it with flag F, which a chroot without qemu needs.
func Emulated(dir, goarch string) error {
	if err := checkArch(goarch); err != nil {
		return err
	}
	if goarch == runtime.GOARCH {
		return nil
	}
	q := arches[goarch].qemu
	f := filepath.Join(dir, "qemu-"+q)
	b, err := os.ReadFile(f)
	why := ""
	switch {
	case errors.Is(err, os.ErrNotExist):
		why = "no binfmt_misc handler " + f
	case err != nil:
		why = err.Error()
	case !strings.HasPrefix(string(b), "enabled\n"):
		why = f + " is disabled"
	default:
		for _, l := range strings.Split(string(b), "\n") {
			if flags, ok := strings.CutPrefix(l, "flags: "); ok && strings.Contains(flags, "F") {
				return nil
			}
		}
		why = f + " lacks flag F (fix binary), so a chroot without qemu cannot use it"
	}
	return fmt.Errorf("a linux/%s client image built on this %s machine runs %s programs under qemu-user, but %s: "+
		"run %s %s as root (it installs Debian's qemu-user-static and registers it with binfmt_misc)",
		goarch, runtime.GOARCH, goarch, why, EmulationScript, goarch)
}

// ensureEmulation checks emulation for b's architecture, running
// b.SetupEmulation once when it is missing.
func (b *Builder) ensureEmulation(ctx context.Context) error {
	err := b.emulated()
	if err == nil || b.SetupEmulation == nil || checkArch(b.arch()) != nil {
		return err
	}
	b.Log.Info("registering qemu-user emulation for client images", "arch", b.arch())
	if serr := b.SetupEmulation(ctx, b.arch()); serr != nil {
		return fmt.Errorf("%w\n(setting it up failed: %v)", err, serr)
	}
	return b.emulated()
}

// emulated is Emulated for b, and mmdebstrap's own need for another
// architecture: Debian's arch-test.
func (b *Builder) emulated() error {
	dir := b.BinfmtDir
	if dir == "" {
		dir = BinfmtDir
	}
	if err := Emulated(dir, b.arch()); err != nil {
		return err
	}
	if _, err := exec.LookPath("arch-test"); err != nil {
		return fmt.Errorf("mmdebstrap --arch=%s needs Debian's arch-test, which is not installed: run %s %s as root (or apt-get install arch-test)", b.arch(), EmulationScript, b.arch())
	}
	return nil
}

// SetupScript returns a SetupEmulation that runs the source tree's
// EmulationScript, its output to out.
func SetupScript(moduleDir string, out io.Writer) func(context.Context, string) error {
	return func(ctx context.Context, goarch string) error {
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(moduleDir, EmulationScript), goarch)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
}

// CheckRootArch reads the root archive at path and returns an error
// naming its ELF files built for another machine than goarch's, or none
// when it holds no ELF file at all (not a root).
func CheckRootArch(path, goarch string) error {
	if err := checkArch(goarch); err != nil {
		return err
	}
	want := arches[goarch].machine
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	var wrong []string
	elfs := 0
	hdr := make([]byte, 20)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read root %s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || h.Size < int64(len(hdr)) {
			continue
		}
		if _, err := io.ReadFull(tr, hdr); err != nil {
			return fmt.Errorf("read root %s: %s: %w", path, h.Name, err)
		}
		if string(hdr[:4]) != "\x7fELF" || hdr[5] != 1 { // little-endian only
			continue
		}
		elfs++
		if m := elf.Machine(binary.LittleEndian.Uint16(hdr[18:])); m != want {
			wrong = append(wrong, fmt.Sprintf("%s (%v)", h.Name, m))
		}
	}
	switch {
	case elfs == 0:
		return fmt.Errorf("root %s holds no ELF file", path)
	case len(wrong) > 0:
		n := len(wrong)
		if n > 5 {
			wrong = append(wrong[:5], "…")
		}
		return fmt.Errorf("root %s is for linux/%s (%v), but %d of its %d ELF files are not: %s", path, goarch, want, n, elfs, strings.Join(wrong, ", "))
	}
	return nil
}

// crossPackage says where another architecture's build of a host
// package (image.hostPackages) comes from: an npm package holding the
// upstream binaries, whose files are installed at the given paths.
type crossPackage struct {
	npm   func(goarch string) string
	files map[string]string // path in the npm package → path in the image
}

// crossPackages are the host packages known to have another
// architecture's build. Node.js: the nodejs package of this machine is
// NodeSource's (Debian 12's is 18), whose apt repository the project's
// machines do not reach; npm's node-linux-ARCH packages (those the npm
// package "node" installs) hold nodejs.org's release of each version.
var crossPackages = map[string]crossPackage{
	"nodejs": {
		npm: func(goarch string) string {
			return "node-linux-" + map[string]string{"amd64": "x64", "arm64": "arm64"}[goarch]
		},
		files: map[string]string{"package/bin/node": "/usr/bin/node"},
	},
}

// upstreamVersion returns a Debian version's upstream part
// (1:20.20.2-1nodesource1 → 20.20.2).
func upstreamVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}

// crossPackagesTar writes the goarch build of the host packages pkgs
// ("name=version" as hostPackageVersions gives) to a tar at path, their
// npm packages fetched into work.
func crossPackagesTar(ctx context.Context, path, work, goarch string, pkgs []string) error {
	var files []images.File
	for _, pv := range pkgs {
		name, version, _ := strings.Cut(pv, "=")
		cp, ok := crossPackages[name]
		if !ok {
			return fmt.Errorf("the image takes Debian package %s from this %s machine, and no source of its linux/%s build is known (internal/clientimage crossPackages): build this image on a %s machine",
				name, runtime.GOARCH, goarch, goarch)
		}
		spec := cp.npm(goarch) + "@" + upstreamVersion(version)
		dir := filepath.Join(work, "cross-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// npm pack checks the tarball against the registry's integrity.
		cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "--pack-destination", dir, spec)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("fetch %s's linux/%s build: npm pack %s: %w: %s", name, goarch, spec, err, tail(string(out), 10))
		}
		tgz := filepath.Join(dir, strings.TrimSpace(lastLine(string(out))))
		got, err := extractFiles(tgz, dir, cp.files)
		if err != nil {
			return fmt.Errorf("%s's linux/%s build (%s): %w", name, goarch, spec, err)
		}
		files = append(files, got...)
	}
	return writeTar(path, files)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// extractFiles writes the files of the .tgz at path that want names to
// dir and returns them as image files at their wanted paths.
func extractFiles(path, dir string, want map[string]string) ([]images.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	var out []images.File
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		to, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		dst := filepath.Join(dir, "files", filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(w, tr); err != nil {
			w.Close()
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		out = append(out, images.File{Path: to, Source: dst, Mode: 0o755})
	}
	if len(out) != len(want) {
		return nil, fmt.Errorf("%s lacks some of %v", path, want)
	}
	return out, nil
}
