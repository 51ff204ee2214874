package framework

import (
	"encoding/json"
	"flag"
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

	"github.com/idharness/idharness/internal/report"
)

var reportDir = flag.String("idh-report-dir", "", "write report.json, junit.xml and summary.md here")

// LastReport is ginkgo's report of the suite that ran last in this process.
var LastReport types.Report

var specsDone atomic.Int32

// Progress is where per-spec progress lines go; nil silences them.
var Progress io.Writer = os.Stderr

var _ = ReportAfterEach(func(r SpecReport) {
	if Progress == nil {
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
	fmt.Fprintf(Progress, "[spec %d] %-14s %-6s %-7s %6.1fs\n", n, id, level, r.State, r.RunTime.Seconds())
})

var _ = ReportAfterSuite("idharness report", func(r Report) {
	LastReport = r
	if *reportDir == "" {
		return
	}
	rep := ToReport(r, strings.TrimPrefix(r.SuiteDescription, "idharness "))
	if Stack != nil {
		rep.Seed = Stack.Seed
	}
	if err := rep.WriteDir(*reportDir); err != nil {
		fmt.Fprintln(os.Stderr, "write report:", err)
	}
})

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

// RunOptions select what an in-process run runs.
type RunOptions struct {
	LabelFilter string
	Focus       string
	Timeout     time.Duration
	// Seed orders the specs (ginkgo's random seed); the run's seed.
	Seed int64
}

// RunInProcess runs the specs registered in this process (import the
// suite package for its side effects) against Preset and returns ginkgo's
// report. It can run once per process, as ginkgo allows.
func RunInProcess(description string, o RunOptions) (types.Report, bool) {
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
	gomega.RegisterFailHandler(Fail)
	t := &failT{}
	ok := RunSpecs(t, description, suiteCfg, repCfg)
	return LastReport, ok && !t.failed
}
