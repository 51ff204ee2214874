package parallel

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
)

// The specs below are a small suite that the tests run for real, in
// child processes of this test binary (TestChild), as `idharness run
// --parallel` runs the conformance specs in processes of idharness.
var _ = Describe("Meet", func() {
	// Each waits for the other's file: both pass only if their units run
	// at the same time.
	It("[IDH-TEST-0001] MUST meet the other unit", func() { meet("a", "b") })
})

var _ = Describe("Greet", func() {
	It("[IDH-TEST-0002] MUST greet the other unit", func() { meet("b", "a") })
	It("[IDH-TEST-0003] MUST fail", Label("failing"), func() { Fail("boom") })
	It("[IDH-TEST-0007] MUST run alone too", Label(SerialLabel), func() {})
})

// Ordered: its specs share state, so they are one unit.
var _ = Describe("Pair", Label("pair"), Ordered, func() {
	It("[IDH-TEST-0008] MUST come first", func() {})
	It("[IDH-TEST-0009] MUST come second", func() {})
})

var _ = Describe("Alone", Label("alone"), func() {
	It("[IDH-TEST-0004] MUST run alone", Label(SerialLabel), func() {})
})

var _ = Describe("Crash", Label("crash"), func() {
	It("[IDH-TEST-0005] MUST not end its process", func() {
		os.Stdout.WriteString("about to crash\n")
		os.Exit(3)
	})
})

var _ = Describe("Slow", Label("slow"), func() {
	It("[IDH-TEST-0006] MUST clean up when interrupted", func(ctx SpecContext) {
		DeferCleanup(func() {
			os.WriteFile(filepath.Join(os.Getenv("IDH_TEST_DIR"), "cleaned"), nil, 0o644)
		})
		os.WriteFile(filepath.Join(os.Getenv("IDH_TEST_DIR"), "started"), nil, 0o644)
		<-ctx.Done()
	})
})

// meet writes mine in the test's directory and waits for theirs.
func meet(mine, theirs string) {
	dir := os.Getenv("IDH_TEST_DIR")
	if err := os.WriteFile(filepath.Join(dir, mine), nil, 0o644); err != nil {
		Fail(err.Error())
	}
	wait, err := time.ParseDuration(os.Getenv("IDH_TEST_MEET_WAIT"))
	if err != nil {
		wait = 20 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, theirs)); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	Fail("the other unit never came: units ran one after the other")
}

// TestChild runs one unit when a test starts this binary as a child.
func TestChild(t *testing.T) {
	report := os.Getenv("IDH_TEST_REPORT")
	if report == "" {
		t.Skip("run as a parallel run's process only")
	}
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.FocusStrings = []string{os.Getenv("IDH_TEST_FOCUS")}
	suiteCfg.LabelFilter = os.Getenv("IDH_TEST_LABELS")
	// Progress lines as framework's reporter writes them, numbered per
	// process: the parent numbers them across the run.
	n := 0
	ReportAfterEach(func(r SpecReport) {
		n++
		fmt.Fprintf(os.Stderr, "[spec %d] %s %s\n", n, idOf(r.LeafNodeText), r.State)
		// Ginkgo's own output, unterminated, must not swallow the line.
		fmt.Fprint(os.Stdout, "•")
	})
	ReportAfterSuite("write", func(r Report) {
		b, _ := json.Marshal(r)
		os.WriteFile(report, b, 0o644)
	})
	RunSpecs(t, "parallel test", suiteCfg, repCfg)
}

// childStarter starts this test binary as a unit's process.
func childStarter(dir, labels string, env ...string) Starter {
	return func(ctx context.Context, u Unit, reportFile string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChild$")
		cmd.Env = append(os.Environ(), "IDH_TEST_REPORT="+reportFile, "IDH_TEST_FOCUS="+u.Focus(), "IDH_TEST_LABELS="+labels, "IDH_TEST_DIR="+dir)
		cmd.Env = append(cmd.Env, env...)
		return cmd
	}
}

func preview(t *testing.T, labels string) types.Report {
	t.Helper()
	suiteCfg, _ := GinkgoConfiguration()
	suiteCfg.LabelFilter = labels
	return PreviewSpecs("parallel test", suiteCfg)
}

func states(r types.Report) map[string]types.SpecState {
	out := map[string]types.SpecState{}
	for _, s := range r.SpecReports {
		if s.LeafNodeType == types.NodeTypeIt {
			out[idOf(s.LeafNodeText)] = s.State
		}
	}
	return out
}

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		labels string
		want   []Unit
	}{
		{"!crash", []Unit{
			{Name: "Meet", IDs: []string{"IDH-TEST-0001"}},
			{Name: "Greet", IDs: []string{"IDH-TEST-0002"}},
			{Name: "Greet", IDs: []string{"IDH-TEST-0003"}},
			{Name: "Greet (serial)", IDs: []string{"IDH-TEST-0007"}, Serial: true},
			{Name: "Alone (serial)", IDs: []string{"IDH-TEST-0004"}, Serial: true},
			{Name: "Slow", IDs: []string{"IDH-TEST-0006"}, Slow: true},
			{Name: "Pair", IDs: []string{"IDH-TEST-0008", "IDH-TEST-0009"}},
		}},
		{"!crash && !slow && !failing && !alone && !Serial && !pair", []Unit{
			{Name: "Meet", IDs: []string{"IDH-TEST-0001"}},
			{Name: "Greet", IDs: []string{"IDH-TEST-0002"}},
		}},
	} {
		got, err := Units(preview(t, tc.labels))
		if err != nil {
			t.Fatal(err)
		}
		// The preview's order is the seed's; the units are what count.
		byID := func(us []Unit) func(i, j int) bool {
			return func(i, j int) bool { return us[i].IDs[0] < us[j].IDs[0] }
		}
		sort.Slice(got, byID(got))
		sort.Slice(tc.want, byID(tc.want))
		if len(got) != len(tc.want) {
			t.Fatalf("%s: units %+v, want %+v", tc.labels, got, tc.want)
		}
		for i := range got {
			if got[i].Name != tc.want[i].Name || strings.Join(got[i].IDs, ",") != strings.Join(tc.want[i].IDs, ",") || got[i].Serial != tc.want[i].Serial || got[i].Slow != tc.want[i].Slow {
				t.Errorf("%s: unit %d = %+v, want %+v", tc.labels, i, got[i], tc.want[i])
			}
		}
	}
}

// TestRunLongestFirst: a slow unit starts before the others, then the
// units with more specs; equal ones keep their order, and serial units
// come last.
func TestRunLongestFirst(t *testing.T) {
	units := []Unit{{IDs: []string{"A"}}, {IDs: []string{"S"}, Serial: true}, {IDs: []string{"B"}}, {IDs: []string{"Z"}, Slow: true}, {IDs: []string{"P", "Q"}}, {IDs: []string{"C"}}}
	var order []string
	start := func(ctx context.Context, u Unit, _ string) *exec.Cmd {
		order = append(order, u.IDs[0]) // one process at a time: no race
		return exec.CommandContext(ctx, "true")
	}
	if _, err := Run(context.Background(), types.Report{}, units, Options{Procs: 1, Start: start}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "Z,P,A,B,C,S" {
		t.Fatalf("started %s, want Z,P,A,B,C,S", got)
	}
}

func TestUnitsNeedIDs(t *testing.T) {
	r := types.Report{SpecReports: types.SpecReports{{LeafNodeType: types.NodeTypeIt, State: types.SpecStatePassed, LeafNodeText: "no id here"}}}
	if _, err := Units(r); err == nil || !strings.Contains(err.Error(), "has no ID") {
		t.Fatalf("err = %v, want one saying the spec has no ID", err)
	}
}

func TestFocus(t *testing.T) {
	u := Unit{IDs: []string{"IDH-CONF-0001", "IDH-CONF-0010"}}
	for text, want := range map[string]bool{
		"IMDS [IDH-CONF-0001] MUST x": true,
		"IMDS [IDH-CONF-0010] MUST x": true,
		"IMDS [IDH-CONF-0100] MUST x": false,
		"IMDS [IDH-CONF-00010] MUST":  false,
	} {
		if got := mustMatch(t, u.Focus(), text); got != want {
			t.Errorf("focus %s on %q = %v, want %v", u.Focus(), text, got, want)
		}
	}
}

// TestRun runs real units in real processes: the two that must meet run
// side by side, a failing spec fails in the merged report, the serial
// unit runs, and the specs the filter left out stay skipped.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	labels := "!crash && !slow"
	pv := preview(t, labels)
	units, err := Units(pv)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r, err := Run(context.Background(), pv, units, Options{Procs: 2, Start: childStarter(dir, labels), Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]types.SpecState{
		"IDH-TEST-0001": types.SpecStatePassed, "IDH-TEST-0002": types.SpecStatePassed, "IDH-TEST-0003": types.SpecStateFailed,
		"IDH-TEST-0004": types.SpecStatePassed, "IDH-TEST-0007": types.SpecStatePassed, "IDH-TEST-0005": types.SpecStateSkipped, "IDH-TEST-0006": types.SpecStateSkipped,
		"IDH-TEST-0008": types.SpecStatePassed, "IDH-TEST-0009": types.SpecStatePassed,
	}
	got := states(r)
	for id, st := range want {
		if got[id] != st {
			t.Errorf("%s: %s, want %s\noutput:\n%s", id, got[id], st, out.String())
		}
	}
	if r.SuiteSucceeded {
		t.Error("the merged report succeeded with a failed spec")
	}
	for i := 1; i <= 5; i++ {
		if n := strings.Count(out.String(), fmt.Sprintf("[spec %d] ", i)); n != 1 {
			t.Errorf("progress line %d appears %d times, want once (numbered across the run):\n%s", i, n, out.String())
		}
	}
	if !strings.Contains(out.String(), "[IDH-TEST-0002] running IDH-TEST-0002, in Greet") || !strings.Contains(out.String(), "[Pair] running IDH-TEST-0008 IDH-TEST-0009, in Pair") {
		t.Errorf("output does not name the unit's lines:\n%s", out.String())
	}
}

// TestRunOneAtATime is TestRun's meeting with one process: the meeting
// must fail, which shows that TestRun's pass comes from running side by
// side.
func TestRunOneAtATime(t *testing.T) {
	dir := t.TempDir()
	labels := "!crash && !slow && !failing && !alone && !Serial"
	pv := preview(t, labels)
	units, _ := Units(pv)
	r, err := Run(context.Background(), pv, units, Options{Procs: 1, Start: childStarter(dir, labels, "IDH_TEST_MEET_WAIT=2s")})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(r); got["IDH-TEST-0001"] != types.SpecStateFailed && got["IDH-TEST-0002"] != types.SpecStateFailed {
		t.Fatalf("the units met with one process: %v", got)
	}
}

// TestRunCrash: a unit whose process dies without a report fails its
// specs with the process's last lines, never leaves them skipped.
func TestRunCrash(t *testing.T) {
	labels := "crash"
	pv := preview(t, labels)
	units, _ := Units(pv)
	r, err := Run(context.Background(), pv, units, Options{Procs: 2, Start: childStarter(t.TempDir(), labels)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.SpecReports {
		if idOf(s.LeafNodeText) != "IDH-TEST-0005" {
			continue
		}
		if s.State != types.SpecStateFailed || !strings.Contains(s.Failure.Message, "about to crash") || !strings.Contains(s.Failure.Message, "without a report") {
			t.Fatalf("crashed unit's spec: %s %q", s.State, s.Failure.Message)
		}
	}
	if r.SuiteSucceeded {
		t.Error("the merged report succeeded with a crashed unit")
	}
}

// TestRunInterrupt: cancelling the run interrupts the processes, whose
// clean-ups then run, and Run returns the context's error.
func TestRunInterrupt(t *testing.T) {
	dir := t.TempDir()
	labels := "slow"
	pv := preview(t, labels)
	units, _ := Units(pv)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, pv, units, Options{Procs: 1, Start: childStarter(dir, labels)})
	if err == nil {
		t.Fatal("Run returned no error after its context was cancelled")
	}
	if _, err := os.Stat(filepath.Join(dir, "cleaned")); err != nil {
		t.Fatal("the interrupted unit's clean-up did not run")
	}
}

func mustMatch(t *testing.T, re, s string) bool {
	t.Helper()
	return regexp.MustCompile(re).MatchString(s)
}
