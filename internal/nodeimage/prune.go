package nodeimage

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/idharness/idharness/internal/dockerenv"
)

// prune removes what earlier builds of the same Kubernetes version left and
// the current build replaced: older node and base images (unless a container
// still uses them) and older root file system and image archives.
func (b *Builder) prune(ctx context.Context, k keys, image, base string) {
	v := b.versions
	out, err := dockerenv.Run(ctx, nil, "images", "--format", "{{.Repository}}:{{.Tag}}", ImageRepository)
	if err == nil {
		for _, ref := range strings.Fields(out) {
			if ref != image && strings.HasPrefix(ref, ImageRepository+":"+v.Kubernetes+"-") {
				if _, err := dockerenv.Run(ctx, nil, "rmi", ref); err == nil {
					b.log.Info("pruned old node image", "image", ref)
				}
			}
		}
	}
	out, err = dockerenv.Run(ctx, nil, "images", "--format", "{{.Repository}}:{{.Tag}}", baseImageRepository)
	if err == nil {
		for _, ref := range strings.Fields(out) {
			if ref != base && strings.HasPrefix(ref, baseImageRepository+":"+v.Debian+"-") {
				if _, err := dockerenv.Run(ctx, nil, "rmi", ref); err == nil {
					b.log.Info("pruned old base image", "image", ref)
				}
			}
		}
	}
	keep := map[string]bool{
		filepath.Join(b.cacheDir, "rootfs", v.Debian+"-"+k.rootfs[:12]+".tar"):                      true,
		filepath.Join(b.cacheDir, "images", "control-plane-"+v.Kubernetes+"-"+k.images[:12]+".tar"): true,
	}
	for _, pattern := range []string{
		filepath.Join(b.cacheDir, "rootfs", v.Debian+"-*.tar"),
		filepath.Join(b.cacheDir, "images", "control-plane-"+v.Kubernetes+"-*.tar"),
	} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if !keep[m] && os.Remove(m) == nil {
				b.log.Info("pruned old cache file", "path", m)
			}
		}
	}
}
