package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
	"github.com/idharness/idharness/pkg/proberesult"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// Where probe pods find the fake authority's CA certificate.
const (
	wiCAVolume = "wi-authority-ca"
	wiCADir    = "/etc/wi-authority-ca"
)

// wiNamespace creates the spec's namespace with a copy of the
// authority's CA certificate, which pods mount: ConfigMaps cannot be
// mounted across namespaces.
func wiNamespace(ctx context.Context, f *Framework, wi *WorkloadIdentity) string {
	GinkgoHelper()
	ns := f.Namespace(ctx)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: wiCAVolume, Namespace: ns, Labels: fixtures.Labels}, Data: map[string]string{"ca.crt": wi.CAPEM}}
	_, err := f.Kube().CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred(), "copy the authority's CA into %s", ns)
	return ns
}

// wiServiceAccount creates a service account annotated as workload
// identity users annotate theirs.
func wiServiceAccount(ctx context.Context, f *Framework, ns, name string, annotations map[string]string) {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations}}
	_, err := f.Kube().CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred(), "create service account %s/%s", ns, name)
}

// wiTrust replaces the authority's copy of id with one whose only
// federated credential is fc, and restores the authority's start-up
// state after the spec.
func wiTrust(ctx context.Context, wi *WorkloadIdentity, id config.Identity, fc config.FederatedCredential) {
	GinkgoHelper()
	c := wi.Authority
	DeferCleanup(func(ctx context.Context) { Expect(c.Reset(ctx)).To(Succeed()) })
	_, err := c.Detach(ctx, client.Selector{ClientID: id.ClientID})
	Expect(err).NotTo(HaveOccurred(), "detach %s from the authority", id.Name)
	wiAttach(ctx, wi, id, fc)
}

// wiAttach attaches id to the authority with fc as its only federated
// credential; wiTrust's cleanup, or the caller's, restores the authority.
func wiAttach(ctx context.Context, wi *WorkloadIdentity, id config.Identity, fc config.FederatedCredential) {
	GinkgoHelper()
	id.FederatedCredentials = []config.FederatedCredential{fc}
	_, err := wi.Authority.Attach(ctx, id)
	Expect(err).NotTo(HaveOccurred(), "attach %s with a federated credential", id.Name)
}

// chaosRule decodes a fault rule written as the control API takes it.
func chaosRule(js string) chaos.Rule {
	GinkgoHelper()
	var r chaos.Rule
	Expect(json.Unmarshal([]byte(js), &r)).To(Succeed(), "rule %s", js)
	return r
}

// wiSubject is the subject of a service account's projected tokens.
func wiSubject(ns, sa string) string { return "system:serviceaccount:" + ns + ":" + sa }

// wiProbe runs the probe in workload identity mode as sa, in a pod the
// webhook mutates, trusting the authority's CA. Instance discovery is off
// as it is for any non-public authority host.
func wiProbe(ctx context.Context, f *Framework, ns, sa string, args ...string) ProbeRun {
	GinkgoHelper()
	return f.RunProbe(ctx, ns, Probe{
		ServiceAccount: sa,
		Labels:         map[string]string{workloadidentity.UseLabel: "true"},
		Args:           append([]string{"--mode=" + probe.ModeWorkloadIdentity, "--ca-file=" + wiCADir + "/ca.crt", "--disable-instance-discovery"}, args...),
		Customize: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: wiCAVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: wiCAVolume}}}})
			c := &p.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: wiCAVolume, MountPath: wiCADir, ReadOnly: true})
		},
	})
}

// wiAdmit creates pod in ns as a dry run and returns it as admission
// left it: mutating webhooks run on dry runs, and nothing is started.
func wiAdmit(ctx context.Context, f *Framework, ns string, pod *corev1.Pod) (*corev1.Pod, error) {
	pod.Namespace = ns
	return f.Kube().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

// wiPod is a pod with an init container and two containers, labelled for
// workload identity when use is set.
func wiPod(f *Framework, sa string, use bool, annotations map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "wi-admit-", Annotations: annotations, Labels: map[string]string{"app.kubernetes.io/part-of": "idharness"}},
		Spec: corev1.PodSpec{
			ServiceAccountName:           sa,
			AutomountServiceAccountToken: new(bool),
			InitContainers:               []corev1.Container{{Name: "init", Image: f.Images().Probe}},
			Containers:                   []corev1.Container{{Name: "app", Image: f.Images().Probe}, {Name: "sidecar", Image: f.Images().Probe}},
		},
	}
	if use {
		p.Labels[workloadidentity.UseLabel] = "true"
	}
	return p
}

// wiTokenProjection finds the projected service account token the
// webhook added to pod: the volume and its projection with the contract's
// audience (nil: none). Its name, and where it is mounted, are the
// webhook's choice; the contract is only that AZURE_FEDERATED_TOKEN_FILE
// names it.
func wiTokenProjection(pod *corev1.Pod) (volume string, proj *corev1.ServiceAccountTokenProjection) {
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if t := s.ServiceAccountToken; t != nil && t.Audience == workloadidentity.TokenAudience {
				return v.Name, t
			}
		}
	}
	return "", nil
}

// wiInjected describes what the webhook put into container c of pod: the
// variables it set and the path at which c sees the projected token
// ("": not mounted).
func wiInjected(pod *corev1.Pod, c corev1.Container) (env map[string]string, tokenFile string) {
	env = map[string]string{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "AZURE_") {
			env[e.Name] = e.Value
		}
	}
	vol, proj := wiTokenProjection(pod)
	if proj == nil {
		return env, ""
	}
	for _, m := range c.VolumeMounts {
		switch {
		case m.Name != vol:
		case m.SubPath == "":
			tokenFile = path.Join(m.MountPath, proj.Path)
		case m.SubPath == proj.Path:
			tokenFile = m.MountPath
		}
	}
	return env, tokenFile
}

// expectAADError checks that every client failed with the Azure AD code
// and got no token, and records the per-client outcome.
func expectAADError(run ProbeRun, code string) {
	GinkgoHelper()
	outcome := map[string]bool{}
	for _, r := range run.Results {
		outcome[r.Client] = r.Status == proberesult.StatusError && r.IdentityGot == "" && strings.Contains(r.Error, code)
	}
	RecordClients(outcome, run.NotApplicable)
	for _, r := range run.Results {
		Expect(r.IdentityGot).To(BeEmpty(), "%s got a token", r.Client)
		Expect(r.Status).To(Equal(proberesult.StatusError), "%s", r.Client)
		Expect(r.Error).To(ContainSubstring(code), "%s surfaces the authority's error", r.Client)
	}
}

// Ordered: its specs replace id-a's federated credentials at the one
// authority, skew its clock and reset it after, so they run one after
// another, in one process of a parallel run (internal/parallel).
var _ = Describe("Workload identity", Label("workload-identity"), Ordered, func() {
	f := New()
	// The workload identity part of the stack, set by BeforeAll.
	var wiEnv *WorkloadIdentity
	BeforeAll(func(ctx SpecContext) {
		f.Setup(ctx)
		var err error
		if wiEnv, err = f.WorkloadIdentity(ctx); err != nil {
			if f.Claimed("workload-identity") {
				Fail("the deployed profile claims workload-identity, but its components are missing: " + err.Error())
			}
			Skip(err.Error())
		}
	})

	Conformance("IDH-CONF-0101", MUST, "a labelled pod whose service account names an identity with a federated credential for it gets that identity's token from the authority, which the protected resource accepts, with every client",
		[]string{"end-to-end"}, func(ctx SpecContext) {
			ns := wiNamespace(ctx, f, wiEnv)
			id := f.Identity("id-a")
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID})
			wiTrust(ctx, wiEnv, id, config.FederatedCredential{Issuer: wiEnv.Issuer, Subject: wiSubject(ns, "app")})
			Expect(wiEnv.Authority.ResetJournal(ctx)).To(Succeed())
			run := wiProbe(ctx, f, ns, "app", append([]string{"--resource=" + vaultResource}, vaultArgs(f, fixtures.SecretApp)...)...)
			Expect(ByClient(run.Results)).To(HaveKey(probe.ClientAzidentityDefault), "DefaultAzureCredential ran")
			expectTokens(run, id.ObjectID, vaultResource)
			// id-a is also on every node's IMDS, where DefaultAzureCredential
			// could fall back to: every token must have come from an exchange.
			entries, err := wiEnv.Authority.Journal(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			exchanges := 0
			for _, e := range entries {
				if e.Status == 200 && strings.HasSuffix(e.Path, "/oauth2/v2.0/token") {
					exchanges++
				}
			}
			Expect(exchanges).To(BeNumerically(">=", len(run.Results)), "token exchanges at the authority, for %d tokens", len(run.Results))
			for _, r := range run.Results {
				Expect(r.ResourceStatus).To(Equal(200), "%s: the protected resource refused the token: %s", r.Client, r.Error)
			}
		})

	Conformance("IDH-CONF-0102", MUST, "a pod whose service account no federated credential trusts (another subject) gets AADSTS70021 and no token, surfaced by every client",
		[]string{"negative"}, func(ctx SpecContext) {
			ns := wiNamespace(ctx, f, wiEnv)
			id := f.Identity("id-a")
			wiServiceAccount(ctx, f, ns, "other", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID})
			wiTrust(ctx, wiEnv, id, config.FederatedCredential{Issuer: wiEnv.Issuer, Subject: wiSubject(ns, "app")})
			expectAADError(wiProbe(ctx, f, ns, "other"), "AADSTS70021")
		})

	Conformance("IDH-CONF-0103", MUST, "a projected token whose audience the federated credential does not list is refused with AADSTS70021, surfaced by every client",
		[]string{"negative"}, func(ctx SpecContext) {
			ns := wiNamespace(ctx, f, wiEnv)
			id := f.Identity("id-a")
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID})
			wiTrust(ctx, wiEnv, id, config.FederatedCredential{Issuer: wiEnv.Issuer, Subject: wiSubject(ns, "app"), Audiences: []string{"api://other-audience"}})
			expectAADError(wiProbe(ctx, f, ns, "app"), "AADSTS70021")
		})

	Conformance("IDH-CONF-0108", MUST, "an assertion outside its valid time range by the authority's clock is refused with AADSTS700024 and no token: expired (clock two hours ahead, every client) and not yet valid (two hours behind)",
		[]string{"negative", "chaos"}, func(ctx SpecContext) {
			ns := wiNamespace(ctx, f, wiEnv)
			id := f.Identity("id-a")
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID})
			wiTrust(ctx, wiEnv, id, config.FederatedCredential{Issuer: wiEnv.Issuer, Subject: wiSubject(ns, "app")})
			// The projected token lives an hour; the authority allows five
			// minutes of leeway. Ahead, the token has expired; behind, it
			// is not valid yet.
			// The time check does not depend on the client, so one client
			// is enough for the first case and keeps the spec short; the
			// report's client matrix is the last case's, with every client.
			for _, c := range []struct{ offset, clients string }{{"-2h", "--client=" + probe.ClientAzidentityWI}, {"2h", ""}} {
				_, err := wiEnv.Authority.AddFaults(ctx, chaosRule(`{"name":"authority-clock","match":{"faces":["authority"]},"action":{"type":"clock-skew","offset":"`+c.offset+`"}}`))
				Expect(err).NotTo(HaveOccurred())
				var args []string
				if c.clients != "" {
					args = append(args, c.clients)
				}
				expectAADError(wiProbe(ctx, f, ns, "app", args...), "AADSTS700024")
				Expect(wiEnv.Authority.RemoveFault(ctx, "authority-clock")).To(Succeed())
			}
		})

	Conformance("IDH-CONF-0109", SHOULD, "a legacy client that only speaks IMDS, in a pod with the proxy sidecar, gets a token for the identity its service account names, with every managed identity client",
		[]string{"proxy-sidecar", "end-to-end"}, func(ctx SpecContext) {
			ns := f.Namespace(ctx)
			// An identity only the authority knows: a token for it proves
			// the answer came through the proxy, not from the node's IMDS.
			id := config.Identity{Name: "wi-proxy-only", ClientID: "77777777-7777-4777-8777-777777777777", ObjectID: "88888888-8888-4888-8888-888888888888"}
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID})
			DeferCleanup(func(ctx context.Context) { Expect(wiEnv.Authority.Reset(ctx)).To(Succeed()) })
			wiAttach(ctx, wiEnv, id, config.FederatedCredential{Issuer: wiEnv.Issuer, Subject: wiSubject(ns, "app")})
			// azidentity-default is left out: with the webhook's variables
			// set it uses workload identity, not the proxy.
			run := f.RunProbe(ctx, ns, Probe{
				ServiceAccount: "app",
				Labels:         map[string]string{workloadidentity.UseLabel: "true"},
				Annotations:    map[string]string{workloadidentity.ProxyAnnotation: "true"},
				Args:           []string{"--mode=" + probe.ModeIMDS, "--identity=client_id=" + id.ClientID, "--client=azidentity-mi,msal-mi,raw", "--resource=" + vaultResource},
			})
			expectTokens(run, id.ObjectID, vaultResource)
		})

	Conformance("IDH-CONF-0104", MUST, "the webhook gives a labelled pod's containers and init containers the four variables and the projected token (audience api://AzureADTokenExchange), keeps variables a container sets and skips the containers named in skip-containers",
		[]string{"webhook"}, func(ctx SpecContext) {
			ns := f.Namespace(ctx)
			id := f.Identity("id-a")
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID, workloadidentity.TokenExpirationAnnotation: "7200"})
			pod := wiPod(f, "app", true, map[string]string{workloadidentity.SkipContainersAnnotation: "sidecar"})
			pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: workloadidentity.EnvAuthorityHost, Value: "https://own.example/"}}
			got, err := wiAdmit(ctx, f, ns, pod)
			Expect(err).NotTo(HaveOccurred())
			vol, proj := wiTokenProjection(got)
			Expect(proj).NotTo(BeNil(), "no projected service account token with audience %s", workloadidentity.TokenAudience)
			Expect(proj.ExpirationSeconds).NotTo(BeNil(), "the projected token has no expirationSeconds")
			Expect(*proj.ExpirationSeconds).To(BeEquivalentTo(7200), "the service account's token expiration")
			// AZURE_FEDERATED_TOKEN_FILE must name the projected token where
			// the container sees it; the volume's name and mount path are
			// the webhook's choice.
			want := map[string]string{workloadidentity.EnvClientID: id.ClientID, workloadidentity.EnvTenantID: f.Identities().TenantID, workloadidentity.EnvAuthorityHost: wiEnv.AuthorityHost}
			env, file := wiInjected(got, got.Spec.InitContainers[0])
			Expect(file).NotTo(BeEmpty(), "init container has the token (volume %s)", vol)
			want[workloadidentity.EnvTokenFile] = file
			Expect(env).To(Equal(want), "init container")
			env, file = wiInjected(got, got.Spec.Containers[0])
			Expect(file).NotTo(BeEmpty(), "app container has the token (volume %s)", vol)
			want[workloadidentity.EnvTokenFile] = file
			want[workloadidentity.EnvAuthorityHost] = "https://own.example/"
			Expect(env).To(Equal(want), "app container: the webhook must keep a variable the container sets")
			env, file = wiInjected(got, got.Spec.Containers[1])
			Expect(env).To(BeEmpty(), "skipped container got variables")
			Expect(file).To(BeEmpty(), "skipped container got the token")
		})

	Conformance("IDH-CONF-0105", MUST, "a pod without the azure.workload.identity/use label gets nothing injected, even when its service account names an identity",
		[]string{"webhook", "negative"}, func(ctx SpecContext) {
			ns := f.Namespace(ctx)
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: f.Identity("id-a").ClientID})
			got, err := wiAdmit(ctx, f, ns, wiPod(f, "app", false, nil))
			Expect(err).NotTo(HaveOccurred())
			for _, c := range append(got.Spec.InitContainers, got.Spec.Containers...) {
				env, _ := wiInjected(got, c)
				Expect(env).To(BeEmpty(), "container %s", c.Name)
			}
			_, proj := wiTokenProjection(got)
			Expect(proj).To(BeNil(), "a projected service account token was added")
		})

	Conformance("IDH-CONF-0106", MUST, "a labelled pod asking for a service account token expiration outside 3600–86400 s is refused with the reason",
		[]string{"webhook", "negative"}, func(ctx SpecContext) {
			ns := f.Namespace(ctx)
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: f.Identity("id-a").ClientID})
			for _, v := range []string{"600", "86401", "1h"} {
				_, err := wiAdmit(ctx, f, ns, wiPod(f, "app", true, map[string]string{workloadidentity.TokenExpirationAnnotation: v}))
				Expect(err).To(HaveOccurred(), "expiration %s admitted", v)
				Expect(err.Error()).To(ContainSubstring(workloadidentity.TokenExpirationAnnotation), "the refusal names the annotation")
			}
		})

	Conformance("IDH-CONF-0107", MUST, "with the webhook down, a labelled pod is refused under failurePolicy Fail and admitted without workload identity under Ignore, and both are reported as the policy decision",
		[]string{"webhook", "negative", "Serial"}, func(ctx SpecContext) {
			ns := f.Namespace(ctx)
			wiServiceAccount(ctx, f, ns, "app", map[string]string{workloadidentity.ClientIDAnnotation: f.Identity("id-a").ClientID})
			DeferCleanup(func(ctx context.Context) {
				Expect(wiEnv.SetFailurePolicy(ctx, "Fail")).To(Succeed())
				Expect(wiEnv.ScaleWebhook(ctx, 1)).To(Succeed())
			})
			Expect(wiEnv.ScaleWebhook(ctx, 0)).To(Succeed())
			_, err := wiAdmit(ctx, f, ns, wiPod(f, "app", true, nil))
			Expect(err).To(HaveOccurred(), "failurePolicy Fail admitted a pod the webhook could not see")
			AddReportEntry("policy Fail", fmt.Sprintf("pod refused: %v", err))
			Expect(wiEnv.SetFailurePolicy(ctx, "Ignore")).To(Succeed())
			// The API server picks up webhook configuration changes
			// asynchronously (an informer), so the new policy may take a
			// moment to apply; it must apply within 30 s.
			var got *corev1.Pod
			Eventually(ctx, func() error {
				var err error
				got, err = wiAdmit(ctx, f, ns, wiPod(f, "app", true, nil))
				return err
			}).WithTimeout(30*time.Second).WithPolling(500*time.Millisecond).Should(Succeed(), "failurePolicy Ignore refused the pod")
			env, file := wiInjected(got, got.Spec.Containers[0])
			Expect(env).To(BeEmpty())
			Expect(file).To(BeEmpty())
			AddReportEntry("policy Ignore", "pod admitted without workload identity")
		})
})
