package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/nodeimage"
)

// nodeImageFlags are the flags that choose what the offline node image holds.
type nodeImageFlags struct {
	versions nodeimage.Versions
	cacheDir string
	force    bool
	nice     int
}

func (f *nodeImageFlags) register(cmd *cobra.Command) {
	f.versions = nodeimage.DefaultVersions()
	fl := cmd.Flags()
	fl.StringVar(&f.versions.Kubernetes, "kubernetes-version", f.versions.Kubernetes, "Kubernetes release of the node image")
	fl.StringVar(&f.versions.Etcd, "etcd-version", f.versions.Etcd, "etcd release (what `kubeadm config images list` prints, without -0)")
	fl.StringVar(&f.versions.CoreDNS, "coredns-version", f.versions.CoreDNS, "CoreDNS release")
	fl.StringVar(&f.versions.Pause, "pause-version", f.versions.Pause, "pause image tag")
	fl.StringVar(&f.versions.Crictl, "crictl-version", f.versions.Crictl, "crictl release")
	fl.StringVar(&f.cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "cache directory (or IDHARNESS_CACHE_DIR)")
	fl.BoolVar(&f.force, "force", false, "rebuild the node image even if one with the same content key exists")
	fl.IntVar(&f.nice, "nice", 10, "niceness of the Go builds (0: none)")
}

func (f *nodeImageFlags) builder(verbose bool) (*nodeimage.Builder, error) {
	opts := []nodeimage.Option{
		nodeimage.WithVersions(f.versions),
		nodeimage.WithCacheDir(f.cacheDir),
		nodeimage.WithForce(f.force),
		nodeimage.WithNice(f.nice),
		nodeimage.WithLogger(slog.Default()),
	}
	if verbose {
		opts = append(opts, nodeimage.WithCommandOutput(os.Stderr))
	}
	return nodeimage.New(opts...)
}

func newImageCommand() *cobra.Command {
	img := &cobra.Command{
		Use:   "image",
		Short: "Node images for idharness clusters",
	}
	var f nodeImageFlags
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the offline kind node image (no container registry needed)",
		Long: `Build a kind node image from Debian packages and Go modules only: a root
file system by mmdebstrap, Kubernetes, etcd, CoreDNS, crictl and pause built
from their Go modules, and the control-plane images kubeadm expects imported
into the node's containerd. Products are cached under content keys in the
cache directory, so a second build with nothing changed takes seconds.

The image name is printed on standard output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			verbose, _ := cmd.Flags().GetBool("verbose")
			b, err := f.builder(verbose)
			if err != nil {
				return err
			}
			res, err := b.Build(cmd.Context())
			if err != nil {
				return fmt.Errorf("build node image: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Image)
			return nil
		},
	}
	f.register(build)
	img.AddCommand(build, newProgramImageCommand())
	return img
}
