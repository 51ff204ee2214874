package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/idharness/idharness/pkg/report"
)

// newReportCommand returns `idharness report`: what can be done with the
// reports of runs already made.
func newReportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Read the reports of runs: compare two runs' outcomes",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "compare A B",
		Short: "Compare two runs' outcomes (the verdict, each spec's state, each client's outcome) and fail when they differ",
		Long: `compare reads two reports (report.json, or the --report-dir holding it) and lists every
outcome in which B differs from A: the verdict, a spec's state, a client's outcome in a spec, and
specs or clients present in one report only. Durations, seeds, the order the specs ran in and the
evidence differ from run to run by design and are not compared. It exits 1 when an outcome
differs: run the suite twice (two seeds, or alone and with --parallel) and compare, to show that a
spec's verdict does not depend on what ran beside it or before it; or compare two
implementations' reports.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := report.Read(args[0])
			if err != nil {
				return err
			}
			b, err := report.Read(args[1])
			if err != nil {
				return err
			}
			return compareReports(cmd, args[0], args[1], a, b)
		},
	})
	return cmd
}

// compareReports prints how b's outcomes differ from a's and returns an
// error when they do.
func compareReports(cmd *cobra.Command, nameA, nameB string, a, b *report.Report) error {
	if a.Suite != b.Suite {
		return fmt.Errorf("%s is a %s report and %s a %s report: compare reports of the same suite", nameA, a.Suite, nameB, b.Suite)
	}
	out := cmd.OutOrStdout()
	diffs := report.Compare(a, b)
	for _, d := range diffs {
		fmt.Fprintln(out, d)
	}
	specs, clients := report.Outcomes(a)
	if len(diffs) > 0 {
		return fmt.Errorf("%d outcomes differ between %s (seed %d) and %s (seed %d)", len(diffs), nameA, a.Seed, nameB, b.Seed)
	}
	fmt.Fprintf(out, "same outcomes: verdict %s, %d specs, %d client outcomes (seeds %d and %d)\n", a.Verdict, specs, clients, a.Seed, b.Seed)
	return nil
}
