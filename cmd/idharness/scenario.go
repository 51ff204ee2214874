package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/internal/scenario"
	"github.com/idharness/idharness/internal/stack"
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

// scenarioClusterFlags select the cluster of an in-cluster scenario run.
type scenarioClusterFlags struct {
	cluster    string
	kubeconfig string
	node       string
	namespace  string
	cacheDir   string
	lead       time.Duration
}

// inCluster reports whether the flags ask for an in-cluster run.
func (f *scenarioClusterFlags) inCluster() bool { return f.cluster != "" || f.kubeconfig != "" }

// connect returns the idharness stack deployed on the flags' cluster and
// the cluster's name for the result.
func (f *scenarioClusterFlags) connect(ctx context.Context) (*stack.Stack, string, error) {
	label, hint := f.kubeconfig, "deploy the stack there: idharness run --kubeconfig "+f.kubeconfig
	var cfg *rest.Config
	var err error
	if f.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	} else {
		label, hint = f.cluster, "create the cluster and deploy the stack: idharness run --cluster "+f.cluster+" --keep-cluster"
		var c *cluster.Cluster
		if c, err = cluster.New(cluster.WithName(f.cluster), cluster.WithCacheDir(f.cacheDir), cluster.WithLogger(slog.Default())); err == nil {
			cfg, err = c.RESTConfig()
		}
	}
	if err == nil {
		var st *stack.Stack
		if st, err = stack.Connect(ctx, cfg, f.namespace, slog.Default()); err == nil {
			return st, label, nil
		}
	}
	return nil, "", fmt.Errorf("cluster %s: %w; %s", label, err, hint)
}

func newScenarioRunCommand() *cobra.Command {
	var out, imdsAddr, reportDir string
	var quiet bool
	var cf scenarioClusterFlags
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a scenario locally (in-process fake IMDS, SDK clients in goroutines) or in a cluster (probe pods)",
		Long: `Run plays the scenario's timeline against an in-process fakeimds on 127.0.0.1 while
the workload's clients (real azidentity and MSAL Go clients, redirected to the fake) ask for
tokens, prints the steps and a line per second, then a verdict per expectation. It writes the
result (verdicts, steps, every client's attempts and the fake's request journal) as JSON and
exits non-zero when a verdict is not as the scenario expects. Runs take the scenario's
workload.duration in real time: the SDKs' own retry and refresh timers cannot be scaled.

With --cluster (a kind cluster idharness made) or --kubeconfig, the same file runs in the
cluster where ` + "`idharness run --keep-cluster`" + ` deployed the stack: the setup and the timeline go
to the fakeimds of one node (--node, default the last) through its control API, each client
is a probe pod on that node, and the node's fakeimds is reset and the pods deleted afterwards,
on Ctrl-C too. A scenario using what a cluster cannot do fails, naming the field.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := scenario.LoadFile(args[0])
			if err != nil {
				return err
			}
			for _, w := range s.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			if out == "" {
				out = s.ID + ".result.json"
			}
			if reportDir == "" {
				reportDir = s.ID + ".report"
			}
			var progress io.Writer
			if !quiet {
				progress = cmd.OutOrStdout()
			}
			var res *scenario.Result
			if cf.inCluster() {
				if err := s.CheckCluster(); err != nil {
					return err
				}
				st, label, err := cf.connect(cmd.Context())
				if err != nil {
					return err
				}
				res, err = scenario.RunInCluster(cmd.Context(), s, scenario.ClusterOptions{
					Progress: progress, Stack: st, Node: cf.node, Cluster: label, Lead: cf.lead})
				if err != nil {
					return fmt.Errorf("scenario %s in cluster %s: %w", s.ID, label, err)
				}
			} else {
				res, err = scenario.Run(cmd.Context(), s, scenario.Options{Progress: progress, IMDSAddr: imdsAddr})
				if err != nil {
					return fmt.Errorf("scenario %s: %w", s.ID, err)
				}
			}
			printVerdicts(cmd.OutOrStdout(), res)
			if err := writeResult(out, res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "result written to %s\n", out)
			// The one results model: the same report files as idharness run.
			rep := res.Report(s)
			if err := rep.WriteDir(reportDir); err != nil {
				return err
			}
			if err := rep.WriteHTML(reportDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "report written to %s (report.json, junit.xml, summary.md, report.html)\n", reportDir)
			if !res.Passed {
				return errScenarioFailed
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&out, "out", "o", "", "write the JSON result here (default ID.result.json in the current directory)")
	fl.StringVar(&reportDir, "report-dir", "", "write report.json, junit.xml, summary.md and report.html here, as idharness run does (default ID.report in the current directory)")
	fl.StringVar(&imdsAddr, "imds-addr", "", "locally: where the fake's metadata face listens, e.g. 127.0.0.1:8080, for a workload of your own (default a free port, printed at the start)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "print only the verdicts, not the steps and progress lines")
	fl.StringVar(&cf.cluster, "cluster", "", "run in this kind cluster made by idharness, whose stack `idharness run --cluster NAME --keep-cluster` deployed")
	fl.StringVar(&cf.kubeconfig, "kubeconfig", "", "run in the cluster behind this kubeconfig, where the stack is deployed")
	fl.StringVar(&cf.node, "node", "", "in a cluster: the node whose fakeimds the run drives and where the pods run (default the last, a worker)")
	fl.StringVar(&cf.namespace, "idh-namespace", fixtures.DefaultNamespace, "in a cluster: the namespace of the idharness stack")
	fl.StringVar(&cf.cacheDir, "cache-dir", nodeimage.DefaultCacheDir(), "in a cluster: idharness's cache directory, which holds the kind clusters' kubeconfigs (or IDHARNESS_CACHE_DIR)")
	fl.DurationVar(&cf.lead, "lead", 0, "in a cluster: how long the pods get to be ready (clients built) before the run fails; the workload starts once they all are (default 10s + 1s per pod, 40s more for client programs)")
	return cmd
}

func printVerdicts(w io.Writer, res *scenario.Result) {
	where := ""
	if c := res.InCluster; c != nil {
		where = fmt.Sprintf(", cluster %s, node %s", c.Cluster, c.Node)
	}
	fmt.Fprintf(w, "\nscenario %s (seed %d, %v%s):\n", res.Scenario, res.Seed, res.Duration.D().Round(100*time.Millisecond), where)
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
				for _, w := range s.Warnings() {
					fmt.Fprintln(cmd.ErrOrStderr(), w)
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
