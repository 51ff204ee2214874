package conformance

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/pkg/proberesult"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

const vaultResource = "https://vault.azure.net"

// nodes returns a node with every identity (the one id-node is attached
// to) and another node.
func nodes(f *Framework) (withNodeID, other string) {
	names := f.NodeNames()
	id, ok := f.Identities().ByName("id-node")
	for _, n := range names {
		for _, u := range f.UserAssigned(n) {
			if ok && u.ClientID == id.ClientID {
				withNodeID = n
			}
		}
	}
	if withNodeID == "" {
		withNodeID = names[0]
	}
	for _, n := range names {
		if n != withNodeID {
			other = n
		}
	}
	return withNodeID, other
}

// expectTokens checks that every client got a token for wantOID and the
// resource, and records the per-client outcome.
func expectTokens(run ProbeRun, wantOID, resource string) {
	GinkgoHelper()
	outcome := map[string]bool{}
	var problems []string
	for c, rs := range ByClient(run.Results) {
		ok := true
		for _, r := range rs {
			switch {
			case r.Status != proberesult.StatusOK:
				problems = append(problems, fmt.Sprintf("%s: error: %s", c, r.Error))
				ok = false
			case r.IdentityGot != wantOID:
				problems = append(problems, fmt.Sprintf("%s: token for oid %s, want %s", c, r.IdentityGot, wantOID))
				ok = false
			case strings.TrimSuffix(r.Audience, "/") != strings.TrimSuffix(resource, "/"):
				problems = append(problems, fmt.Sprintf("%s: token aud %s, want %s", c, r.Audience, resource))
				ok = false
			}
		}
		outcome[c] = ok
	}
	RecordClients(outcome, run.NotApplicable)
	Expect(problems).To(BeEmpty(), "on node %s", run.Node)
}

// Not Ordered: no spec depends on another, so a parallel run spreads
// them (internal/parallel).
var _ = Describe("IMDS managed identity", Label("imds"), func() {
	f := New()

	Conformance("IDH-CONF-0001", MUST, "a pod asking IMDS with no identity selector gets a token for its node's system-assigned identity, with every client",
		[]string{"system-assigned"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--identity=system", "--resource=" + vaultResource}})
			expectTokens(run, f.SystemAssigned(node).ObjectID, vaultResource)
		})

	for _, sel := range []struct {
		id, kind string
		arg      func(config.Identity) string
	}{
		{"IDH-CONF-0002", "client_id", func(i config.Identity) string { return "client_id=" + i.ClientID }},
		{"IDH-CONF-0003", "object_id", func(i config.Identity) string { return "object_id=" + i.ObjectID }},
		{"IDH-CONF-0004", "msi_res_id", func(i config.Identity) string { return "resource_id=" + f.Identities().ResourceID(i.Name) }},
	} {
		Conformance(sel.id, MUST, "a pod selecting a user-assigned identity by "+sel.kind+" gets a token for that identity, with every client that can select by it",
			[]string{"user-assigned"}, func(ctx SpecContext) {
				node, _ := nodes(f)
				id := f.Identity("id-b")
				run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--identity=" + sel.arg(id), "--resource=" + vaultResource}})
				expectTokens(run, id.ObjectID, vaultResource)
			})
	}

	Conformance("IDH-CONF-0005", MUST, "a pod asking for an identity that is not attached gets an error and never another identity's token",
		[]string{"user-assigned", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--identity=client_id=99999999-9999-4999-8999-999999999999", "--client=azidentity-mi,msal-mi,raw"}})
			outcome := map[string]bool{}
			for _, r := range run.Results {
				ok := r.Status == proberesult.StatusError && r.IdentityGot == "" && strings.Contains(r.Error, "Identity not found")
				outcome[r.Client] = ok
				Expect(r.IdentityGot).To(BeEmpty(), "%s got a token for %s", r.Client, r.IdentityGot)
				Expect(r.Status).To(Equal(proberesult.StatusError), "%s", r.Client)
				Expect(r.Error).To(ContainSubstring("Identity not found"), "%s surfaces IMDS's error", r.Client)
			}
			RecordClients(outcome)
		})

	Conformance("IDH-CONF-0006", MUST, "a pod on a node with no system-assigned identity and several user-assigned ones asking with no selector gets the 400 'Multiple user assigned identities exist', surfaced by every client",
		[]string{"user-assigned", "negative", "Serial"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			c, err := f.FakeIMDS(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			sys := f.SystemAssigned(node)
			Expect(c.RemoveSystem(ctx)).To(Succeed())
			DeferCleanup(func(ctx context.Context) {
				_, err := c.SetSystem(ctx, sys)
				Expect(err).NotTo(HaveOccurred())
			})
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--identity=system", "--client=azidentity-mi,msal-mi,raw"}})
			outcome := map[string]bool{}
			for _, r := range run.Results {
				outcome[r.Client] = r.Status == proberesult.StatusError && strings.Contains(r.Error, "Multiple user assigned identities exist")
				Expect(r.IdentityGot).To(BeEmpty(), "%s got a token", r.Client)
				Expect(r.Error).To(ContainSubstring("Multiple user assigned identities exist"), "%s", r.Client)
			}
			RecordClients(outcome)
		})

	Conformance("IDH-CONF-0007", MUST, "an identity attached to one node only is served on that node and refused on another",
		[]string{"user-assigned", "multi-node"}, func(ctx SpecContext) {
			withID, other := nodes(f)
			if other == "" {
				Skip("needs two nodes (idharness run --workers 1)")
			}
			id := f.Identity("id-node")
			ns := f.Namespace(ctx)
			on := f.RunProbe(ctx, ns, Probe{Node: withID, Args: []string{"--identity=client_id=" + id.ClientID, "--client=azidentity-mi,raw"}})
			expectTokens(on, id.ObjectID, "https://vault.azure.net")
			off := f.RunProbe(ctx, ns, Probe{Node: other, Args: []string{"--identity=client_id=" + id.ClientID, "--client=azidentity-mi,raw"}})
			for _, r := range off.Results {
				Expect(r.IdentityGot).To(BeEmpty(), "%s on %s got a token for an identity not attached there", r.Client, other)
				Expect(r.Error).To(ContainSubstring("Identity not found"), "%s on %s", r.Client, other)
			}
		})

	Conformance("IDH-CONF-0008", MUST, "the token's aud is the resource asked for, exactly, and its oid the identity asked for",
		[]string{"system-assigned", "claims"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			const res = "https://management.core.windows.net/"
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--identity=system", "--resource=" + res, "--client=msal-mi,raw"}})
			for _, r := range run.Results {
				Expect(r.Status).To(Equal(proberesult.StatusOK), "%s: %s", r.Client, r.Error)
				Expect(r.Audience).To(Equal(res), "%s", r.Client)
				Expect(r.IdentityGot).To(Equal(f.SystemAssigned(node).ObjectID), "%s", r.Client)
			}
		})

	Conformance("IDH-CONF-0009", MUST, "the metadata endpoint refuses a token request without the Metadata header with 400, and one with X-Forwarded-For with 400",
		[]string{"wire", "negative"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			ns := f.Namespace(ctx)
			noHeader := f.RunProbe(ctx, ns, Probe{Node: node, Args: []string{"--client=raw", "--raw-no-metadata"}})
			Expect(noHeader.Results[0].HTTPStatus).To(Equal(400), "%+v", noHeader.Results[0])
			xff := f.RunProbe(ctx, ns, Probe{Node: node, Args: []string{"--client=raw", "--raw-forwarded-for=10.9.8.7"}})
			Expect(xff.Results[0].HTTPStatus).To(Equal(400), "%+v", xff.Results[0])
		})

	Conformance("IDH-CONF-0010", MUST, "every field of the metadata endpoint's token response is a JSON string",
		[]string{"wire"}, func(ctx SpecContext) {
			node, _ := nodes(f)
			run := f.RunProbe(ctx, f.Namespace(ctx), Probe{Node: node, Args: []string{"--client=raw"}})
			r := run.Results[0]
			Expect(r.Status).To(Equal(proberesult.StatusOK), r.Error)
			for _, field := range []string{"access_token", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"} {
				Expect(r.FieldTypes).To(HaveKeyWithValue(field, "string"), "field %s", field)
			}
			Expect(r.ResourceEcho).To(Equal(r.Resource), "the resource field echoes the request")
		})
})
