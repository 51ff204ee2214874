package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all"
	"github.com/idharness/idharness/internal/nodeimage"
)

func newClientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "The identity clients idharness runs (clients/): list them, prepare their programs",
	}
	cmd.AddCommand(newClientsListCommand(), newClientsPrepareCommand())
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
