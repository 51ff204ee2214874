package nodeimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/idharness/idharness/internal/dockerenv"
)

// baseImageRepository holds the imported root file systems.
const baseImageRepository = "idharness.local/kind-base"

// writeAssets copies the embedded assets to dir.
func writeAssets(dir string) error {
	return fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(p, "assets"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
}

// mmdebstrapArgs returns the arguments that build the root file system
// as a tar archive at out, running the customize hook from assetsDir.
func (b *Builder) mmdebstrapArgs(out, kindFiles, assetsDir string) []string {
	args := []string{
		"--mode=root", "--variant=minbase", "--format=tar",
		"--include=" + strings.Join(rootfsPackages, ","),
		"--aptopt=Acquire::Retries \"3\"",
		"--customize-hook=sh " + shellQuote(filepath.Join(assetsDir, "customize-rootfs.sh")) + ` "$1" ` + shellQuote(kindFiles) + " " + shellQuote(assetsDir),
		b.versions.Debian, out,
	}
	return append(args, b.mirrors...)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// rootfsTar builds (or reuses) the node's root file system archive.
func (b *Builder) rootfsTar(ctx context.Context, k keys) (string, error) {
	path := filepath.Join(b.cacheDir, "rootfs", b.versions.Debian+"-"+k.rootfs[:12]+".tar")
	err := b.phase("root file system (mmdebstrap "+b.versions.Debian+")", func(st *status) error {
		hit, err := cached(path, func(tmp string) error {
			kindDir, _, err := b.modDownload(ctx, "sigs.k8s.io/kind@"+b.kindVersion)
			if err != nil {
				return err
			}
			kindFiles := filepath.Join(kindDir, "images", "base", "files")
			if _, err := os.Stat(filepath.Join(kindFiles, "usr", "local", "bin", "entrypoint")); err != nil {
				return fmt.Errorf("kind %s module has no node files at %s", b.kindVersion, kindFiles)
			}
			assetsDir, err := os.MkdirTemp("", "idharness-node-assets-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(assetsDir)
			if err := writeAssets(assetsDir); err != nil {
				return err
			}
			// mmdebstrap works in a temporary root under TMPDIR with /proc,
			// /sys and /dev mounted into it. Give it a directory of ours, so
			// that whatever an interrupted run leaves there can be cleaned.
			scratch := filepath.Join(b.cacheDir, "work", "mmdebstrap-tmp")
			if err := cleanScratch(scratch); err != nil {
				return err
			}
			defer cleanScratch(scratch)
			if err := os.MkdirAll(scratch, 0o755); err != nil {
				return err
			}
			cmd := exec.CommandContext(ctx, "mmdebstrap", b.mmdebstrapArgs(tmp, kindFiles, assetsDir)...)
			cmd.Env = append(os.Environ(), "TMPDIR="+scratch)
			// On cancellation, terminate its whole process group (its workers
			// too); SIGKILL follows after WaitDelay.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
			cmd.WaitDelay = 15 * time.Second
			// mmdebstrap's "I:" lines name its steps (downloading,
			// extracting, installing, the customize hook, the tarball):
			// each is logged with the time since it started.
			start := time.Now()
			var out bytes.Buffer
			ws := []io.Writer{&out, &lineWriter{fn: func(line string) {
				if step, ok := strings.CutPrefix(line, "I: "); ok {
					st.set(step)
					b.log.Info("mmdebstrap", "step", step, "elapsed", time.Since(start).Round(time.Second))
				}
			}}}
			if b.out != nil {
				ws = append(ws, b.out)
			}
			cmd.Stdout = io.MultiWriter(ws...)
			cmd.Stderr = cmd.Stdout
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("mmdebstrap: %w\n%s", err, tail(out.String(), 30))
			}
			return nil
		})
		if hit {
			b.log.Info("cached", "rootfs", path)
		}
		return err
	})
	return path, err
}

// baseImage imports the root file system into Docker (once per key) and
// returns the image name.
func (b *Builder) baseImage(ctx context.Context, k keys) (string, error) {
	tarPath, err := b.rootfsTar(ctx, k)
	if err != nil {
		return "", err
	}
	name := baseImageRepository + ":" + b.versions.Debian + "-" + k.rootfs[:12]
	err = b.phase("import base image", func(*status) error {
		if _, err := dockerenv.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", name); err == nil {
			b.log.Info("cached", "image", name)
			return nil
		}
		_, err := dockerenv.Run(ctx, nil, "import",
			"--change", "ENV container=docker",
			"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
			tarPath, name)
		return err
	})
	return name, err
}

// mountsUnder returns the mount points below dir, deepest first.
func mountsUnder(mounts, dir string) []string {
	var out []string
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			// /proc/mounts escapes spaces and such as octal.
			mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
			if strings.HasPrefix(mp, prefix) {
				out = append(out, mp)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// cleanScratch detaches every mount below dir and removes it. It refuses to
// remove anything while a mount remains, so host files mounted there are
// never deleted.
func cleanScratch(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	for _, mp := range mountsUnder(readMounts(), dir) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount leftover %s: %w", mp, err)
		}
	}
	if left := mountsUnder(readMounts(), dir); len(left) > 0 {
		return fmt.Errorf("mounts remain under %s (%s); unmount them and remove the directory", dir, strings.Join(left, ", "))
	}
	return os.RemoveAll(dir)
}

func readMounts() string {
	b, _ := os.ReadFile("/proc/self/mounts")
	return string(b)
}
