package probe

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/internal/vault"
	"github.com/idharness/idharness/pkg/proberesult"
)

// TestUseAtVault runs the probe end to end in process: tokens from a
// fakeimds used at the protected resource, which verifies them against
// the fake's published keys.
func TestUseAtVault(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	v, err := vault.New(vault.Config{
		JWKSURLs: []string{"http://" + a.IMDS + "/" + fakeimdstest.TenantID + "/discovery/v2.0/keys"},
		Secrets: map[string]vault.Secret{
			"db-password": {Value: "hunter2", Readers: []string{fakeimdstest.UserAObjectID}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	vs := httptest.NewServer(v.Handler())
	defer vs.Close()
	ctl, err := client.New("http://" + a.Control)
	if err != nil {
		t.Fatal(err)
	}
	ua := Identity{Kind: ByClientID, Value: fakeimdstest.UserAClientID}
	for _, tc := range []struct {
		name     string
		identity Identity
		resource string
		fault    string // a chaos action on every IMDS request
		status   int
		secret   string
		expired  bool
	}{
		{"reader", ua, "", "", 200, "hunter2", false},
		{"not a reader", Identity{Kind: System}, "", "", 403, "", false},
		{"token for another audience", ua, "https://management.idharness.test", "", 401, "", false},
		{"expired token from IMDS", ua, "", "expired-token", 401, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AZURE_CLIENT_ID", tc.identity.Value)
			for _, c := range imdsClients {
				if tc.identity.Kind == System && c == ClientAzidentityDefault {
					continue
				}
				if tc.fault != "" && c != ClientRaw {
					// SDKs discard an already expired token or retry;
					// the raw client shows what reaches the resource.
					continue
				}
				// The SDKs share a process-wide cache, so later clients
				// may be served the first one's token: the same token,
				// hence the same verdict, as the test wants.
				resource := tc.resource
				if resource == "" {
					resource = vault.DefaultAudience
				}
				if tc.fault != "" {
					var rule chaos.Rule
					if err := json.Unmarshal([]byte(`{"name":"expired","match":{"faces":["imds"]},"action":{"type":"expired-token","ago":"2m"}}`), &rule); err != nil {
						t.Fatal(err)
					}
					if _, err := ctl.AddFaults(context.Background(), rule); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = ctl.RemoveFault(context.Background(), "expired") })
				}
				res, _ := runProbe(t, Config{
					Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS, Identity: tc.identity},
					Clients: []string{c}, Resource: resource, VaultURL: vs.URL, Secret: "db-password",
				})
				r := res[0]
				if r.ResourceStatus != tc.status || r.Secret != tc.secret || r.TokenExpired != tc.expired || r.OK() != (tc.status == 200) {
					t.Errorf("%s: %+v", c, r)
				}
				if tc.status != 200 && (r.Stage != proberesult.StageResource || !strings.Contains(r.Error, "protected resource answered")) {
					t.Errorf("%s: stage %q error %q", c, r.Stage, r.Error)
				}
			}
		})
	}
}
