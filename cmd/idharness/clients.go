package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all"
	"github.com/idharness/idharness/internal/clientimage"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/nodeimage"
)

func newClientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "The identity clients idharness runs (clients/): list them, prepare their programs",
	}
	cmd.AddCommand(newClientsListCommand(), newClientsPrepareCommand(), newClientsImageCommand())
	return cmd
}

func newClientsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every client: language, SDK, credential, modes and identity selectors (Markdown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := clients.Builtin()
			if err != nil {
				return err
			}
			return writeClientsTable(cmd.OutOrStdout(), reg)
		},
	}
}

// writeClientsTable writes the registry as the Markdown table that
// docs/clients.md carries (TestClientsListInDocs keeps them equal).
func writeClientsTable(w io.Writer, reg *clients.Registry) error {
	var b strings.Builder
	b.WriteString("| client | language | SDK | credential | modes | selects |\n|---|---|---|---|---|---|\n")
	for _, s := range reg.Specs() {
		sel := make([]string, len(s.Selects))
		for i, k := range s.Selects {
			sel[i] = string(k)
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s | %s |\n", s.Name, s.Language(), s.SDK, s.Credential,
			strings.Join(s.Modes, ", "), strings.Join(sel, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func newClientsPrepareCommand() *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "prepare [PROGRAM...]",
		Short: "Install the pinned packages of client programs into the cache (all programs by default)",
		Long: `Prepare copies each client program (clients/PROGRAM) into the cache and runs
its prepare script, which installs the program's pinned packages (pip, npm,
Maven). Runs and tests prepare what they need by themselves; this does it
ahead of time. A prepared program is reused until its files change.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := clients.Builtin()
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, a := range args {
				want[a] = true
			}
			found := 0
			for _, p := range reg.Programs() {
				if len(p.PrepareCmd) == 0 || (len(want) > 0 && !want[p.Name]) {
					continue
				}
				found++
				dir, err := p.Prepare(cmd.Context(), cacheDir, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", p.Name, dir)
			}
			if len(want) > 0 && found != len(want) {
				var names []string
				for _, p := range reg.Programs() {
					if len(p.PrepareCmd) > 0 {
						names = append(names, p.Name)
					}
				}
				return fmt.Errorf("unknown program among %s; want some of %s", strings.Join(args, ", "), strings.Join(names, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "cache directory (or IDHARNESS_CACHE_DIR)")
	return cmd
}

func newClientsImageCommand() *cobra.Command {
	var cacheDir, output, tag, arch string
	cmd := &cobra.Command{
		Use:   "image [PROGRAM...]",
		Short: "Build client programs' images (Debian root, runtime, prepared program, probe) into an archive",
		Long: `Image builds the image of each client program (all by default) as idharness run does:
a Debian root made by mmdebstrap with the program's runtime, the program in /client with its
pinned packages installed, and the probe at /usr/local/bin/probe, which drives the program in
a pod. Roots are cached (the first build of each takes minutes; later ones seconds). The
images are written to --output as one Docker image archive (docker load, kind load
image-archive). --arch arm64 on an amd64 machine builds arm64 images, running their
programs under qemu-user (hack/binfmt.sh registers it, and is run when needed).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := clients.Builtin()
			if err != nil {
				return err
			}
			b := &clientimage.Builder{CacheDir: cacheDir, Log: slog.Default(), Arch: arch, Out: cmd.ErrOrStderr()}
			if wd, err := os.Getwd(); err == nil {
				b.SetupEmulation = clientimage.SetupScript(wd, cmd.ErrOrStderr())
			}
			probeBin, err := buildProbe(cmd.Context(), arch)
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, a := range args {
				want[a] = true
			}
			var built []images.Built
			for _, p := range reg.Programs() {
				if len(p.Command) == 0 || (len(want) > 0 && !want[p.Name]) {
					continue
				}
				root, err := b.Root(cmd.Context(), p)
				if err != nil {
					return err
				}
				img, err := clientimage.Image(root, probeBin, arch, p, clientimage.Name(p, tag))
				if err != nil {
					return err
				}
				built = append(built, img)
				fmt.Fprintln(cmd.OutOrStdout(), img.Name)
			}
			return images.WriteBuiltArchive(output, built...)
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "cache directory (or IDHARNESS_CACHE_DIR)")
	cmd.Flags().StringVarP(&output, "output", "o", "_output/images/clients.tar", "image archive to write")
	cmd.Flags().StringVar(&tag, "tag", "dev", "image tag")
	cmd.Flags().StringVar(&arch, "arch", "", "GOARCH of the images (amd64, arm64; default this machine's)")
	return cmd
}

// buildProbe builds the probe binary for goarch (empty: this machine's;
// static, as in every image).
func buildProbe(ctx context.Context, goarch string) (string, error) {
	b, err := images.BuildGo(ctx, images.GoProgram{Package: "./cmd/probe", Image: "idharness.local/probe:dev", Arch: goarch})
	if err != nil {
		return "", err
	}
	return b.Binary, nil
}
