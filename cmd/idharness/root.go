// Command idharness is the chaos and conformance harness for Azure managed
// identity in containers. Its cluster commands create and delete the kind
// clusters the suites run on, and build the offline node image those
// clusters use where no container registry can be reached.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// newRootCommand returns the idharness command with its subcommands.
func newRootCommand() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:           "idharness",
		Short:         "Chaos and conformance harness for Azure managed identity in containers",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail and the output of long external commands")
	root.AddCommand(newVersionCommand(), newClusterCommand(), newScenarioCommand(), newRunCommand(), newConformanceCommand(), newClientsCommand(), newRunUnitCommand(), newRunJobCommand(), newSonobuoyCommand(), newRegistryCommand(), newReleaseCommand(), newReportCommand())
	return root
}

func main() {
	// The first Ctrl-C cancels the context so that work in progress cleans
	// up; a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "idharness:", err)
		os.Exit(1)
	}
}
