package nodeimage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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
	err := b.phase("root file system (mmdebstrap "+b.versions.Debian+")", func() error {
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
			cmd := exec.CommandContext(ctx, "mmdebstrap", b.mmdebstrapArgs(tmp, kindFiles, assetsDir)...)
			// SIGTERM lets mmdebstrap unmount and remove its temporary root.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 30 * time.Second
			out, err := cmd.CombinedOutput()
			if b.out != nil {
				b.out.Write(out)
			}
			if err != nil {
				return fmt.Errorf("mmdebstrap: %w\n%s", err, tail(string(out), 30))
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
	err = b.phase("import base image", func() error {
		if _, err := docker(ctx, nil, "image", "inspect", "--format", "{{.Id}}", name); err == nil {
			b.log.Info("cached", "image", name)
			return nil
		}
		_, err := docker(ctx, nil, "import",
			"--change", "ENV container=docker",
			"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
			tarPath, name)
		return err
	})
	return name, err
}
