package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/incluster"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/internal/run"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/sut"
	"github.com/idharness/idharness/pkg/report"
	_ "github.com/idharness/idharness/suites/chaos"     // registers the chaos specs
	"github.com/idharness/idharness/suites/conformance" // registers the conformance specs
	"github.com/idharness/idharness/suites/framework"
)

// runFlags are the flags of `idharness run`.
type runFlags struct {
	opts        run.Options
	suite       string
	labelFilter string
	focus       string
	profile     string
	sutFile     string
	parallel    int
	// inCluster runs the suites as a Job in the cluster (internal/incluster).
	inCluster   bool
	runnerImage string
}

// ChaosWorkers is the number of kind workers a chaos run creates unless
// --workers says otherwise: the specs play side by side, each on a worker
// of its own, so the suite takes about a tenth of its plays' total time
// (docs/chaos.md, its table of workers: 10 against 8, 3 min 38 s against
// 4 min 23 s). A worker more costs its node's start and its share of the
// images, which it loads while the cluster becomes ready (8 s more for
// the two).
const ChaosWorkers = 10

func newRunCommand() *cobra.Command {
	f := &runFlags{}
	var checkRegistry func() error // runRegistryFlags, below
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Bring up a cluster, deploy fakeimds and the workloads, run the suites, write the report",
		Long: `run is idharness's main job. It creates (or reuses) a kind cluster — or takes an existing
cluster with --kubeconfig — builds idharness's images and loads them into the nodes (or, with
--image-registry, pushes them and deploys them by digest: docs/registry.md), deploys
fakeimds on every node at 169.254.169.254 and the protected resource, runs the suites and writes
the report to --report-dir. A cluster it created is deleted at the end unless --keep-cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags that the phases would reject only minutes from now,
			// once the cluster is up, are checked first.
			labelFilter, err := suiteLabelFilter(f.suite, f.labelFilter)
			if err != nil {
				return err
			}
			if err := checkFocus(f.focus); err != nil {
				return err
			}
			if err := checkNodeImage(cmd, f.opts.NodeImage); err != nil {
				return err
			}
			if err := checkRegistry(); err != nil {
				return err
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			if f.opts.ModuleDir == "" {
				f.opts.ModuleDir = wd
			}
			f.opts.Log = slog.Default()
			if f.suite == "chaos" && !cmd.Flags().Changed("client-images") {
				// The chaos specs name their clients: only the programs
				// they run (the workload identity specs run every
				// language) are worth building and loading.
				if f.opts.ClientImages, err = chaosClientPrograms(); err != nil {
					return err
				}
			}
			if f.suite == "chaos" && !cmd.Flags().Changed("workers") {
				// The chaos specs play side by side, one per worker.
				f.opts.Workers = ChaosWorkers
			}
			// Plays take workers only (scenario.Pool): the control plane
			// needs no client image (one import fewer: 27 s of 159 s on 6
			// nodes in CI).
			f.opts.ClientImagesOnWorkers = f.suite == "chaos"
			if f.opts.Claims, err = stack.ProfileModes(f.profile); err != nil {
				return err
			}
			sutFile := f.sutFile
			if sutFile != "" && cmd.Flags().Changed("profile") {
				return errors.New("give --sut or --profile, not both: an implementation declared in a file is deployed beside fakeimds, the fake authority and, unless it claims workload-identity, the reference workload identity webhook, as --profile imds deploys them")
			}
			if f.opts.SUTs, err = declarations(f.profile, sutFile, f.opts.CacheDir); err != nil {
				return err
			}
			if sutFile != "" {
				f.opts.Claims = f.opts.SUTs[0].Claims
			}
			if labelFilter, err = sutLabelFilter(f.suite, f.labelFilter, f.opts.SUTs[0]); err != nil {
				return err
			}
			if f.inCluster {
				if f.parallel > 1 {
					return errors.New("--in-cluster runs the specs in one pod: drop --parallel")
				}
				if f.runnerImage == "" {
					// The runner image is this program, loaded or pushed
					// with the run's other images.
					exe, err := os.Executable()
					if err != nil {
						return fmt.Errorf("find this program for the runner image: %w", err)
					}
					b, err := incluster.Image(exe)
					if err != nil {
						return err
					}
					f.opts.ExtraImages = map[string]images.Built{incluster.ImageKey: b}
				}
			}
			var ginkgoReport *types.Report
			var suitesOK bool
			f.opts.Suite = func(ctx context.Context, s *stack.Stack, seed int64, kubeconfig string) error {
				desc, ro := "idharness "+f.suite, framework.RunOptions{LabelFilter: labelFilter, Focus: f.focus, Seed: seed, Progress: os.Stderr}
				if f.inCluster {
					args := incluster.JobArgs(s.Namespace, f.suite, labelFilter, f.focus, seed)
					image := f.runnerImage
					if image == "" {
						image = s.Images.Extra[incluster.ImageKey]
					}
					r, err := runInCluster(ctx, s, image, args, f.opts.ReportDir, os.Stderr)
					if err != nil {
						return err
					}
					ginkgoReport, suitesOK = &r, r.SuiteSucceeded
				} else if f.parallel > 1 && f.suite == "conformance" {
					r, err := runParallel(ctx, desc, s, kubeconfig, ro, f.parallel, os.Stderr)
					if err != nil {
						return err
					}
					ginkgoReport, suitesOK = &r, r.SuiteSucceeded
				} else {
					// The specs connect to the stack just deployed, as
					// every other way of running them does.
					r, ok := framework.RunConnected(desc, framework.Flags{Kubeconfig: kubeconfig, Namespace: s.Namespace}, ro)
					ginkgoReport, suitesOK = &r, ok
				}
				if !suitesOK {
					return errors.New("specs failed")
				}
				return nil
			}
			start := time.Now()
			res, err := run.Run(cmd.Context(), f.opts)
			out := cmd.OutOrStdout()
			if ginkgoReport != nil {
				rep := suiteReport(*ginkgoReport, f.suite, f.profile, f.opts.Claims)
				if f.sutFile != "" {
					rep.Profile = ""
				}
				recordImplementations(rep, f.opts.SUTs, res)
				rep.StartedAt, rep.Duration, rep.Cluster = start, report.Seconds(time.Since(start).Seconds()), res.Cluster
				rep.Seed = res.Seed
				recordPushed(rep, res)
				for _, p := range res.Phases {
					rep.Phases = append(rep.Phases, report.Phase{Name: p.Name, Duration: report.Seconds(p.Duration.Seconds()), Error: p.Err})
				}
				if werr := rep.WriteDir(f.opts.ReportDir); werr != nil {
					err = errors.Join(err, werr)
				}
				if werr := rep.WriteHTML(f.opts.ReportDir); werr != nil {
					err = errors.Join(err, werr)
				}
				fmt.Fprintf(out, "\n%s: %d passed, %d failed (%d MUST), %d skipped. Report: %s/summary.md\n",
					rep.Verdict, rep.Summary.Passed, rep.Summary.Failed, rep.Summary.MustFailed, rep.Summary.Skipped, f.opts.ReportDir)
				if len(rep.Unrun) > 0 {
					var ids []string
					for _, u := range rep.Unrun {
						ids = append(ids, u.ID)
					}
					fmt.Fprintf(out, "%d MUST specs in the claimed modes (%s) did not run (why: summary.md): %s\n", len(ids), strings.Join(f.opts.Claims, ", "), strings.Join(ids, " "))
				}
				if !suitesOK {
					err = fmt.Errorf("%d specs failed (%d MUST); see %s/summary.md, and the pod and node logs in %s/logs", rep.Summary.Failed, rep.Summary.MustFailed, f.opts.ReportDir, f.opts.ReportDir)
				}
			}
			if res != nil {
				fmt.Fprintln(out, "phases:")
				for _, p := range res.Phases {
					status := "ok"
					if p.Err != "" {
						status = "FAILED"
					}
					fmt.Fprintf(out, "  %-16s %8s  %s\n", p.Name, p.Duration.Round(100*time.Millisecond), status)
				}
				fmt.Fprintf(out, "total %s; kubeconfig %s\n", time.Since(start).Round(100*time.Millisecond), res.Kubeconfig)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.suite, "suite", "conformance", "suite to run: conformance or chaos")
	fl.StringVar(&f.labelFilter, "label-filter", "", "ginkgo label filter, e.g. 'user-assigned && MUST'")
	fl.StringVar(&f.profile, "profile", "imds", "identity implementation to deploy: imds (fakeimds and the reference workload identity webhook), reference (adds the reference pod identity node agent) or aad-pod-identity (its NMI instead of the agent); each is a list of shipped declarations (fixtures/sut)")
	fl.StringVar(&f.sutFile, "sut", "", "implementation under test declared in a file (sut.yaml: images, manifests, readiness, claimed modes; docs/extending.md), deployed instead of a --profile, with the reference workload identity webhook unless it claims workload-identity")
	fl.IntVar(&f.parallel, "parallel", 1, "conformance specs: run this many specs at once, each in a process of this binary, taking turns at starting client runtimes; the chaos suite plays its specs side by side anyway")
	fl.BoolVar(&f.inCluster, "in-cluster", false, "run the suites as a Job inside the cluster, with least-privilege RBAC, and copy its report out (docs/in-cluster.md); the specs that need the machine behind the nodes are left out, and the verdict says so")
	fl.StringVar(&f.runnerImage, "runner-image", "", "--in-cluster: the runner image to use (pullable by the nodes) instead of building one from this program and loading or pushing it with the others")
	fl.StringVar(&f.focus, "focus", "", "run only specs whose text matches this regular expression")
	fl.StringVar(&f.opts.Kubeconfig, "kubeconfig", "", "use the existing cluster behind this kubeconfig (nothing is created or deleted)")
	fl.StringVar(&f.opts.ClusterName, "cluster", "idharness", "kind cluster to create or reuse")
	fl.BoolVar(&f.opts.KeepCluster, "keep-cluster", false, "keep a cluster this run created")
	fl.BoolVar(&f.opts.AllowAzureNodes, "allow-azure-nodes", false, "deploy even onto Azure VMs (providerID azure://), whose real IMDS fakeimds then hides from their pods; refused by default")
	fl.BoolVar(&f.opts.ReuseCluster, "reuse-cluster", true, "reuse a healthy kind cluster of the same name instead of recreating it")
	fl.IntVar(&f.opts.Workers, "workers", 1, fmt.Sprintf("kind worker nodes (the node-scoped specs need one; default %d for --suite chaos, whose specs play side by side, one per worker)", ChaosWorkers))
	fl.StringVar(&f.opts.NodeImage, "node-image", envOr("IDHARNESS_NODE_IMAGE", cluster.NodeImageAuto), "auto, offline, published, or an image name (or IDHARNESS_NODE_IMAGE); auto tries to pull kind's published image first, so use offline where no registry may be contacted")
	fl.Int64Var(&f.opts.Seed, "seed", 0, "chaos seed (0 picks one; recorded in the report)")
	fl.StringVar(&f.opts.ReportDir, "report-dir", "_output/report", "where the report is written")
	fl.StringVar(&f.opts.ModuleDir, "source", "", "idharness source tree to build images from (default: current directory)")
	fl.StringVar(&f.opts.ImagesDir, "images", "", "load the images from this idharness release (its release.json) instead of building them; default: the source tree when it has the programs, else the release beside the idharness binary (docs/release.md)")
	fl.StringVar(&f.opts.CacheDir, "cache-dir", "", "cache directory (default /var/cache/idharness or IDHARNESS_CACHE_DIR)")
	checkRegistry = runRegistryFlags(fl, &f.opts)
	fl.StringSliceVar(&f.opts.ClientImages, "client-images", nil, "client programs to build images of and run in the specs (idharness clients list): none, all, or program names; default every program not built only on request (for --suite chaos, the programs its specs run)")
	return cmd
}

// declarations loads the implementations declared as data that a run
// deploys, the implementation under test first: the file's (--sut) with
// the reference workload identity webhook unless it claims workload
// identity, or the profile's (fixtures/sut, embedded in this binary).
// The profile's claims stay the run's: they cover its declarations'.
func declarations(profile, sutFile, cacheDir string) ([]*sut.SUT, error) {
	if cacheDir == "" {
		cacheDir = nodeimage.DefaultCacheDir()
	}
	if sutFile == "" {
		return sut.ForProfile(profile, cacheDir)
	}
	s, err := sut.Load(sutFile)
	if err != nil {
		return nil, err
	}
	return sut.WithCompanions(s, cacheDir)
}

// recordImplementations names in rep the implementation under test (the
// first of suts) and its companions, with the images res loaded for each.
func recordImplementations(rep *report.Report, suts []*sut.SUT, res *run.Result) {
	for i, s := range suts {
		im := report.Implementation{Name: s.Name, Version: s.Version, Vendor: s.Vendor, URL: s.URL, File: s.File(), Claims: s.Claims}
		if res != nil && i < len(res.SUTImages) {
			for _, l := range res.SUTImages[i] {
				im.Images = append(im.Images, report.Image{Name: l.Name, Ref: l.Ref, ID: l.ID})
			}
		}
		if i == 0 {
			rep.Implementation = &im
		} else {
			rep.Companions = append(rep.Companions, im)
		}
	}
}

// suiteReport is the report of a run of suite from ginkgo's report r, as
// a local run and the in-cluster runner (run-job) both write it.
func suiteReport(r types.Report, suite, profile string, claims []string) *report.Report {
	rep := framework.ToReport(r, suite)
	onlySuite(rep, suite)
	rep.Profile = profile
	if suite == "conformance" {
		rep.SpecSet = conformance.SpecSetVersion
	}
	rep.Version = idharnessVersion()
	rep.Claims = claims
	return rep
}

// sutLabelFilter is the label filter of a run of suite against s: the
// user's, or, when they give none and s's agent intercepts every pod,
// the modes s claims (specs of other modes would judge the agent, not
// IMDS); always within the suite's own filter.
func sutLabelFilter(suite, userFilter string, s *sut.SUT) (string, error) {
	if strings.TrimSpace(userFilter) == "" && s.LabelFilter() != "" {
		userFilter = s.LabelFilter()
		if st, err := findSuite(suite); err == nil && st.unlessAsked != "" {
			userFilter = "(" + userFilter + ") && (" + st.unlessAsked + ")"
		}
		slog.Info("the implementation intercepts every pod: only the specs of the modes it claims run", "label-filter", userFilter)
	}
	return suiteLabelFilter(suite, userFilter)
}
