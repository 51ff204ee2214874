package conformance

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/internal/nodeagent"
	"github.com/idharness/idharness/internal/probe"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// podIdentityOptIn labels the namespaces whose pods the reference node
// agent serves; pods elsewhere are passed through to the node's IMDS, so
// the IMDS specs see the same thing with or without the agent.
const podIdentityOptIn = "idharness.io/pod-identity"

// podIDDyn creates the pod identity objects; set by the Describe's BeforeAll.
var podIDDyn dynamic.Interface

// podIdentityNamespace creates the spec's namespace, opted in to pod identity.
func podIdentityNamespace(ctx context.Context) string {
	GinkgoHelper()
	ns := Namespace(ctx)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, podIdentityOptIn)
	_, err := Stack.Deployer().Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred(), "label namespace %s", ns)
	return ns
}

func podIDObject(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "aadpodidentity.k8s.io/v1", "kind": kind,
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     spec,
	}}
}

// bindIdentity creates an AzureIdentity for the run's identity idName
// (by client ID, or by resource ID only) and a binding of it to pods
// labelled aadpodidbinding=selector, both in ns; it returns the binding's
// name.
func bindIdentity(ctx context.Context, ns, idName, selector string, byResourceID bool) string {
	GinkgoHelper()
	id := identity(idName)
	spec := map[string]any{"type": int64(nodeagent.UserAssignedMSI), "resourceID": Stack.Identities.ResourceID(idName)}
	if !byResourceID {
		spec["clientID"] = id.ClientID
	}
	_, err := podIDDyn.Resource(nodeagent.AzureIdentityGVR).Namespace(ns).Create(ctx, podIDObject("AzureIdentity", ns, idName, spec), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		Fail(fmt.Sprintf("create AzureIdentity %s/%s: %v", ns, idName, err))
	}
	name := idName + "-" + selector
	b := podIDObject("AzureIdentityBinding", ns, name, map[string]any{"azureIdentity": idName, "selector": selector})
	_, err = podIDDyn.Resource(nodeagent.AzureIdentityBindingGVR).Namespace(ns).Create(ctx, b, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred(), "create AzureIdentityBinding %s/%s", ns, name)
	return name
}

func bound(selector string) map[string]string {
	return map[string]string{nodeagent.BindingLabel: selector}
}

// expectRefused checks that every client failed without a token and
// that the last HTTP status was one of want.
func expectRefused(run ProbeRun, want ...int) {
	GinkgoHelper()
	outcome := map[string]bool{}
	var problems []string
	for _, r := range run.Results {
		ok := r.Status == probe.StatusError && r.IdentityGot == "" && (len(want) == 0 || containsInt(want, r.HTTPStatus))
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
func neverServed(ctx context.Context, node, clientID, resource string) {
	GinkgoHelper()
	c, err := Stack.FakeIMDS(ctx, node)
	Expect(err).NotTo(HaveOccurred())
	entries, err := c.Journal(ctx, 0)
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if e.Resource == resource && (clientID == "" || strings.EqualFold(e.Identity, clientID)) && e.Status == 200 {
			Fail(fmt.Sprintf("fakeimds on %s served a token for %s (%s) to %s", node, e.Identity, resource, e.Remote))
		}
	}
}

// uniqueResource is a resource no other spec asks for, so journal entries
// and SDK caches are this spec's own.
func uniqueResource() string { return "api://idharness-podid-" + rand.String(6) }

// Ordered for the shared BeforeAll; ContinueOnFailure so that one failed
// spec does not hide the verdicts of the others.
var _ = Describe("Pod identity", Label("pod-identity"), Ordered, ContinueOnFailure, func() {
	BeforeAll(func(ctx SpecContext) {
		Setup(ctx)
		found := false
		// The reference agent or aad-pod-identity's NMI (profiles reference
		// and aad-pod-identity).
		for _, ds := range []string{"nodeagent", "aad-nmi"} {
			_, err := Stack.Deployer().Kube.AppsV1().DaemonSets(Stack.Namespace).Get(ctx, ds, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				Fail(fmt.Sprintf("look for the pod identity agent %s: %v", ds, err))
			}
			found = found || err == nil
		}
		if !found {
			Skip("no pod identity agent deployed: run `idharness run --profile reference` (or aad-pod-identity)")
		}
		var err error
		podIDDyn, err = dynamic.NewForConfig(Stack.REST())
		Expect(err).NotTo(HaveOccurred())
	})

	Conformance("IDH-CONF-0201", MUST, "a pod bound to a user-assigned identity asking with no selector gets a token for the bound identity, with every client",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			bindIdentity(ctx, ns, "id-a", "web", false)
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--resource=" + vaultResource}})
			expectTokens(run, identity("id-a").ObjectID, vaultResource)
		})

	for _, sel := range []struct {
		id, kind     string
		byResourceID bool
		arg          func(name string, i config.Identity) string
	}{
		{"IDH-CONF-0202", "client_id", false, func(_ string, i config.Identity) string { return "client_id=" + i.ClientID }},
		{"IDH-CONF-0203", "msi_res_id", true, func(n string, _ config.Identity) string { return "resource_id=" + Stack.Identities.ResourceID(n) }},
	} {
		Conformance(sel.id, MUST, "a pod bound to two identities selecting one by "+sel.kind+" gets a token for that identity, with every client that can select by it",
			[]string{"pod-identity"}, func(ctx SpecContext) {
				node, _ := nodes()
				ns := podIdentityNamespace(ctx)
				bindIdentity(ctx, ns, "id-a", "web", sel.byResourceID)
				bindIdentity(ctx, ns, "id-b", "web", sel.byResourceID)
				id := identity("id-b")
				run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=" + sel.arg("id-b", id), "--resource=" + vaultResource}})
				expectTokens(run, id.ObjectID, vaultResource)
			})
	}

	Conformance("IDH-CONF-0204", MUST, "a pod with no binding in a pod identity namespace is refused (404, or 503 with Retry-After) and gets no token, within seconds",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			bindIdentity(ctx, ns, "id-a", "web", false)
			res := uniqueResource()
			start := time.Now()
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("api"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(run, 404, 503)
			Expect(time.Since(start)).To(BeNumerically("<", 45*time.Second), "the refusal waits out the agent's retries only")
			neverServed(ctx, node, "", res)
		})

	Conformance("IDH-CONF-0205", MUST, "an AzureIdentityBinding in another namespace does not apply to a pod with its selector",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes()
			elsewhere := podIdentityNamespace(ctx)
			bindIdentity(ctx, elsewhere, "id-a", "web", false)
			ns := podIdentityNamespace(ctx)
			res := uniqueResource()
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(run, 404, 503)
			neverServed(ctx, node, "", res)
		})

	Conformance("IDH-CONF-0206", MUST, "a bound pod asking by client_id for an identity it is not bound to is refused, with every client, and no token for that identity is ever fetched",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			bindIdentity(ctx, ns, "id-a", "web", false)
			other := identity("id-b")
			res := uniqueResource()
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Timeout: 3 * time.Minute,
				Args: []string{"--identity=client_id=" + other.ClientID, "--client=azidentity-mi,msal-mi,raw", "--resource=" + res}})
			expectRefused(run)
			neverServed(ctx, node, other.ClientID, res)
		})

	Conformance("IDH-CONF-0207", MUST, "deleting a pod's AzureIdentityBinding revokes its identity for new token requests",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			name := bindIdentity(ctx, ns, "id-a", "web", false)
			before := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource()}})
			Expect(before.Results).To(HaveEach(HaveField("Status", probe.StatusOK)), "bound pod before the binding is deleted")
			Expect(podIDDyn.Resource(nodeagent.AzureIdentityBindingGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
			res := uniqueResource()
			after := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--client=raw", "--resource=" + res}})
			expectRefused(after, 404, 503)
			neverServed(ctx, node, "", res)
		})

	Conformance("IDH-CONF-0208", MUST, "a bound pod's token request without the Metadata header is refused with 400 and never forwarded",
		[]string{"pod-identity", "negative"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			bindIdentity(ctx, ns, "id-a", "web", false)
			res := uniqueResource()
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--client=raw", "--raw-no-metadata", "--resource=" + res}})
			expectRefused(run, 400)
			c, err := Stack.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			entries, err := c.Journal(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			for _, e := range entries {
				Expect(e.Resource).NotTo(Equal(res), "a request without Metadata reached fakeimds: %+v", e)
			}
		})

	Conformance("IDH-CONF-0209", MUST, "a host-network pod is not intercepted: it reaches the node's IMDS and gets the node's identity whatever its labels",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			bindIdentity(ctx, ns, "id-a", "web", false)
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: bound("web"), Args: []string{"--identity=system", "--client=msal-mi,raw", "--resource=" + uniqueResource()},
				Customize: func(p *corev1.Pod) {
					p.Spec.HostNetwork = true
					p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
				}})
			for _, r := range run.Results {
				Expect(r.Status).To(Equal(probe.StatusOK), "%s: %s", r.Client, r.Error)
				Expect(r.IdentityGot).To(Equal(Stack.Nodes[node].SystemAssigned.ObjectID), "%s", r.Client)
			}
		})

	Conformance("IDH-CONF-0210", MUST, "a pod matching an AzurePodIdentityException is let through to the node's IMDS and gets the node's identity",
		[]string{"pod-identity"}, func(ctx SpecContext) {
			node, _ := nodes()
			ns := podIdentityNamespace(ctx)
			exc := podIDObject("AzurePodIdentityException", ns, "agents", map[string]any{"podLabels": map[string]any{"app": "node-agent"}})
			_, err := podIDDyn.Resource(nodeagent.AzurePodIdentityExceptionGVR).Namespace(ns).Create(ctx, exc, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			run := RunProbe(ctx, ns, Probe{Node: node, Labels: map[string]string{"app": "node-agent"}, Args: []string{"--identity=system", "--client=raw", "--resource=" + uniqueResource()}})
			expectTokens(run, Stack.Nodes[node].SystemAssigned.ObjectID, run.Results[0].Resource)
		})
})
