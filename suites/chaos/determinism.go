package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.

	fchaos "github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/pkg/report"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// The one chaos spec that is not an incident, and so not a scenario file:
// it checks the harness's own replay guarantee, that a seed fixes which
// requests a probabilistic rule faults.
var _ = Describe("chaos: determinism", Label("imds", "system-assigned"), Ordered, ContinueOnFailure, func() {
	f := New()

	Chaos("IDH-CHAOS-0015", MUST, "the node's fault engine MUST take the run's seed, and a probabilistic rule added again with the same seed MUST fault the same requests in the same order",
		[]string{"determinism", "status-500", "imds-mode"}, func(ctx SpecContext) {
			names := f.NodeNames()
			// The last node is a worker, where the scenarios run too.
			node := names[len(names)-1]
			fc, err := f.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred(), "fakeimds control API on %s", node)
			Expect(fc.ResetFaults(ctx)).To(Succeed())
			DeferCleanup(func(ctx context.Context) { _ = fc.ResetFaults(ctx) })
			state, err := fc.Chaos(ctx)
			Expect(err).NotTo(HaveOccurred(), "read the fault engine's state on %s", node)
			Expect(state.Seed).To(Equal(f.Seed()), "the seed of the fakeimds on %s is not the run's", node)

			const resource = "https://chaos.idharness.test/idh-chaos-0015/raw"
			var rule fchaos.Rule
			Expect(json.Unmarshal([]byte(`{"name":"seeded-500","match":{"faces":["imds"],"resource":"`+resource+`","probability":0.3},"action":{"type":"status","status":500}}`), &rule)).To(Succeed())
			ns := f.Namespace(ctx)
			// Twice the same rule, each time from a fresh start: the raw
			// client's 40 sequential calls are 40 matching requests.
			var patterns [2]string
			for i := range patterns {
				_, err := fc.AddFaults(ctx, rule)
				Expect(err).NotTo(HaveOccurred(), "add the seeded rule on %s", node)
				run := f.RunProbe(ctx, ns, Probe{Node: node, Timeout: 2 * time.Minute, Args: []string{
					"--client=" + probe.ClientRaw, "--count=40", "--interval=50ms", "--timeout=5s", "--resource=" + resource}})
				Expect(fc.RemoveFault(ctx, rule.Name)).To(Succeed())
				var b strings.Builder
				for _, r := range run.Results {
					if r.OK() {
						b.WriteByte('.')
					} else {
						b.WriteByte('x')
					}
				}
				patterns[i] = b.String()
			}
			AddReportEntry("fault patterns (x: faulted) with seed "+fmt.Sprint(f.Seed()), patterns[0]+"\n"+patterns[1])
			faulted := strings.Count(patterns[0], "x")
			ok := patterns[0] == patterns[1] && faulted > 0 && faulted < len(patterns[0])
			verdict := report.Failed
			if ok {
				verdict = report.Passed
			}
			RecordClientVerdicts(map[string]string{probe.ClientRaw: verdict})
			Expect(faulted).To(BeNumerically(">", 0), "a rule with probability 0.3 faulted none of 40 requests")
			Expect(faulted).To(BeNumerically("<", len(patterns[0])), "a rule with probability 0.3 faulted all 40 requests")
			Expect(patterns[1]).To(Equal(patterns[0]), "the same rule and seed faulted other requests the second time")
		})
})
