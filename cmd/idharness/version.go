package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time by a release (make release: -ldflags
// -X main.version=$(git describe --tags --always --dirty)); otherwise the
// module version or VCS revision recorded by the Go toolchain is shown.
var version = ""

// idharnessVersion returns this binary's version: the release's, or
// the build's module version and commit, or "(devel)". Reports record it.
func idharnessVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// versionString returns idharness's version and the key dependencies.
func versionString() string {
	kind := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "sigs.k8s.io/kind" {
				kind = d.Version
			}
		}
	}
	return fmt.Sprintf("idharness %s (kind library %s)", idharnessVersion(), kind)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the idharness version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return nil
		},
	}
}
