// Package parallel runs a ginkgo suite's specs in several processes at
// once and merges their reports into one, as if one process had run them.
//
// Ginkgo runs a suite once per process, and its own parallel mode needs
// its CLI; idharness is one binary. So a parallel run previews the specs
// it would run (framework.Preview), splits them into units, and starts a
// process of the same binary per unit, a few at a time, each running its
// unit's specs against the stack the parent deployed
// (framework.RunConnected). A spec is a unit of its own, so that
// whichever process is free takes the next one (a process costs about
// 0.2 s), except in an Ordered container: its specs share what its
// BeforeAll set up or what one leaves for the next (the workload identity
// specs share the authority's federated credentials), so they are one
// unit, run one after another. A unit runs its specs' container set-up
// in its own process, as a focused run (--focus) does. Most of a
// conformance spec's time is waiting for pods, so the machine is idle
// enough for several. Specs isolate themselves (a namespace, probe pods
// and fault rules scoped to those pods' addresses each); a spec labelled
// Serial changes what every pod sees (the authority's clock, a node's
// identities, the webhook), so it runs alone, after the others.
package parallel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// SerialLabel marks a spec that must not run beside any other.
const SerialLabel = "Serial"

// SlowLabel marks a spec that takes much longer than the others (IDH-CONF-0015's
// 80 s of 6-minute tokens): it starts first, so that it does not end the
// run alone.
const SlowLabel = "slow"

// Unit is what one process runs: a spec, or an Ordered container's.
type Unit struct {
	// Name is the top-level container's text.
	Name string
	// IDs are the unit's spec IDs ("IDH-CONF-0001"), in tree order.
	IDs []string
	// Serial units run alone, after the others (SerialLabel).
	Serial bool
	// Slow units start before the others: a spec of theirs is labelled
	// SlowLabel.
	Slow bool
}

// label names the unit in its process's output lines: its spec's ID, or
// its container's text, shortened.
func (u Unit) label() string {
	if len(u.IDs) == 1 {
		return u.IDs[0]
	}
	if r := []rune(u.Name); len(r) > 24 {
		return string(r[:23]) + "…"
	}
	return u.Name
}

// Focus is the regular expression that selects the unit's specs by ID
// (their text starts "[ID] "), for ginkgo's --focus.
func (u Unit) Focus() string {
	q := make([]string, len(u.IDs))
	for i, id := range u.IDs {
		q[i] = regexp.QuoteMeta(id)
	}
	return `\[(` + strings.Join(q, "|") + `)\]`
}

// specID finds a spec's ID in its text.
var specID = regexp.MustCompile(`\[(IDH-[A-Z]+-\d{4})\]`)

// idOf returns the ID in a spec's leaf text, or "".
func idOf(leaf string) string {
	if m := specID.FindStringSubmatch(leaf); m != nil {
		return m[1]
	}
	return ""
}

// Units splits the specs a preview would run (reported passed) into
// units, in the preview's order: a unit per spec, but one per top-level
// container for the specs of an Ordered container. A spec labelled
// Serial makes a serial unit (named after its container, with
// " (serial)"), shared with its Ordered container's other serial specs.
// A spec without an ID cannot be focused alone, so it is an error: every
// suite spec has one.
func Units(preview types.Report) ([]Unit, error) {
	var units []Unit
	index := map[string]int{}
	for _, s := range preview.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt || s.State != types.SpecStatePassed {
			continue
		}
		id := idOf(s.LeafNodeText)
		if id == "" {
			return nil, fmt.Errorf("spec %q (%s) has no ID ([IDH-…-NNNN]): a parallel run selects specs by ID; declare it with framework.Conformance or framework.Chaos", s.FullText(), s.LeafNodeLocation)
		}
		name := s.LeafNodeText
		if len(s.ContainerHierarchyTexts) > 0 {
			name = s.ContainerHierarchyTexts[0]
		}
		serial := slices.Contains(s.Labels(), SerialLabel)
		if serial {
			name += " (serial)"
		}
		slow := slices.Contains(s.Labels(), SlowLabel)
		if !s.IsInOrderedContainer {
			units = append(units, Unit{Name: name, IDs: []string{id}, Serial: serial, Slow: slow})
			continue
		}
		i, ok := index[name]
		if !ok {
			i = len(units)
			index[name] = i
			units = append(units, Unit{Name: name, Serial: serial})
		}
		units[i].IDs = append(units[i].IDs, id)
		units[i].Slow = units[i].Slow || slow
	}
	return units, nil
}

// Starter returns the command that runs unit u's specs and writes
// ginkgo's report as JSON to reportFile (framework.RunConnected in a
// process of this binary). Its standard output and error are taken by
// Run.
type Starter func(ctx context.Context, u Unit, reportFile string) *exec.Cmd

// Options configure a parallel run.
type Options struct {
	// Procs is how many units run at once (at least 1).
	Procs int
	// Start makes a unit's command.
	Start Starter
	// Output receives the processes' output, line by line, each line
	// prefixed with its unit; the per-spec progress lines ("[spec N] …")
	// are numbered across the whole run. Nil discards it.
	Output io.Writer
	// Dir holds the units' report files; empty makes a temporary one,
	// removed at the end.
	Dir string
}

// Run runs the units — the parallel ones longest first, Procs at a time,
// then the serial ones one by one — and merges their reports into one
// over preview's tree. A unit whose process ends without a report fails
// its specs with what the process said, so that a crash reads as a
// failure, never as specs that did not run. The merged report succeeds
// only if every unit's did. On cancellation the processes get an
// interrupt (ginkgo then runs their clean-ups) and Run returns once they
// have ended.
func Run(ctx context.Context, preview types.Report, units []Unit, o Options) (types.Report, error) {
	if o.Procs < 1 {
		o.Procs = 1
	}
	if o.Start == nil {
		return types.Report{}, errors.New("parallel: no Starter")
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "idharness-parallel-")
		if err != nil {
			return types.Report{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	out := &lineWriter{w: o.Output}
	if o.Output == nil {
		out.w = io.Discard
	}
	var par, ser []int
	for i, u := range units {
		if u.Serial {
			ser = append(ser, i)
		} else {
			par = append(par, i)
		}
	}
	// Longest first: the fewest idle slots at the end. The order must
	// not depend on a previous run's timings, so a unit with a spec
	// labelled slow comes first, then units by spec count; equal ones
	// keep the preview's (the seed's) order.
	sort.SliceStable(par, func(a, b int) bool {
		ua, ub := units[par[a]], units[par[b]]
		if ua.Slow != ub.Slow {
			return ua.Slow
		}
		return len(ua.IDs) > len(ub.IDs)
	})
	results := make([]unitResult, len(units))
	start := time.Now()
	runBatch := func(idx []int, procs int) {
		sem := make(chan struct{}, procs)
		var wg sync.WaitGroup
		for _, i := range idx {
			if ctx.Err() != nil {
				results[i] = unitResult{err: ctx.Err()}
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				results[i] = runUnit(ctx, units[i], i, dir, o.Start, out)
			}(i)
		}
		wg.Wait()
	}
	runBatch(par, o.Procs)
	runBatch(ser, 1)
	merged := Merge(preview, units, results)
	merged.StartTime, merged.EndTime = start, time.Now()
	merged.RunTime = merged.EndTime.Sub(start)
	return merged, ctx.Err()
}

// unitResult is what one unit's process left: its report, or why none.
type unitResult struct {
	report *types.Report
	err    error
	// tail is the end of the process's output, for a unit without a
	// report.
	tail string
}

// runUnit runs one unit's process and reads its report.
func runUnit(ctx context.Context, u Unit, i int, dir string, start Starter, out *lineWriter) unitResult {
	file := filepath.Join(dir, fmt.Sprintf("unit-%02d.json", i))
	cmd := start(ctx, u, file)
	// An interrupt, not a kill: ginkgo then runs the unit's clean-ups
	// (namespaces, bindings), and gets a while to do so.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Minute
	// Two pipes: ginkgo writes its output to standard output and the
	// progress lines go to standard error, and on one pipe ginkgo's
	// unterminated output would run into a progress line.
	tail := &tailBuffer{max: 40}
	prefix := fmt.Sprintf("[%s] ", u.label())
	var readers sync.WaitGroup
	pipe := func() *io.PipeWriter {
		pr, pw := io.Pipe()
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				tail.add(sc.Text())
				out.line(prefix, sc.Text())
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
		return pw
	}
	stdout, stderr := pipe(), pipe()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	out.line(prefix, fmt.Sprintf("running %s, in %s", strings.Join(u.IDs, " "), u.Name))
	runErr := cmd.Run()
	stdout.Close()
	stderr.Close()
	readers.Wait()
	b, err := os.ReadFile(file)
	if err != nil {
		if runErr == nil {
			runErr = err
		}
		return unitResult{err: runErr, tail: tail.String()}
	}
	var r types.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return unitResult{err: fmt.Errorf("unit report %s: %w", file, err), tail: tail.String()}
	}
	return unitResult{report: &r}
}

// Merge builds the run's report from preview's tree and the units'
// reports: each spec comes from the report of the unit that ran it, the
// others (left out by the run's filters) from the preview, as skipped.
// The specs of a unit without a report are failed with the reason.
func Merge(preview types.Report, units []Unit, results []unitResult) types.Report {
	owner := map[string]int{}
	for i, u := range units {
		for _, id := range u.IDs {
			owner[id] = i
		}
	}
	merged := preview
	merged.SpecReports = nil
	merged.SuiteSucceeded = true
	merged.SpecialSuiteFailureReasons = nil
	for _, s := range preview.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		id := idOf(s.LeafNodeText)
		i, ok := owner[id]
		if !ok || id == "" {
			s.State = types.SpecStateSkipped
			merged.SpecReports = append(merged.SpecReports, s)
			continue
		}
		res := results[i]
		if res.report == nil {
			s.State = types.SpecStateFailed
			why := "not run"
			if res.err != nil {
				why = res.err.Error()
			}
			s.Failure = types.Failure{Message: fmt.Sprintf("the process running %q ended without a report (%s); its last lines:\n%s", units[i].Name, why, res.tail),
				Location: s.LeafNodeLocation, FailureNodeType: types.NodeTypeIt}
			merged.SpecReports = append(merged.SpecReports, s)
			merged.SuiteSucceeded = false
			continue
		}
		got, found := findSpec(*res.report, s)
		if !found {
			s.State = types.SpecStateFailed
			s.Failure = types.Failure{Message: fmt.Sprintf("the process running %q did not report this spec: its tree differs from the parent's (a different binary?)", units[i].Name),
				Location: s.LeafNodeLocation, FailureNodeType: types.NodeTypeIt}
			merged.SuiteSucceeded = false
			got = s
		}
		merged.SpecReports = append(merged.SpecReports, got)
	}
	for _, res := range results {
		if res.report != nil {
			if !res.report.SuiteSucceeded {
				merged.SuiteSucceeded = false
			}
			merged.SpecialSuiteFailureReasons = append(merged.SpecialSuiteFailureReasons, res.report.SpecialSuiteFailureReasons...)
			// Suite-level nodes (a failed ReportAfterSuite, say) are kept.
			for _, s := range res.report.SpecReports {
				if s.LeafNodeType != types.NodeTypeIt && s.State.Is(types.SpecStateFailureStates) {
					merged.SpecReports = append(merged.SpecReports, s)
				}
			}
		}
	}
	return merged
}

// findSpec finds want's spec in r by its text and location.
func findSpec(r types.Report, want types.SpecReport) (types.SpecReport, bool) {
	for _, s := range r.SpecReports {
		if s.LeafNodeType == types.NodeTypeIt && s.LeafNodeText == want.LeafNodeText && s.LeafNodeLocation == want.LeafNodeLocation {
			return s, true
		}
	}
	return types.SpecReport{}, false
}

// progressLine is a per-spec progress line of framework's reporter.
var progressLine = regexp.MustCompile(`^\[spec \d+\]`)

// lineWriter writes the units' lines whole, numbering the progress lines
// across the run.
type lineWriter struct {
	mu    sync.Mutex
	w     io.Writer
	specs int
}

func (l *lineWriter) line(prefix, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if loc := progressLine.FindStringIndex(s); loc != nil {
		l.specs++
		fmt.Fprintf(l.w, "[spec %d]%s %s\n", l.specs, s[loc[1]:], strings.TrimSpace(prefix))
		return
	}
	fmt.Fprintf(l.w, "%s%s\n", prefix, s)
}

// tailBuffer keeps the last max lines.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tailBuffer) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
