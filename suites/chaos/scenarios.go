package chaos

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive // gomega's matchers read best unqualified.

	"github.com/idharness/idharness/internal/report"
	"github.com/idharness/idharness/internal/scenario"
	"github.com/idharness/idharness/scenarios"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// The chaos specs are the shipped scenario files with a spec: block:
// each is played in the cluster by internal/scenario, exactly as
// `idharness scenario run --cluster NAME FILE` plays it, and judged by
// the scenario's expectations. This file only turns them into specs.
var _ = Describe("chaos: scenarios", Ordered, ContinueOnFailure, func() {
	BeforeAll(func(ctx SpecContext) { Setup(ctx) })

	for _, s := range shippedSpecs() {
		Chaos(s.Spec.ID, Level(s.Spec.Level), s.Spec.Statement, s.Spec.Labels, func(ctx SpecContext) {
			res, err := scenario.RunInCluster(ctx, s, scenario.ClusterOptions{Stack: Stack, Progress: GinkgoWriter})
			Expect(err).NotTo(HaveOccurred(), "scenario %s could not be played", s.File())
			recordScenario(s, res)
			Expect(res.Passed).To(BeTrue(), "%s", failedVerdicts(res))
		})
	}
})

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
