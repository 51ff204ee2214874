package framework

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"golang.org/x/term"

	"github.com/idharness/idharness/internal/startgate"
	"github.com/idharness/idharness/pkg/report"
)

// reportNodes registers, at the top of the tree, the run's per-spec
// progress lines (to progress; nil silences them) and a ReportAfterSuite
// that stores ginkgo's report in *last and writes idharness's report to
// reportDir when it is set. They are registered per run, not at init, so
// that the writer and the directory are the run's own.
func reportNodes(src *source, progress io.Writer, reportDir string, last *types.Report) {
	var specsDone atomic.Int32
	ReportAfterEach(func(r SpecReport) {
		if progress == nil {
			return
		}
		if r.State == types.SpecStateSkipped && r.Failure.Message == "" {
			return // left out by the label filter or focus, not skipped by the spec
		}
		n := specsDone.Add(1)
		id, level, _, ok := ParseSpecText(r.LeafNodeText)
		if !ok {
			id, level = r.LeafNodeText, ""
		}
		fmt.Fprintf(progress, "[spec %d] %-14s %-6s %-7s %6.1fs\n", n, id, level, r.State, r.RunTime.Seconds())
	})
	ReportAfterSuite("idharness report", func(r Report) {
		*last = r
		if reportDir == "" {
			return
		}
		rep := ToReport(r, strings.TrimPrefix(r.SuiteDescription, "idharness "))
		rep.Seed = src.seed()
		if err := rep.WriteDir(reportDir); err != nil {
			fmt.Fprintln(os.Stderr, "write report:", err)
		}
	})
}

// ToReport turns ginkgo's report into idharness's.
func ToReport(r types.Report, suite string) *report.Report {
	out := &report.Report{Suite: suite, StartedAt: r.StartTime, Duration: report.Seconds(r.RunTime.Seconds())}
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		id, level, statement, ok := ParseSpecText(s.LeafNodeText)
		if !ok {
			id, level, statement = "", "", s.FullText()
		}
		sp := report.Spec{ID: id, Level: level, Statement: statement, Labels: s.Labels(), Duration: report.Seconds(s.RunTime.Seconds()),
			Location: s.LeafNodeLocation.String()}
		switch {
		case s.State == types.SpecStatePassed:
			sp.State = report.Passed
		case s.State.Is(types.SpecStateFailureStates):
			sp.State = report.Failed
			sp.Failure = s.Failure.Message
			sp.Location = s.Failure.Location.String()
		default:
			sp.State = report.Skipped
			sp.Failure = s.Failure.Message
		}
		for _, e := range s.ReportEntries {
			if e.Name == clientsEntry {
				var m map[string]string
				if json.Unmarshal([]byte(e.StringRepresentation()), &m) == nil {
					sp.Clients = m
				}
				continue
			}
			sp.Evidence = append(sp.Evidence, e.Name+":\n"+e.StringRepresentation())
		}
		out.Specs = append(out.Specs, sp)
	}
	sort.SliceStable(out.Specs, func(i, j int) bool { return out.Specs[i].ID < out.Specs[j].ID })
	out.Finalize()
	return out
}

// failT is the GinkgoTestingT of in-process runs.
type failT struct{ failed bool }

func (f *failT) Fail() { f.failed = true }

// RunOptions select what an in-process run runs and where it reports.
type RunOptions struct {
	LabelFilter string
	Focus       string
	Timeout     time.Duration
	// Seed orders the specs (ginkgo's random seed); the run's seed.
	Seed int64
	// Progress receives a line per finished spec; nil silences them.
	Progress io.Writer
	// ReportDir, when set, receives report.json, junit.xml and summary.md
	// as the suite ends (`idharness run` writes its own, fuller report).
	ReportDir string
	// NoHost, when set, says why the run cannot reach the machine behind
	// the nodes (it runs in a pod): the specs that need it skip with
	// this reason (NoHost()).
	NoHost string
	// StartGate, when set, is the file the processes of a parallel run
	// lock in turn while their probes start client runtimes other than
	// Go (internal/startgate); empty in a run of one process.
	StartGate string
}

// RunConnected runs the specs registered in this process (import the
// suite package for its side effects) that o selects, against the stack
// deployed on the cluster flags name, connected to as RunSuite connects
// for `go test`, and returns ginkgo's report. Every run connects so: an
// `idharness run` after deploying, each process of a parallel run
// (internal/parallel) for its share, the in-cluster runner. It can run
// once per process, as ginkgo allows.
func RunConnected(description string, flags Flags, o RunOptions) (types.Report, bool) {
	return runWith(description, &source{flags: flags, noHost: o.NoHost, gate: startgate.New(o.StartGate)}, o)
}

// Preview returns the specs a run with o's selection would run, without
// running any of them (ginkgo's PreviewSpecs): those it would run are
// reported passed, the others skipped. A parallel run's parent splits
// the former among its processes. Unlike a run, a preview leaves the
// process free to run the specs afterwards.
func Preview(description string, o RunOptions) types.Report {
	suiteCfg, _ := runConfig(o)
	return PreviewSpecs(description, suiteCfg)
}

// runConfig is ginkgo's configuration for an in-process run with o.
func runConfig(o RunOptions) (types.SuiteConfig, types.ReporterConfig) {
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.LabelFilter = o.LabelFilter
	if o.Focus != "" {
		suiteCfg.FocusStrings = []string{o.Focus}
	}
	suiteCfg.Timeout = o.Timeout
	if o.Seed != 0 {
		suiteCfg.RandomSeed = o.Seed
	}
	if suiteCfg.Timeout == 0 {
		suiteCfg.Timeout = time.Hour
	}
	repCfg.Succinct = true
	// Specs left out by the label filter are not news: no "S" for each.
	repCfg.SilenceSkips = true
	// Logs (CI, a file, a pipe) get plain text: no ANSI colour codes when
	// standard output is not a terminal.
	repCfg.NoColor = repCfg.NoColor || !term.IsTerminal(int(os.Stdout.Fd()))
	return suiteCfg, repCfg
}

// runWith runs the specs o selects with src as the run's stack.
func runWith(description string, src *source, o RunOptions) (types.Report, bool) {
	suiteCfg, repCfg := runConfig(o)
	t := &failT{}
	r, ok := runSpecs(t, description, src, o.Progress, o.ReportDir, suiteCfg, repCfg)
	return r, ok && !t.failed
}

// RunSuite runs the specs registered in the test binary for `go test`,
// against the stack the flags name (none: every spec is skipped), with
// ginkgo's configuration from its own flags and progress lines on
// standard error.
func RunSuite(t GinkgoTestingT, description string, flags *Flags) bool {
	suiteCfg, repCfg := GinkgoConfiguration()
	_, ok := runSpecs(t, description, &source{flags: *flags}, os.Stderr, flags.ReportDir, suiteCfg, repCfg)
	return ok
}

// runSpecs makes src the running run, registers its report nodes and
// runs the specs.
func runSpecs(t GinkgoTestingT, description string, src *source, progress io.Writer, reportDir string, suiteCfg types.SuiteConfig, repCfg types.ReporterConfig) (types.Report, bool) {
	if !running.CompareAndSwap(nil, src) {
		panic("framework: a run is already under way in this process; ginkgo runs specs once per process")
	}
	defer running.Store(nil)
	var last types.Report
	reportNodes(src, progress, reportDir, &last)
	gomega.RegisterFailHandler(Fail)
	ok := RunSpecs(t, description, suiteCfg, repCfg)
	return last, ok
}
