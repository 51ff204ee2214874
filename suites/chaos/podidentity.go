package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/report"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// agentRecoveryBound bounds how long after a restarted agent is ready a
// bound pod's next call gets its token: the raw client calls every
// 250 ms, and the new agent's informers sync within a second or two.
const agentRecoveryBound = 10 * time.Second

var _ = Describe("chaos: pod identity agent under fault", Label("pod-identity"), Ordered, ContinueOnFailure, func() {
	var agent string
	BeforeAll(func(ctx SpecContext) { agent = RequirePodIdentityAgent(ctx) })

	Chaos("IDH-CHAOS-0012", MUST, "the pod identity agent MUST NOT hand any pod a token for an identity it is not bound to, also while the agent restarts under load, and a bound pod MUST get its own identity's token again within 10 s of the new agent being ready",
		[]string{"agent-restart", "pod-identity"}, func(ctx SpecContext) {
			fr := begin(ctx)
			ns := PodIdentityNamespace(ctx)
			BindIdentity(ctx, ns, "id-a", "chaos-bound", false)
			idA := Identity("id-a")
			resource := resourceFor("IDH-CHAOS-0012", "raw")
			// Three pods calling without a cache, four times a second: the
			// bound pod, and two unbound ones, asking for the bound
			// identity by client ID and for the node's default.
			pods := []struct {
				name string
				p    Probe
			}{
				{"raw bound", Probe{Labels: Bound("chaos-bound"), Args: []string{"--identity=system"}}},
				{"raw unbound, client_id of id-a", Probe{Labels: Bound("chaos-nobody"), Args: []string{"--identity=client_id=" + idA.ClientID}}},
				{"raw unbound, default", Probe{Labels: Bound("chaos-nobody"), Args: []string{"--identity=system"}}},
			}
			runs := make([]ProbeRun, len(pods))
			var wg sync.WaitGroup
			for i, pd := range pods {
				p := pd.p
				p.Node, p.Timeout = fr.node, 3*time.Minute
				p.Args = append(p.Args, "--client=raw", "--duration=50s", "--interval=250ms", "--timeout=3s", "--resource="+resource)
				wg.Add(1)
				go func() {
					defer GinkgoRecover()
					defer wg.Done()
					runs[i] = RunProbe(ctx, ns, p)
				}()
			}
			// Not by the probe's User-Agent tag: NMI does not forward it.
			held := fr.waitForJournal(ctx, 60*time.Second, func(e journal.Entry) bool {
				return e.Status == 200 && strings.EqualFold(e.Identity, idA.ClientID)
			})
			// Two restarts, the second right after the first agent is back.
			var restarts []window
			for i := range 2 {
				from := time.Now()
				ready := restartAgent(ctx, agent, fr.node)
				restarts = append(restarts, fr.mark(fmt.Sprintf("agent-restart-%d", i+1), "agent-restart", from, ready))
				time.Sleep(5 * time.Second)
			}
			wg.Wait()
			Expect(held).To(BeTrue(), "the bound pod got no token within 60 s, before any restart")
			var results []probe.Result
			outcomes := map[string]clientOutcome{}
			var problems []string
			entries := fr.journal(ctx)
			for i, run := range runs {
				name := pods[i].name
				var wrong []string
				got := 0
				for _, r := range run.Results {
					r.Client = name
					results = append(results, r)
					if !r.OK() {
						continue
					}
					got++
					if i > 0 || !strings.EqualFold(r.ClientIDGot, idA.ClientID) {
						wrong = append(wrong, fmt.Sprintf("%s at +%s: token for client %s (oid %s)", name,
							r.Time.Sub(fr.start).Round(100*time.Millisecond), r.ClientIDGot, r.IdentityGot))
					}
				}
				// The agent calls the node's IMDS from the host: a token
				// served to the pod's own address bypassed the agent.
				for _, e := range entries {
					if run.PodIP != "" && strings.HasPrefix(e.Remote, run.PodIP+":") && e.Status == 200 {
						wrong = append(wrong, fmt.Sprintf("%s: fakeimds served %s a token for %s directly, bypassing the agent", name, run.PodIP, e.Identity))
					}
				}
				if len(wrong) > 3 {
					wrong = append(wrong[:3], fmt.Sprintf("… and %d more", len(wrong)-3))
				}
				problems = append(problems, wrong...)
				note := fmt.Sprintf("%d of %d calls got a token", got, len(run.Results))
				if i > 0 {
					note = fmt.Sprintf("refused %d of %d calls", len(run.Results)-got, len(run.Results))
				}
				outcomes[name] = clientOutcome{verdictOf(len(wrong) == 0), note}
			}
			// The bound pod's recovery after each restart.
			bound := ByClient(results)[pods[0].name]
			for _, w := range restarts {
				row := resilience(pods[0].name, bound, w, clientOutcome{})
				if !recoveredWithin(row, agentRecoveryBound) {
					problems = append(problems, fmt.Sprintf("%s: recovered %s after %s's new agent was ready (bound %s)", pods[0].name, recovered(row), w.name, agentRecoveryBound))
					outcomes[pods[0].name] = clientOutcome{report.Failed, outcomes[pods[0].name].note + "; slow recovery after " + w.name}
				}
			}
			fr.finish(ctx, results, restarts[len(restarts)-1], outcomes)
			Expect(problems).To(BeEmpty())
		})

	Chaos("IDH-CHAOS-0013", MUST, "a bound pod MUST get its own identity's token within 30 s of the end of 15 s of 500s from the node's IMDS (the agent's upstream), and MUST NOT get any other identity's token meanwhile",
		[]string{"status-500", "upstream", "pod-identity"}, func(ctx SpecContext) {
			fr := begin(ctx)
			ns := PodIdentityNamespace(ctx)
			BindIdentity(ctx, ns, "id-a", "chaos-bound", false)
			idA := Identity("id-a")
			fr.podLabels = Bound("chaos-bound")
			fr.inject(ctx, rule(`{"name":"upstream-500-15s","match":{"faces":["imds"],"identity":"`+idA.ClientID+`"},"action":{"type":"status","status":500},"schedule":{"for":"15s"}}`))
			w := fr.windowOf("upstream-500-15s")
			clients := []string{probe.ClientAzidentityMI, probe.ClientMSALMI, probe.ClientRaw}
			results := fr.probeEach(ctx, ns, clients, 3*time.Minute, func(c string) []string {
				return []string{"--duration=35s", "--interval=2s", "--timeout=60s", "--resource=" + resourceFor("IDH-CHAOS-0013", c)}
			})
			outcomes := map[string]clientOutcome{}
			var problems []string
			for c, rs := range ByClient(results) {
				row := resilience(c, rs, w, clientOutcome{})
				// One bound for every client: an agent may retry the
				// upstream itself (NMI does, with backoff), holding the
				// pod's call past the window.
				bound := azidentityRecoveryBound
				inTime, onlyBound := recoveredWithin(row, bound), true
				for _, r := range rs {
					if r.OK() && !strings.EqualFold(r.ClientIDGot, idA.ClientID) {
						onlyBound = false
						problems = append(problems, fmt.Sprintf("%s: token for client %s, not the bound id-a", c, r.ClientIDGot))
					}
				}
				outcomes[c] = clientOutcome{verdictOf(inTime && onlyBound), fmt.Sprintf("recovered %s after the 500s", recovered(row))}
				if !inTime {
					problems = append(problems, fmt.Sprintf("%s: recovered %s after the upstream 500s ended (bound %s)", c, recovered(row), bound))
				}
			}
			fr.finish(ctx, results, w, outcomes)
			Expect(problems).To(BeEmpty())
		})
})

// restartAgent deletes the pod identity agent's pod on node (its
// DaemonSet starts another, as on a rollout or eviction) and returns when
// the new one is ready.
func restartAgent(ctx context.Context, agent, node string) time.Time {
	GinkgoHelper()
	kube := Stack.Deployer().Kube
	ds, err := kube.AppsV1().DaemonSets(Stack.Namespace).Get(ctx, agent, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred(), "read the agent's DaemonSet %s", agent)
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	list := func() []corev1.Pod {
		pods, err := kube.CoreV1().Pods(Stack.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel, FieldSelector: "spec.nodeName=" + node})
		Expect(err).NotTo(HaveOccurred(), "list the agent's pods on %s", node)
		return pods.Items
	}
	old := list()
	Expect(old).To(HaveLen(1), "one %s pod on %s", agent, node)
	Expect(kube.CoreV1().Pods(Stack.Namespace).Delete(ctx, old[0].Name, metav1.DeleteOptions{})).To(Succeed())
	var ready time.Time
	Eventually(ctx, func() bool {
		for _, p := range list() {
			if p.Name == old[0].Name || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = time.Now()
					return true
				}
			}
		}
		return false
	}).WithTimeout(90*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "a new %s pod ready on %s", agent, node)
	return ready
}
