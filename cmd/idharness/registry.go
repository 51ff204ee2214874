package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/registry"
	"github.com/idharness/idharness/internal/run"
	"github.com/idharness/idharness/pkg/report"
)

func newRegistryCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "registry",
		Short: "Serve an OCI registry that kind nodes pull idharness's images from (docs/registry.md)",
	}
	c.AddCommand(newRegistryServeCommand(), newRegistryStartCommand(), newRegistryStopCommand())
	return c
}

func newRegistryServeCommand() *cobra.Command {
	var addr, dir string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an OCI registry (go-containerregistry's) in this process until interrupted",
		Long: `serve answers the OCI distribution API (push, pull, tags) on --addr over plain HTTP.
Manifests are kept in memory, blobs in --dir (in memory when empty): what is pushed lasts
as long as the process. ` + "`idharness registry start`" + ` runs this same command in a container
on the kind network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return registry.Serve(cmd.Context(), addr, dir, slog.Default(), func(a net.Addr) {
				fmt.Fprintln(cmd.OutOrStdout(), a.String())
			})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:5001", "address to listen on")
	cmd.Flags().StringVar(&dir, "dir", "", "directory for blobs (default: memory)")
	return cmd
}

func newRegistryStartCommand() *cobra.Command {
	var o registry.StartOptions
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run the registry as a Docker container on the kind network (built from this program; nothing is pulled)",
		Long: `start builds an image holding only this idharness program (no base image), runs it as the
container --name serving ` + "`registry serve`" + ` on port 5000, publishes that port on
127.0.0.1:--port for pushes from this machine and joins the kind network, where the nodes
reach it as http://NAME:5000. A running container of the same name and program is kept.

It prints the two flags that use it:
  idharness cluster create --registry-mirror localhost:PORT=http://NAME:5000 ...
  idharness run --image-registry localhost:PORT/idharness ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = slog.Default()
			s, err := registry.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			slog.Info("registry running", "container", s.Name, "image", s.Image, "push", s.Push, "nodes pull from", s.Endpoint)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "--registry-mirror %s\n--image-registry %s/idharness\n", s.Mirror(), s.Push)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", registry.DefaultContainer, "container name (the nodes resolve it on the kind network)")
	cmd.Flags().IntVar(&o.HostPort, "port", registry.DefaultHostPort, "port published on 127.0.0.1 for pushes")
	cmd.Flags().StringVar(&o.Network, "network", registry.KindNetwork, "Docker network to join (kind's)")
	return cmd
}

func newRegistryStopCommand() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Remove the registry container (and what was pushed to it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return registry.Stop(cmd.Context(), name)
		},
	}
	cmd.Flags().StringVar(&name, "name", registry.DefaultContainer, "container name")
	return cmd
}

// mirrorOptions turns --registry-mirror values into cluster options.
func mirrorOptions(values []string) ([]cluster.Option, error) {
	var opts []cluster.Option
	for _, v := range values {
		m, err := cluster.ParseMirror(v)
		if err != nil {
			return nil, err
		}
		opts = append(opts, cluster.WithRegistryMirror(m.Host, m.Endpoint))
	}
	return opts, nil
}

// runRegistryFlags registers `idharness run`'s registry flags into o and
// returns the check that completes o from them, run before any phase so
// that a wrong registry name fails in a second, not after the cluster.
func runRegistryFlags(fl *pflag.FlagSet, o *run.Options) (check func() error) {
	var mirrors []string
	fl.StringVar(&o.ImageRegistry, "image-registry", "", "push every image the run uses to this registry (REGISTRY[/PATH], e.g. localhost:5001/idharness) and deploy them by digest instead of loading them into the nodes (docs/registry.md)")
	fl.BoolVar(&o.ImageRegistryInsecure, "image-registry-insecure", false, "speak plain HTTP to --image-registry (localhost and private addresses fall back to it anyway)")
	fl.StringArrayVar(&mirrors, "registry-mirror", nil, "HOST=ENDPOINT for a kind cluster the run creates: its nodes pull HOST's images from ENDPOINT, e.g. localhost:5001=http://idh-registry:5000 (idharness registry start); repeatable")
	return func() error {
		if o.ImageRegistry != "" {
			if _, err := registry.ParseRepository(o.ImageRegistry, o.ImageRegistryInsecure); err != nil {
				return err
			}
		}
		for _, v := range mirrors {
			m, err := cluster.ParseMirror(v)
			if err != nil {
				return err
			}
			o.RegistryMirrors = append(o.RegistryMirrors, m)
		}
		return nil
	}
}

// recordPushed records in rep the images res pushed, by digest.
func recordPushed(rep *report.Report, res *run.Result) {
	if res == nil {
		return
	}
	for _, p := range res.Pushed {
		rep.Images = append(rep.Images, report.Image{Name: p.Local, Ref: p.Ref, ID: p.ID})
	}
}
