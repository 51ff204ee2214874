package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive // gomega's matchers read best unqualified.

	"github.com/idharness/idharness/internal/scenario"
	"github.com/idharness/idharness/pkg/report"
	"github.com/idharness/idharness/scenarios"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// The chaos specs are the shipped scenario files with a spec: block:
// each is played in the cluster by internal/scenario, exactly as
// `idharness scenario run --cluster NAME FILE` plays it, and judged by
// the scenario's expectations. This file only turns them into specs.
//
// The specs selected to run are played side by side, each on a worker
// node of its own (scenario.Pool), longest first: most of a spec's time
// is a fault window with the CPU idle. Each spec then waits for its own
// play and reports it, so the report reads as if they ran one by one.
var _ = Describe(scenariosContainer, Ordered, ContinueOnFailure, func() {
	f := New()
	specs := shippedSpecs()
	var pool *scenario.Pool
	BeforeAll(func(ctx SpecContext) {
		f.Setup(ctx)
		nodes, err := f.Workers(ctx)
		Expect(err).NotTo(HaveOccurred())
		// The pool connects to the stack itself: the handle does not
		// hand the internal stack out (scenario.ConnectPool says why).
		pool, err = scenario.ConnectPool(ctx, f.RESTConfig(), f.StackNamespace(), nodes)
		Expect(err).NotTo(HaveOccurred())
		// After the container's last spec, and on an interrupt: running
		// plays are cancelled and clean their node and namespace up.
		DeferCleanup(pool.Close)
		ahead := selected(specs, f.WIWebhook())
		pool.Start(ahead...)
		GinkgoWriter.Printf("playing %d chaos scenarios on %d nodes (%s), longest first\n", len(ahead), len(nodes), strings.Join(nodes, ", "))
	})

	for _, s := range specs {
		Chaos(s.Spec.ID, Level(s.Spec.Level), s.Spec.Statement, s.Spec.Labels, func(ctx SpecContext) {
			if why := unplayable(NoHost(), f.WIWebhook(), s); why != "" {
				Skip(why)
			}
			pl, err := pool.Wait(ctx, s)
			Expect(err).NotTo(HaveOccurred(), "waiting for scenario %s", s.File())
			_, _ = GinkgoWriter.Write(pl.Log())
			res, err := pl.Result()
			Expect(err).NotTo(HaveOccurred(), "scenario %s could not be played", s.File())
			AddReportEntry("played", fmt.Sprintf("on %s in %s", pl.Node(), pl.Elapsed().Round(time.Second)))
			recordScenario(s, res)
			Expect(res.Passed).To(BeTrue(), "%s", failedVerdicts(res))
		})
	}
})

// scenariosContainer is the text of the specs' container.
const scenariosContainer = "chaos: scenarios"

// selected returns the specs the suite's filters select and the run can
// play (webhook: the stack's workload identity webhook under test),
// longest first, to be played ahead of their turn.
func selected(specs []*scenario.Scenario, webhook string) []*scenario.Scenario {
	var out []*scenario.Scenario
	for _, s := range specs {
		text := scenariosContainer + " " + ChaosText(s.Spec.ID, Level(s.Spec.Level), s.Spec.Statement)
		if Selected(text, ChaosLabels(Level(s.Spec.Level), s.Spec.Labels)) && unplayable(NoHost(), webhook, s) == "" {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ClusterDuration() > out[j].ClusterDuration() })
	return out
}

// unplayable is why s is skipped rather than played: it does not apply
// to the implementation under test (it needs the reference webhook's
// test paths, and the stack's workload identity webhook, webhook, is
// another's), or a run inside the cluster cannot play it (hostless).
// Either way the report lists it among the specs that did not run, so
// the verdict is Partial: never a failure of an implementation for a
// test path it does not have, and never Conformant without the spec.
func unplayable(noHost, webhook string, s *scenario.Scenario) string {
	if why := s.NotApplicable(webhook); why != "" {
		return why
	}
	return hostless(noHost, s)
}

// hostless is why s cannot be played by a run inside the cluster, which
// cannot reach the machine behind the nodes and has only the runner's
// least-privilege role (noHost says why: framework.NoHost), or empty.
// The spec is then skipped with this reason, so that the report lists it
// among the specs that did not run and the verdict is Partial, not
// Conformant.
func hostless(noHost string, s *scenario.Scenario) string {
	if noHost == "" {
		return ""
	}
	need := s.NeedsHost()
	if need == "" {
		return ""
	}
	return fmt.Sprintf("cannot be played from inside the cluster (%s: %s), and %s", s.File(), need, noHost)
}

// shippedSpecs returns the embedded scenario files that are chaos specs.
// A broken file fails the suite's construction: the files are checked by
// TestShippedScenarios before they can reach a binary.
func shippedSpecs() []*scenario.Scenario {
	all, err := scenario.LoadFS(scenarios.FS(), "scenarios")
	if err != nil {
		panic(fmt.Sprintf("chaos: shipped scenarios: %v", err))
	}
	specs, err := scenario.Specs(all)
	if err != nil {
		panic(fmt.Sprintf("chaos: shipped scenarios: %v", err))
	}
	return specs
}

// recordScenario puts the run's evidence in the report: its verdicts,
// its timeline and resilience rows (the HTML report draws them), and
// the per-client verdicts of the spec × client matrix.
func recordScenario(s *scenario.Scenario, res *scenario.Result) {
	sp := res.ReportSpec(s)
	for _, e := range sp.Evidence {
		name, body, _ := strings.Cut(e, ":\n")
		vis := types.ReportEntryVisibilityAlways
		if name == report.TimelineEvidence {
			vis = types.ReportEntryVisibilityNever
		}
		AddReportEntry(name, vis, body)
	}
	RecordClientVerdicts(sp.Clients)
}

// failedVerdicts lists the verdicts that are not as the scenario expects.
func failedVerdicts(res *scenario.Result) string {
	var out []string
	for _, v := range res.Verdicts {
		if !v.OK() {
			out = append(out, fmt.Sprintf("%s: %s (%s)", v.Expectation, v.Detail, v.Outcome))
		}
	}
	return strings.Join(out, "\n")
}
