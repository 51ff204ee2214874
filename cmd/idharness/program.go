package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/images"
)

func newProgramImageCommand() *cobra.Command {
	var (
		programs []string
		output   string
		load     bool
		f        clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "programs",
		Short: "Build images of idharness's Go programs and optionally load them into a cluster",
		Long: `Build OCI images of Go main packages from scratch layers (no base image, no
registry), write them as one Docker image archive, and with --load put them
into every node of the kind cluster.

Each --program is PACKAGE=IMAGE, for example
  ./cmd/fakeimds=idharness.local/fakeimds:dev
Run it from the module root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(programs) == 0 {
				return fmt.Errorf("no --program given (for example --program ./cmd/fakeimds=idharness.local/fakeimds:dev)")
			}
			var built []images.Built
			for _, p := range programs {
				pkg, img, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--program %q: want PACKAGE=IMAGE", p)
				}
				start := time.Now()
				b, err := images.BuildGo(cmd.Context(), images.GoProgram{Package: pkg, Image: img, WorkDir: filepath.Join(filepath.Dir(output), "bin")})
				if err != nil {
					return err
				}
				slog.Info("image built", "image", img, "package", pkg, "duration", time.Since(start).Round(100*time.Millisecond))
				built = append(built, b)
			}
			if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
				return err
			}
			if err := images.WriteBuiltArchive(output, built...); err != nil {
				return err
			}
			slog.Info("image archive written", "path", output, "images", len(built))
			if load {
				c, err := cluster.New(f.options()...)
				if err != nil {
					return err
				}
				start := time.Now()
				if err := c.LoadImageArchive(output); err != nil {
					return err
				}
				slog.Info("images loaded", "cluster", c.Name(), "duration", time.Since(start).Round(100*time.Millisecond))
			}
			fmt.Fprintln(cmd.OutOrStdout(), output)
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&programs, "program", nil, "PACKAGE=IMAGE to build (repeatable)")
	fl.StringVar(&output, "output", filepath.Join("_output", "images", "programs.tar"), "image archive to write")
	fl.BoolVar(&load, "load", false, "load the archive into the cluster's nodes")
	return cmd
}
