package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/fakeimdstest"
)

const wiSubject = "system:serviceaccount:default:probe"

// workloadFake runs a fake whose authority serves HTTPS on loopback and
// trusts iss for id-a, sets the variables the webhook would, and returns
// the generated CA's path.
func workloadFake(t *testing.T, iss *fakeimdstest.Issuer) string {
	t.Helper()
	_, authority, ca := fakeimdstest.StartWorkload(t, iss, wiSubject)
	t.Setenv("AZURE_CLIENT_ID", fakeimdstest.UserAClientID)
	t.Setenv("AZURE_TENANT_ID", fakeimdstest.TenantID)
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", iss.ProjectedToken(t, wiSubject))
	t.Setenv("AZURE_AUTHORITY_HOST", authority)
	return ca
}

// TestWorkloadIdentityMode runs the workload identity clients through the
// token exchange at the fake authority over HTTPS: a token for the
// federated identity, then the same token from the client's cache.
func TestWorkloadIdentityMode(t *testing.T) {
	clearIdentityEnv(t)
	iss := fakeimdstest.NewIssuer(t)
	ca := workloadFake(t, iss)
	for _, client := range DefaultClients(ModeWorkloadIdentity, Identity{}) {
		t.Run(client, func(t *testing.T) {
			res, _ := runProbe(t, Config{
				Options: Options{Mode: ModeWorkloadIdentity, CAFile: ca, DisableInstanceDiscovery: true},
				Clients: []string{client}, Resource: uniqueResource(t, ""), Count: 2, Interval: time.Millisecond,
			})
			first, second := res[0], res[1]
			if !first.OK() || first.IdentityGot != fakeimdstest.UserAObjectID || first.ClientIDGot != fakeimdstest.UserAClientID || first.IdentityAsked != "client_id="+fakeimdstest.UserAClientID ||
				first.FromCache || first.HTTPStatus != 200 {
				t.Fatalf("first attempt %+v", first)
			}
			if !second.OK() || !second.FromCache || second.TokenExp != first.TokenExp {
				t.Errorf("second attempt %+v", second)
			}
		})
	}
	t.Run("unknown client ID", func(t *testing.T) {
		for _, client := range []string{ClientAzidentityWI, ClientMSALWI} {
			res, _ := runProbe(t, Config{
				Options: Options{Mode: ModeWorkloadIdentity, CAFile: ca, DisableInstanceDiscovery: true, Identity: Identity{Kind: ByClientID, Value: unknownID}},
				Clients: []string{client}, Resource: uniqueResource(t, client),
			})
			if r := res[0]; r.OK() || r.HTTPStatus != 400 || !strings.Contains(r.Error, "AADSTS700016") || r.IdentityGot != "" {
				t.Errorf("%s: %+v", client, r)
			}
		}
	})
}
