package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/internal/scenario"
)

// errScenarioFailed is returned when a run's verdicts are not as expected.
var errScenarioFailed = errors.New("scenario failed: see the verdicts above and the result file")

func newScenarioCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Run and check scenario timelines (faults, identity changes, workloads, expectations)",
	}
	cmd.AddCommand(newScenarioRunCommand(), newScenarioLintCommand())
	return cmd
}

func newScenarioRunCommand() *cobra.Command {
	var out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a scenario locally: in-process fake IMDS on loopback, real SDK clients in goroutines",
		Long: `Run plays the scenario's timeline against an in-process fakeimds on 127.0.0.1 while
the workload's clients (real azidentity and MSAL Go clients, redirected to the fake) ask for
tokens, prints the steps and a line per second, then a verdict per expectation. It writes the
result (verdicts, steps, every client's attempts and the fake's request journal) as JSON and
exits non-zero when a verdict is not as the scenario expects. Runs take the scenario's
workload.duration in real time: the SDKs' own retry and refresh timers cannot be scaled.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := scenario.LoadFile(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = s.ID + ".result.json"
			}
			o := scenario.Options{}
			if !quiet {
				o.Progress = cmd.OutOrStdout()
			}
			res, err := scenario.Run(cmd.Context(), s, o)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", s.ID, err)
			}
			printVerdicts(cmd.OutOrStdout(), res)
			if err := writeResult(out, res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "result written to %s\n", out)
			if !res.Passed {
				return errScenarioFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the JSON result here (default ID.result.json in the current directory)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the verdicts, not the steps and per-second lines")
	return cmd
}

func printVerdicts(w io.Writer, res *scenario.Result) {
	fmt.Fprintf(w, "\nscenario %s (seed %d, %v):\n", res.Scenario, res.Seed, res.Duration.D().Round(100*time.Millisecond))
	for _, v := range res.Verdicts {
		fmt.Fprintf(w, "  %-15s %s\n  %15s %s\n", v.Outcome, v.Expectation, "", v.Detail)
		if v.Finding != "" {
			fmt.Fprintf(w, "  %15s finding: %s\n", "", v.Finding)
		}
	}
	verdict := "PASSED"
	if !res.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s\n", verdict)
}

func writeResult(path string, res *scenario.Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w (pick another path with --out)", err)
	}
	return nil
}

func newScenarioLintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "lint FILE...",
		Short: "Check scenario files: schema, durations, rules, references; errors name file:line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := 0
			for _, f := range args {
				s, err := scenario.LoadFile(f)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					failed++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s, %v, %d steps, %d expectations)\n", f, s.ID, s.Duration(), len(s.Timeline), len(s.Expect))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d scenario files have errors; fix the lines named above", failed, len(args))
			}
			return nil
		},
	}
}
