package conformance

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/pkg/api/podidentity"
	"github.com/idharness/idharness/pkg/proberesult"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// expectRefused checks that every client failed without a token and
// that the last HTTP status was one of want.
func expectRefused(run ProbeRun, want ...int) {
	GinkgoHelper()
	outcome := map[string]bool{}
	var problems []string
	for _, r := range run.Results {
		ok := r.Status == proberesult.StatusError && r.IdentityGot == "" && (len(want) == 0 || containsInt(want, r.HTTPStatus))
		outcome[r.Client] = ok
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: status %s, HTTP %d, token for %q, error %q", r.Client, r.Status, r.HTTPStatus, r.IdentityGot, r.Error))
		}
	}
	RecordClients(outcome)
	Expect(problems).To(BeEmpty(), "want every client refused (HTTP %v) on node %s", want, run.Node)
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// neverServed checks that the node's fakeimds served no token for
// clientID and resource: a refusal by the agent must not be a token
// fetched and then withheld.
func neverServed(ctx context.Context, f *Framework, node, clientID, resource string) {
	GinkgoHelper()
	c, err := f.FakeIMDS(ctx, node)
	Expect(err).NotTo(HaveOccurred())
	entries, err := c.Journal(ctx, 0)
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if e.Resource == resource && (clientID == "" || strings.EqualFold(e.Identity, clientID)) && e.Status == 200 {
			Fail(fmt.Sprintf("fakeimds on %s served a token for %s (%s) to %s", node, e.Identity, resource, e.Remote))
		}
	}
}

// runningProbe starts the probe in the background and returns once its pod
// runs, with its IP; wait returns its results when it has finished.
func runningProbe(ctx context.Context, f *Framework, ns string, p Probe) (ip string, wait func() ProbeRun) {
	GinkgoHelper()
	var run ProbeRun
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		run = f.RunProbe(ctx, ns, p)
	}()
	kube := f.Kube()
	Eventually(ctx, func() string {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=probe"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
			return ""
		}
		return pods.Items[0].Status.PodIP
	}).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).ShouldNot(BeEmpty(), "the background probe pod runs")
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=probe"})
	Expect(err).NotTo(HaveOccurred())
	return pods.Items[0].Status.PodIP, func() ProbeRun { <-done; return run }
}

// uniqueResource is a resource no other spec asks for, so journal entries
// and SDK caches are this spec's own.
func uniqueResource() string { return "api://idharness-podid-" + rand.String(6) }

// Not Ordered: each spec has its namespace, bindings and resource, so a
// parallel run spreads them (internal/parallel), and one failed spec
// cannot hide the verdicts of the others.
var _ = Describe("Pod identity", Label("pod-identity"), func() {
	f := New()
	BeforeEach(func(ctx SpecContext) { f.RequirePodIdentityAgent(ctx) })

	Conformance("IDH-CONF-0201", MUST, "a pod bound to a user-assigned identity asking with no selector gets a token for the bound identity, with every client",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--resource=" + vaultResource}})
			expectTokens(run, f.Identity("id-a").ObjectID, vaultResource)
		})

	for _, sel := range []struct {
		id, kind string
		arg      func(name string, i config.Identity) string
	}{
		{"IDH-CONF-0202", "client_id", func(_ string, i config.Identity) string { return "client_id=" + i.ClientID }},
		{"IDH-CONF-0203", "msi_res_id", func(n string, _ config.Identity) string { return "resource_id=" + f.Identities().ResourceID(n) }},
	} {
		Conformance(sel.id, MUST, "a pod bound to two identities selecting one by "+sel.kind+" gets a token for that identity, with every client that can select by it",
			[]string{"pod-identity"}, func(ctx SpecContext) {
				node, _ := nodes(f)
				ns := f.PodIdentityNamespace(ctx)
				f.BindIdentity(ctx, ns, "id-a", "web")
				f.BindIdentity(ctx, ns, "id-b", "web")
				id := f.Identity("id-b")
				run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=" + sel.arg("id-b", id), "--resource=" + vaultResource}})
				expectTokens(run, id.ObjectID, vaultResource)
			})
	}

	Conformance("IDH-CONF-0218", MUST, "a pod bound only to a misconfigured AzureIdentity (user-assigned, resourceID but no clientID) is refused and gets no token, never the node's identity, with every client",
		[]string{"pod-identity", "negative", "misconfiguration", "security"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			// aad-pod-identity documents a user-assigned AzureIdentity with
			// both IDs; without clientID an agent that asks IMDS with no
			// selector hands the pod the node's identity (fail-open).
			f.BindIdentityWithoutClientID(ctx, ns, "id-a", "web")
			res := uniqueResource()
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Timeout: 3 * time.Minute,
				Args: []string{"--identity=system", "--resource=" + res}})
			for _, r := range run.Results {
				Expect(r.IdentityGot).NotTo(Equal(f.SystemAssigned(node).ObjectID), "%s got the node's system-assigned identity: the agent failed open on an AzureIdentity without clientID", r.Client)
			}
			expectRefused(run)
			neverServed(ctx, f, node, "", res)
		})

	Conformance("IDH-CONF-0204", MUST, "a pod with no binding in a pod identity namespace is refused (404, or 503 with Retry-After) and gets no token, within seconds",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			res := uniqueResource()
			start := time.Now()
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("api"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(run, 404, 503)
			Expect(time.Since(start)).To(BeNumerically("<", 45*time.Second), "the refusal waits out the agent's retries only")
			neverServed(ctx, f, node, "", res)
		})

	Conformance("IDH-CONF-0205", MUST, "an AzureIdentityBinding in another namespace does not apply to a pod with its selector",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			elsewhere := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, elsewhere, "id-a", "web")
			ns := f.PodIdentityNamespace(ctx)
			res := uniqueResource()
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(run, 404, 503)
			neverServed(ctx, f, node, "", res)
		})

	Conformance("IDH-CONF-0206", MUST, "a bound pod asking by client_id for an identity it is not bound to is refused, with every client, and no token for that identity is ever fetched",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			other := f.Identity("id-b")
			res := uniqueResource()
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Timeout: 3 * time.Minute,
				Args: []string{"--identity=client_id=" + other.ClientID, "--client=azidentity-mi,msal-mi,raw", "--resource=" + res}})
			expectRefused(run)
			neverServed(ctx, f, node, other.ClientID, res)
		})

	Conformance("IDH-CONF-0207", MUST, "deleting a pod's AzureIdentityBinding revokes its identity for new token requests",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			name := f.BindIdentity(ctx, ns, "id-a", "web")
			before := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource()}})
			Expect(before.Results).To(HaveEach(HaveField("Status", proberesult.StatusOK)), "bound pod before the binding is deleted")
			Expect(f.PodIdentityClient().Resource(podidentity.AzureIdentityBindingGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
			res := uniqueResource()
			after := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(after, 404, 503)
			neverServed(ctx, f, node, "", res)
		})

	Conformance("IDH-CONF-0208", MUST, "a bound pod's token request without the Metadata header is refused with 400 and never forwarded",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			res := uniqueResource()
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--client=raw", "--raw-no-metadata", "--resource=" + res}})
			expectRefused(run, 400)
			c, err := f.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			entries, err := c.Journal(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			for _, e := range entries {
				Expect(e.Resource).NotTo(Equal(res), "a request without Metadata reached fakeimds: %+v", e)
			}
		})

	Conformance("IDH-CONF-0209", MUST, "a host-network pod is not intercepted: it reaches the node's IMDS and gets the node's identity whatever its labels",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"), Args: []string{"--identity=system", "--client=msal-mi,raw", "--resource=" + uniqueResource()},
				Customize: func(p *corev1.Pod) {
					p.Spec.HostNetwork = true
					p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
				}})
			for _, r := range run.Results {
				Expect(r.Status).To(Equal(proberesult.StatusOK), "%s: %s", r.Client, r.Error)
				Expect(r.IdentityGot).To(Equal(f.SystemAssigned(node).ObjectID), "%s", r.Client)
			}
		})

	Conformance("IDH-CONF-0210", MUST, "a pod matching an AzurePodIdentityException is let through to the node's IMDS and gets the node's identity",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			exc := podidentity.ExceptionObject(ns, "agents", map[string]string{"app": "node-agent"})
			_, err := f.PodIdentityClient().Resource(podidentity.AzurePodIdentityExceptionGVR).Namespace(ns).Create(ctx, exc, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: map[string]string{"app": "node-agent"}, Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource()}})
			expectTokens(run, f.SystemAssigned(node).ObjectID, run.Results[0].Resource)
		})

	Conformance("IDH-CONF-0211", MUST, "changing a running pod's aadpodidbinding label to one no binding selects revokes its identity for its next token requests",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			// raw: no token cache, so every attempt asks the agent.
			_, wait := runningProbe(ctx, f, ns, Probe{Node: node, Labels: Bound("web"),
				Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource(), "--count=8", "--interval=1s"}})
			time.Sleep(2500 * time.Millisecond)
			pods, err := f.Kube().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=probe"})
			Expect(err).NotTo(HaveOccurred())
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"relabelled"}}}`, podidentity.BindingLabel)
			changed := time.Now()
			_, err = f.Kube().CoreV1().Pods(ns).Patch(ctx, pods.Items[0].Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
			run := wait()
			var before, after int
			for _, r := range run.Results {
				switch {
				case r.Time.Before(changed) && r.Status == proberesult.StatusOK:
					before++
				case r.Time.After(changed.Add(time.Second)):
					// A second for the watch event to reach the agent.
					after++
					Expect(r.IdentityGot).To(BeEmpty(), "attempt %d at %s, after the label changed at %s, got a token", r.Attempt, r.Time, changed)
				}
			}
			Expect(before).To(BeNumerically(">", 0), "no token while the pod was bound")
			Expect(after).To(BeNumerically(">", 0), "no attempt after the label changed")
			RecordClients(map[string]bool{"raw": true})
		})

	Conformance("IDH-CONF-0212", MUST, "a pod sending X-Forwarded-For with a bound pod's address is refused by the agent itself (the request never reaches IMDS) and gets no token; a bound pod sending it gets no token but its own",
		[]string{"pod-identity", "negative", "security"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "web")
			f.BindIdentity(ctx, ns, "id-b", "api")
			boundIP, wait := runningProbe(ctx, f, ns, Probe{Node: node, Labels: Bound("web"),
				Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource(), "--count=6", "--interval=1s"}})
			other := f.PodIdentityNamespace(ctx)
			res := uniqueResource()
			run := f.RunProbe(ctx, other, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("web"),
				Args: []string{"--identity=system", "--client=raw", "--raw-forwarded-for=" + boundIP, "--resource=" + res}})
			expectRefused(run, 400, 403, 404, 503)
			// IMDS refuses X-Forwarded-For with 400 too: a refusal that came
			// from IMDS means the agent forwarded the header, and an agent
			// that forwards it has only IMDS between a pod and any identity.
			neverReached(ctx, f, node, res)
			// A pod bound to id-b naming id-a's pod gets id-b's token or
			// nothing, never id-a's.
			res2 := uniqueResource()
			run2 := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("api"),
				Args: []string{"--identity=system", "--client=raw", "--raw-forwarded-for=" + boundIP, "--resource=" + res2}})
			b := f.Identity("id-b")
			for _, r := range run2.Results {
				Expect(r.IdentityGot).To(Or(BeEmpty(), Equal(b.ObjectID)), "a pod bound to id-b sending X-Forwarded-For %s got a token for oid %s", boundIP, r.IdentityGot)
			}
			a := f.Identity("id-a")
			neverServed(ctx, f, node, a.ClientID, res2)
			Expect(wait().Results).NotTo(BeEmpty())
		})
})

// neverReached checks that no request for resource reached the node's
// fakeimds at all, whatever its status.
func neverReached(ctx context.Context, f *Framework, node, resource string) {
	GinkgoHelper()
	c, err := f.FakeIMDS(ctx, node)
	Expect(err).NotTo(HaveOccurred())
	entries, err := c.Journal(ctx, 0)
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if e.Resource == resource {
			Fail(fmt.Sprintf("a request for %s reached fakeimds on %s (HTTP %d, %s, headers %v): the agent forwarded it instead of refusing it", resource, node, e.Status, e.Error, e.Headers))
		}
	}
}

var _ = Describe("Pod identity, init containers and nodes", Label("pod-identity"), func() {
	f := New()
	BeforeEach(func(ctx SpecContext) { f.RequirePodIdentityAgent(ctx) })

	Conformance("IDH-CONF-0213", MUST, "a bound pod's init container gets the bound identity's token, as its other containers do",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-a", "init")
			run := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: node, Labels: Bound("init"), Args: []string{"--identity=system", "--resource=" + vaultResource},
				Customize: func(p *corev1.Pod) {
					// The probe runs as the init container; the main
					// container only has to start and stop.
					probeC := p.Spec.Containers[0]
					main := probeC
					main.Name, main.Args, main.Env = "main", []string{"--help"}, nil
					p.Spec.InitContainers = []corev1.Container{probeC}
					p.Spec.Containers = []corev1.Container{main}
				}})
			expectTokens(run, f.Identity("id-a").ObjectID, vaultResource)
		})

	Conformance("IDH-CONF-0214", MUST, "a pod bound to an identity attached only to another node's VM gets no token on its own node, and the token on that node",
		[]string{"pod-identity", "negative", "multi-node"}, func(ctx SpecContext) {
			withID, other := nodes(f)
			if other == "" {
				Skip("needs two nodes (idharness run --workers 1)")
			}
			ns := f.PodIdentityNamespace(ctx)
			f.BindIdentity(ctx, ns, "id-node", "pinned")
			id := f.Identity("id-node")
			res := uniqueResource()
			off := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: other, Labels: Bound("pinned"), Args: []string{"--identity=system", "--resource=" + res, "--client=azidentity-mi,raw"}})
			for _, r := range off.Results {
				Expect(r.IdentityGot).To(BeEmpty(), "%s on %s got a token for %s", r.Client, other, r.IdentityGot)
				Expect(r.Status).To(Equal(proberesult.StatusError), "%s on %s", r.Client, other)
			}
			neverServed(ctx, f, other, id.ClientID, res)
			on := f.RunProbe(ctx, ns, Probe{StartDelay: PodIdentityWarmUp, Node: withID, Labels: Bound("pinned"), Args: []string{"--identity=system", "--resource=" + res, "--client=azidentity-mi,raw"}})
			expectTokens(on, id.ObjectID, res)
		})
})

var _ = Describe("Pod identity, binding latency", Label("pod-identity"), func() {
	f := New()
	BeforeEach(func(ctx SpecContext) { f.RequirePodIdentityAgent(ctx) })

	Conformance("IDH-CONF-0215", SHOULD, "a running pod whose binding is created later gets its bound identity's token within 10 s of the binding's creation",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.PodIdentityNamespace(ctx)
			res := uniqueResource()
			// One client, asking every 250 ms: the first success after the
			// binding exists measures the agent's reaction.
			_, wait := runningProbe(ctx, f, ns, Probe{Node: node, Labels: Bound("late"), Timeout: 2 * time.Minute,
				Args: []string{"--identity=system", "--resource=" + res, "--client=raw", "--duration=14s", "--interval=250ms", "--timeout=5s"}})
			time.Sleep(2 * time.Second)
			created := time.Now()
			f.BindIdentity(ctx, ns, "id-a", "late")
			run := wait()
			var first time.Time
			for _, r := range run.Results {
				if r.Status == proberesult.StatusOK && r.IdentityGot == f.Identity("id-a").ObjectID {
					first = r.Time.Add(r.LatencyMs.D())
					break
				}
				Expect(r.IdentityGot).To(BeEmpty(), "before its binding the pod got a token for %s", r.IdentityGot)
			}
			Expect(first.IsZero()).To(BeFalse(), "no token for the bound identity while the probe ran (14 s)")
			took := first.Sub(created)
			AddReportEntry("binding creation to first token", took.Round(time.Millisecond).String())
			fmt.Fprintf(GinkgoWriter, "binding creation to first token: %s\n", took.Round(time.Millisecond))
			Expect(took).To(BeNumerically("<", 10*time.Second))
		})
})
