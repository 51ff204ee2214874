package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/nodeimage"
)

// clusterFlags are the flags shared by the cluster commands.
type clusterFlags struct {
	name       string
	kubeconfig string
	existing   string
	cacheDir   string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", envOr("IDHARNESS_CLUSTER", cluster.DefaultName), "kind cluster name (or IDHARNESS_CLUSTER)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig path to write (default <cache>/clusters/<name>/kubeconfig)")
	fl.StringVar(&f.existing, "existing-kubeconfig", "", "use the existing cluster behind this kubeconfig (AKS or any other); nothing is created or deleted")
	fl.StringVar(&f.cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "cache directory (or IDHARNESS_CACHE_DIR)")
}

func (f *clusterFlags) options() []cluster.Option {
	return []cluster.Option{
		cluster.WithName(f.name),
		cluster.WithKubeconfig(f.kubeconfig),
		cluster.WithExistingKubeconfig(f.existing),
		cluster.WithCacheDir(f.cacheDir),
		cluster.WithLogger(slog.Default()),
	}
}

// checkNodeImage rejects an explicitly empty --node-image (or a blank
// IDHARNESS_NODE_IMAGE), which would otherwise mean auto without saying so.
func checkNodeImage(cmd *cobra.Command, image string) error {
	if strings.TrimSpace(image) != "" {
		return nil
	}
	what := "--node-image is empty"
	if !cmd.Flags().Changed("node-image") {
		what = "IDHARNESS_NODE_IMAGE is blank"
	}
	return fmt.Errorf("%s: give one of auto, offline, published, or an image name such as %s; or leave it out for auto (kind's published image when it can be had, else the offline build)",
		what, cluster.PublishedImage(nodeimage.DefaultVersions().Kubernetes))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newClusterCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Create, inspect and delete the kind clusters idharness runs on",
	}
	c.AddCommand(newClusterCreateCommand(), newClusterDeleteCommand(), newClusterStatusCommand(), newImageCommand())
	return c
}

func newClusterCreateCommand() *cobra.Command {
	var (
		f         clusterFlags
		nodeImage string
		workers   int
		version   string
		keep      bool
		reuse     bool
		wait      time.Duration
		mirrors   []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a kind cluster (or reuse a healthy one of the same name)",
		Long: `Create a kind cluster through kind's Go library and wait until its nodes are
Ready and kube-system is Running. A healthy cluster of the same name is reused;
an unhealthy one is replaced.

--node-image chooses the node image:
  auto       kind's published image if present or pullable, else the offline build (default)
  offline    the offline image (built and cached if needed; no registry used)
  published  kind's published image only
  NAME       any image name
--registry-mirror HOST=ENDPOINT makes the nodes pull HOST's images from ENDPOINT
(plain HTTP allowed for it alone), e.g. localhost:5001=http://idh-registry:5000 for
the registry of ` + "`idharness registry start`" + ` (docs/registry.md).
The kubeconfig path is printed on standard output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNodeImage(cmd, nodeImage); err != nil {
				return err
			}
			start := time.Now()
			opts := append(f.options(),
				cluster.WithNodeImage(nodeImage),
				cluster.WithWorkers(workers),
				cluster.WithKubernetesVersion(version),
				cluster.WithKeepOnFailure(keep),
				cluster.WithReuse(reuse),
				cluster.WithWaitTimeout(wait),
			)
			if verbose, _ := cmd.Flags().GetBool("verbose"); verbose {
				opts = append(opts, cluster.WithNodeImageOptions(nodeimage.WithCommandOutput(cmd.ErrOrStderr())))
			}
			mopts, err := mirrorOptions(mirrors)
			if err != nil {
				return err
			}
			c, err := cluster.New(append(opts, mopts...)...)
			if err != nil {
				return err
			}
			info, err := c.Create(cmd.Context())
			if err != nil {
				return fmt.Errorf("cluster %s: %w", f.name, err)
			}
			slog.Info("cluster ready", "cluster", info.Name, "image", info.NodeImage, "reused", info.Reused,
				"health", info.Health.String(), "duration", time.Since(start).Round(100*time.Millisecond))
			fmt.Fprintln(cmd.OutOrStdout(), info.Kubeconfig)
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&nodeImage, "node-image", envOr("IDHARNESS_NODE_IMAGE", cluster.NodeImageAuto), "auto, offline, published, or an image name (or IDHARNESS_NODE_IMAGE)")
	fl.IntVar(&workers, "workers", 0, "number of worker nodes")
	fl.StringVar(&version, "kubernetes-version", nodeimage.DefaultVersions().Kubernetes, "Kubernetes release of the nodes")
	fl.BoolVar(&keep, "keep-on-failure", false, "keep the nodes of a failed creation for inspection")
	fl.BoolVar(&reuse, "reuse", true, "reuse a healthy cluster of the same name")
	fl.DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for Ready nodes and Running system pods")
	fl.StringArrayVar(&mirrors, "registry-mirror", nil, "HOST=ENDPOINT: the nodes pull HOST's images from ENDPOINT, e.g. localhost:5001=http://idh-registry:5000 (idharness registry start); repeatable")
	return cmd
}

func newClusterDeleteCommand() *cobra.Command {
	var (
		f   clusterFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a kind cluster, or --all clusters idharness created",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				names, err := cluster.DeleteAll(cmd.Context(), f.options()...)
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %d cluster(s)%s\n", len(names), listSuffix(names))
				return err
			}
			c, err := cluster.New(f.options()...)
			if err != nil {
				return err
			}
			return c.Delete(cmd.Context())
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "delete every cluster idharness created (labelled nodes and recorded clusters) and leftover build containers")
	return cmd
}

func listSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}

func newClusterStatusCommand() *cobra.Command {
	var (
		f      clusterFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether a cluster exists, its nodes and its health",
		Long:  "Show whether a cluster exists, its nodes and its health. Exits non-zero when it does not exist or is not healthy.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cluster.New(f.options()...)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(s); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "cluster:    %s\n", s.Name)
				fmt.Fprintf(out, "exists:     %v\n", s.Exists)
				if s.Exists {
					fmt.Fprintf(out, "idharness:  %v\n", s.Managed || c.Existing())
					fmt.Fprintf(out, "nodes:      %s\n", strings.Join(s.Nodes, ", "))
					fmt.Fprintf(out, "node image: %s\n", s.NodeImage)
					fmt.Fprintf(out, "kubeconfig: %s\n", s.Kubeconfig)
					if s.Health != nil {
						fmt.Fprintf(out, "health:     %s\n", s.Health)
					} else {
						fmt.Fprintf(out, "health:     unknown (%s)\n", s.HealthErr)
					}
				}
			}
			switch {
			case !s.Exists:
				return fmt.Errorf("cluster %s does not exist (idharness cluster create --name %s)", s.Name, s.Name)
			case s.Health == nil || !s.Health.Healthy():
				return fmt.Errorf("cluster %s is not healthy", s.Name)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}
