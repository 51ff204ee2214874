package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/clientimage"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/internal/release"
	"github.com/idharness/idharness/internal/run"
)

func newReleaseCommand() *cobra.Command {
	var (
		o            release.Options
		clientImages []string
		cacheDir     string
		verify       bool
	)
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Build a release: binaries and every image, per platform, with checksums and a manifest",
		Long: `release builds, from the idharness source tree, what idharness run needs where there is
no source tree: for each --platform the idharness and fakeimds binaries and every image a run
deploys (fakeimds, probe, vault, the node agent, the webhook, and the language clients' images)
as Docker image archives, with release.json (version, commit, files, images with their refs
and digests) and SHA256SUMS. Run the release's idharness binary and it loads its images from
the directory it is in. docs/release.md describes the layout; make release calls this.

With --verify it checks an existing release's SHA256SUMS instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verify {
				if err := release.VerifySums(o.OutDir); err != nil {
					return fmt.Errorf("release %s: %w", o.OutDir, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: every file matches %s\n", o.OutDir, release.SumsFile)
				return nil
			}
			if o.ModuleDir == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				o.ModuleDir = wd
			}
			if _, err := os.Stat(filepath.Join(o.ModuleDir, release.CLIPackage)); err != nil {
				return fmt.Errorf("%s is not an idharness source tree (no %s): run release from the module root, or give --source", o.ModuleDir, release.CLIPackage)
			}
			o.Log = slog.Default()
			o.Programs = run.ReleasePrograms()
			var err error
			o.Clients, o.ClientRoot, err = run.ReleaseClients(run.Options{ClientImages: clientImages, CacheDir: cacheDir, Log: o.Log},
				clientimage.SetupScript(o.ModuleDir, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			start := time.Now()
			m, err := release.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "release %s (%s) in %s, %s\n", m.Version, m.Commit, o.OutDir, time.Since(start).Round(time.Second))
			for _, p := range m.Platforms {
				var size int64
				for _, f := range p.Files {
					size += f.Size
				}
				var imgs []string
				for _, i := range p.Images {
					imgs = append(imgs, i.Name)
				}
				fmt.Fprintf(out, "  %-12s %4d MiB  %s\n", p.Name(), size>>20, strings.Join(imgs, " "))
				for _, mi := range p.Missing {
					fmt.Fprintf(out, "  %-12s no %s image %s: %s\n", "", mi.Kind, mi.Name, mi.Why)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.OutDir, "output", filepath.Join("_output", "release"), "directory to write the release to (its platform directories, release.json and SHA256SUMS are replaced)")
	fl.StringVar(&o.ModuleDir, "source", "", "idharness source tree (default: current directory)")
	fl.StringVar(&o.Version, "version", "", "release version (default: git describe --tags --always --dirty)")
	fl.StringVar(&o.Commit, "commit", "", "commit recorded in the manifest (default: git rev-parse HEAD)")
	fl.StringSliceVar(&o.Platforms, "platform", []string{"linux/amd64", "linux/arm64"}, "platforms to build (GOOS/GOARCH); another architecture's client images are built under qemu-user (hack/binfmt.sh, run when needed)")
	fl.StringSliceVar(&clientImages, "client-images", nil, "client programs to package (idharness clients list): none, all, or program names; default as idharness run's: every program not built only on request")
	fl.StringVar(&cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "cache directory of the client images' roots (or IDHARNESS_CACHE_DIR)")
	fl.BoolVar(&verify, "verify", false, "check the release in --output against its SHA256SUMS instead of building one")
	return cmd
}
