package conformance

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/pkg/proberesult"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

func vaultArgs(f *Framework, secret string) []string {
	return []string{"--vault-url=" + f.VaultURL(), "--secret=" + secret}
}

// Tokens from the node's metadata endpoint: specs of the imds mode, out of
// scope for an implementation that claims another.
var _ = Describe("Protected resource", Label("resource", "imds"), func() {
	f := New()
	BeforeEach(func(ctx SpecContext) {
		if f.Images().Vault == "" {
			Skip("the protected resource is not deployed")
		}
	})

	Conformance("IDH-CONF-0011", MUST, "a token a pod got from its node's metadata endpoint is accepted by the protected resource, which returns the secret to an identity allowed to read it, with every client",
		[]string{"system-assigned", "end-to-end"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: append([]string{"--identity=system"}, vaultArgs(f, fixtures.SecretNode)...)})
			outcome := map[string]bool{}
			for _, r := range run.Results {
				outcome[r.Client] = r.Status == proberesult.StatusOK && r.ResourceStatus == 200
			}
			RecordClients(outcome, run.NotApplicable)
			for _, r := range run.Results {
				Expect(r.ResourceStatus).To(Equal(200), "%s: %s", r.Client, r.Error)
				Expect(r.Secret).To(Equal("node-secret-value"), "%s", r.Client)
			}
		})

	Conformance("IDH-CONF-0012", MUST, "the protected resource rejects a valid token issued for another audience with 401",
		[]string{"system-assigned", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: append([]string{"--identity=system", "--resource=https://storage.azure.com", "--client=azidentity-mi,raw"}, vaultArgs(f, fixtures.SecretNode)...)})
			for _, r := range run.Results {
				Expect(r.Audience).To(Equal("https://storage.azure.com"), "%s", r.Client)
				Expect(r.ResourceStatus).To(Equal(401), "%s", r.Client)
				Expect(r.Secret).To(BeEmpty())
			}
		})

	Conformance("IDH-CONF-0013", MUST, "the protected resource returns a secret only to the identities allowed to read it: 200 for id-a, 403 for id-b",
		[]string{"user-assigned", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.Namespace(ctx)
			a := f.RunProbe(ctx, ns, Probe{Node: node, Args: append([]string{"--identity=client_id=" + f.Identity("id-a").ClientID, "--client=azidentity-mi"}, vaultArgs(f, fixtures.SecretApp)...)})
			Expect(a.Results[0].ResourceStatus).To(Equal(200), a.Results[0].Error)
			b := f.RunProbe(ctx, ns, Probe{Node: node, Args: append([]string{"--identity=client_id=" + f.Identity("id-b").ClientID, "--client=azidentity-mi"}, vaultArgs(f, fixtures.SecretApp)...)})
			Expect(b.Results[0].ResourceStatus).To(Equal(403), "id-b read a secret only id-a may read")
		})
})

var _ = Describe("App Service identity endpoint", Label("app-service"), func() {
	f := New()

	Conformance("IDH-CONF-0014", MUST, "a pod with IDENTITY_ENDPOINT and the right IDENTITY_HEADER gets a token from the App Service endpoint with every client; with a wrong header it gets none",
		[]string{"app-service"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.Namespace(ctx)
			id := f.Identity("id-a")
			good := f.RunProbe(ctx, ns, Probe{Node: node, Args: []string{"--mode=appservice", "--identity=client_id=" + id.ClientID},
				Env: map[string]string{"IDENTITY_ENDPOINT": f.AppServiceEndpoint(), "IDENTITY_HEADER": f.AppServiceSecret()}})
			expectTokens(good, id.ObjectID, vaultResource)
			bad := f.RunProbe(ctx, ns, Probe{Node: node, Args: []string{"--mode=appservice", "--identity=client_id=" + id.ClientID, "--client=azidentity-mi,raw"},
				Env: map[string]string{"IDENTITY_ENDPOINT": f.AppServiceEndpoint(), "IDENTITY_HEADER": "wrong"}})
			for _, r := range bad.Results {
				Expect(r.IdentityGot).To(BeEmpty(), "%s got a token with a wrong header", r.Client)
				Expect(r.Status).To(Equal(proberesult.StatusError), "%s", r.Client)
			}
		})
})

var _ = Describe("Expiry refresh", Label("expiry", "imds"), func() {
	f := New()

	Conformance("IDH-CONF-0015", MUST, "with 6-minute tokens every client gets a new token before the old one expires and never presents an expired token to the protected resource",
		// Not Serial: its 6-minute lifetime and flushes touch id-a on its
		// node only, and no other spec judges a token's lifetime (they
		// judge identity and audience, and a 6-minute token outlives
		// their calls), so it runs beside the others, which its 80 s of
		// waiting leaves room for. "slow" starts it first in a parallel
		// run.
		[]string{"user-assigned", "expiry", "slow"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			id := f.Identity("id-a")
			c, err := f.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			sel := client.Selector{ClientID: id.ClientID}
			_, err = c.SetIdentityLifetime(ctx, sel, 6*time.Minute)
			Expect(err).NotTo(HaveOccurred())
			Expect(c.FlushTokens(ctx)).To(Succeed())
			DeferCleanup(func(ctx context.Context) {
				_, _ = c.SetIdentityLifetime(ctx, sel, 0)
				_ = c.FlushTokens(ctx)
			})
			// Clients refresh once less than 5 minutes are left: 60 s
			// after the first call, which gets a new token (the cache was
			// flushed). Calls every 5 s for 80 s (the last at 75 s) see
			// that refresh and three calls after it (on 2026-12-04 every
			// client refreshed at the 60 s call).
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Timeout: 4 * time.Minute,
				Args: append([]string{"--identity=client_id=" + id.ClientID, "--resource=" + vaultResource, "--duration=80s", "--interval=5s",
					"--client=azidentity-mi,msal-mi,raw"}, vaultArgs(f, fixtures.SecretApp)...)})
			outcome := map[string]bool{}
			for c, rs := range ByClient(run.Results) {
				exps := map[time.Time]bool{}
				ok := true
				for _, r := range rs {
					exps[r.TokenExp] = true
					if r.TokenExpired || r.Status != proberesult.StatusOK || r.ResourceStatus != 200 {
						ok = false
					}
					Expect(r.TokenExpired).To(BeFalse(), "%s presented an expired token (attempt %d)", c, r.Attempt)
					Expect(r.ResourceStatus).To(Equal(200), "%s attempt %d: %s", c, r.Attempt, r.Error)
				}
				ok = ok && len(exps) >= 2
				outcome[c] = ok
				Expect(len(exps)).To(BeNumerically(">=", 2), "%s never refreshed its 6-minute token within 80 s", c)
			}
			RecordClients(outcome)
		})
})
