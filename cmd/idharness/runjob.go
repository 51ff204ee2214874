package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/incluster"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/report"
	"github.com/idharness/idharness/suites/framework"
)

// inClusterNoHost is why a run in a pod leaves out the specs that need
// the machine behind the nodes (framework.RunOptions.NoHost).
const inClusterNoHost = "the run is a pod in the cluster (idharness run --in-cluster, or the Sonobuoy plugin), which cannot reach it: run this spec with idharness run from the machine running the nodes"

// sonobuoyDone is the file a Sonobuoy plugin writes, in its results
// directory, with the path of its results, to say it is done.
const sonobuoyDone = "done"

// jobFlags are the flags of `idharness run-job`.
type jobFlags struct {
	kubeconfig      string
	namespace       string
	suite           string
	labelFilter     string
	focus           string
	seed            int64
	reportDir       string
	sonobuoyResults string
}

// newRunJobCommand is what the in-cluster runner's pod runs (the Job of
// `idharness run --in-cluster`, the Sonobuoy plugin): the suites against
// the stack deployed in the cluster, with the pod's service account, and
// ginkgo's report framed in its log for the starting side.
func newRunJobCommand() *cobra.Command {
	f := &jobFlags{}
	cmd := &cobra.Command{
		Use:    incluster.JobCommand,
		Short:  "Run the suites in a pod of the cluster against its deployed stack (the in-cluster runner's Job and the Sonobuoy plugin run it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := findSuite(f.suite); err != nil {
				return err
			}
			if err := checkFocus(f.focus); err != nil {
				return err
			}
			st, err := jobStack(cmd.Context(), f)
			if err != nil {
				return err
			}
			if f.seed == 0 {
				// The stack's seed, as `idharness run` passes it.
				f.seed = st.Seed
			}
			flags := framework.Flags{Kubeconfig: f.kubeconfig, Namespace: f.namespace, InCluster: f.kubeconfig == ""}
			start := time.Now()
			r, ok := framework.RunConnected("idharness "+f.suite, flags, framework.RunOptions{
				LabelFilter: f.labelFilter, Focus: f.focus, Seed: f.seed, Progress: cmd.ErrOrStderr(), NoHost: inClusterNoHost})
			if err := incluster.WriteFrame(cmd.OutOrStdout(), r); err != nil {
				return err
			}
			if f.reportDir == "" && f.sonobuoyResults != "" {
				f.reportDir = filepath.Join(os.TempDir(), "idharness-report")
			}
			if f.reportDir != "" {
				if err := writeJobReport(f, st.Claims, r, start); err != nil {
					return err
				}
			}
			if f.sonobuoyResults != "" {
				// Sonobuoy reads the verdict from the JUnit file: the
				// container's exit status would only mark its pod failed.
				return sonobuoyResults(f.reportDir, f.sonobuoyResults)
			}
			if !ok {
				return errors.New("specs failed: the report is in the log above")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "cluster to run against; empty: this pod's own (in-cluster configuration)")
	fl.StringVar(&f.namespace, "idh-namespace", fixtures.DefaultNamespace, "the stack's namespace")
	fl.StringVar(&f.suite, "suite", "conformance", "suite to run: conformance or chaos")
	fl.StringVar(&f.labelFilter, "label-filter", "", "ginkgo label filter, composed already (idharness run passes its own)")
	fl.StringVar(&f.focus, "focus", "", "run only specs whose text matches this regular expression")
	fl.Int64Var(&f.seed, "seed", 0, "the run's seed (0: the stack's, as idharness run deploys it)")
	fl.StringVar(&f.reportDir, "report-dir", "", "also write report.json, junit.xml and summary.md here")
	fl.StringVar(&f.sonobuoyResults, "sonobuoy-results", "", "Sonobuoy's results directory (/tmp/sonobuoy/results): write the report there as a tarball and the done file")
	return cmd
}

// jobStack connects to the stack run-job runs against.
func jobStack(ctx context.Context, f *jobFlags) (*stack.Stack, error) {
	var cfg *rest.Config
	var err error
	if f.kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster configuration (run-job runs in a pod of the cluster, or give --kubeconfig): %w", err)
	}
	return stack.Connect(ctx, cfg, f.namespace, slog.Default())
}

// writeJobReport writes the report of r into f.reportDir, with the
// claims the deployed stack records.
func writeJobReport(f *jobFlags, claims []string, r types.Report, start time.Time) error {
	rep := suiteReport(r, f.suite, "", claims)
	rep.StartedAt, rep.Duration, rep.Seed = start, report.Seconds(time.Since(start).Seconds()), f.seed
	if err := rep.WriteDir(f.reportDir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\n%s: %d passed, %d failed (%d MUST), %d skipped. Report: %s\n",
		rep.Verdict, rep.Summary.Passed, rep.Summary.Failed, rep.Summary.MustFailed, rep.Summary.Skipped, f.reportDir)
	return nil
}

// sonobuoyResults puts the report directory into Sonobuoy's results
// directory as one tarball and then writes the done file naming it, as
// Sonobuoy's worker waits for.
func sonobuoyResults(reportDir, results string) error {
	tarball := filepath.Join(results, "idharness.tar.gz")
	if err := tarDir(reportDir, tarball); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(results, sonobuoyDone), []byte(tarball), 0o644); err != nil {
		return fmt.Errorf("sonobuoy done file: %w", err)
	}
	return nil
}

// tarDir writes the regular files of dir (not its subdirectories) into a
// gzipped tarball at path.
func tarDir(dir, path string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("report for sonobuoy: %w", err)
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report for sonobuoy: %w", err)
	}
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addFile(tw, filepath.Join(dir, e.Name()), e.Name()); err != nil {
			out.Close()
			return err
		}
	}
	err = errors.Join(tw.Close(), zw.Close(), out.Close())
	if err != nil {
		return fmt.Errorf("report for sonobuoy: %w", err)
	}
	return nil
}

func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// runInCluster runs the suites as the in-cluster runner's Job against s
// and returns ginkgo's report as the runner wrote it; the runner's log
// goes to runner.log in reportDir.
func runInCluster(ctx context.Context, s *stack.Stack, image string, args []string, reportDir string, progress io.Writer) (types.Report, error) {
	if image == "" {
		return types.Report{}, errors.New("in-cluster run: no runner image (give --runner-image, or let idharness run build and load it)")
	}
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return types.Report{}, fmt.Errorf("report dir: %w", err)
	}
	logFile, err := os.Create(filepath.Join(reportDir, "runner.log"))
	if err != nil {
		return types.Report{}, fmt.Errorf("runner log: %w", err)
	}
	defer logFile.Close()
	return incluster.Run(ctx, s.Deployer(), incluster.Options{
		JobOptions: incluster.JobOptions{Namespace: s.Namespace, Image: image, Args: args},
		Progress:   progress,
		Log:        logFile,
	})
}
