package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/parallel"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/suites/framework"
)

// runUnitCommand is the hidden command a parallel run starts once per
// unit: `idharness run` runs it, people do not.
const runUnitCommand = "run-unit"

// newRunUnitCommand runs one unit of a parallel run (internal/parallel)
// against the stack its parent deployed, and writes ginkgo's report as
// JSON for the parent to merge.
func newRunUnitCommand() *cobra.Command {
	var (
		flags       framework.Flags
		description string
		labelFilter string
		focus       string
		seed        int64
		reportFile  string
		startGate   string
	)
	cmd := &cobra.Command{
		Use:    runUnitCommand,
		Short:  "Run one unit of a parallel run (started by idharness run --parallel)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.Kubeconfig == "" || reportFile == "" {
				return errors.New("run-unit needs --kubeconfig and --report-json; it is started by idharness run --parallel")
			}
			r, _ := framework.RunConnected(description, flags, framework.RunOptions{LabelFilter: labelFilter, Focus: focus, Seed: seed, Progress: cmd.ErrOrStderr(), StartGate: startGate})
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			// The report, not the exit status, carries the verdict: a
			// failed spec is not a failed process.
			return os.WriteFile(reportFile, b, 0o644)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&flags.Kubeconfig, "kubeconfig", "", "cluster with the deployed stack")
	fl.StringVar(&flags.Namespace, "idh-namespace", "", "the stack's namespace")
	fl.StringVar(&description, "description", "", "the suite's description")
	fl.StringVar(&labelFilter, "label-filter", "", "the run's label filter")
	fl.StringVar(&focus, "focus", "", "the unit's specs")
	fl.Int64Var(&seed, "seed", 0, "the run's seed")
	fl.StringVar(&reportFile, "report-json", "", "where ginkgo's report goes")
	fl.StringVar(&startGate, "start-gate", "", "the file the run's processes lock in turn to start client runtimes (internal/startgate)")
	return cmd
}

// runParallel runs the specs of a run in procs processes of this binary
// (internal/parallel) against st, deployed on the cluster behind
// kubeconfig, and returns the merged report.
func runParallel(ctx context.Context, description string, st *stack.Stack, kubeconfig string, o framework.RunOptions, procs int, output io.Writer) (types.Report, error) {
	preview := framework.Preview(description, o)
	units, err := parallel.Units(preview)
	if err != nil {
		return types.Report{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return types.Report{}, fmt.Errorf("find this binary to start the parallel run's processes: %w", err)
	}
	fmt.Fprintf(output, "running %d specs, %d at a time (--parallel)\n", len(units), procs)
	dir, err := os.MkdirTemp("", "idharness-gate-")
	if err != nil {
		return types.Report{}, fmt.Errorf("the parallel run's start gate: %w", err)
	}
	defer os.RemoveAll(dir)
	gate := filepath.Join(dir, "start-gate")
	start := func(ctx context.Context, u parallel.Unit, reportFile string) *exec.Cmd {
		// The user's focus was applied by the preview: the unit's specs
		// are within it.
		return exec.CommandContext(ctx, self, runUnitCommand,
			"--kubeconfig", kubeconfig, "--idh-namespace", st.Namespace, "--description", description,
			"--label-filter", o.LabelFilter, "--focus", u.Focus(), "--seed", strconv.FormatInt(o.Seed, 10), "--report-json", reportFile,
			"--start-gate", gate)
	}
	return parallel.Run(ctx, preview, units, parallel.Options{Procs: procs, Start: start, Output: output})
}
