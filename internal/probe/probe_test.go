package probe

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/pkg/proberesult"
)

var imdsClients = []string{ClientAzidentityMI, ClientAzidentityDefault, ClientMSALMI, ClientRaw}

// TestClientsIMDS runs every IMDS client twice within a token's lifetime:
// the first call reaches the fake and gets the system-assigned identity's
// token, the second is served from the client's cache (the raw client has
// none), and fromCache says so because no request was made.
func TestClientsIMDS(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	for _, client := range imdsClients {
		t.Run(client, func(t *testing.T) {
			resource := uniqueResource(t, "")
			res, sum := runProbe(t, Config{
				Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS},
				Clients: []string{client}, Resource: resource, Count: 2, Interval: time.Millisecond,
			})
			if len(res) != 2 || sum.Attempts != 2 || sum.OK != 2 || sum.Rounds != 2 {
				t.Fatalf("results %+v summary %+v", res, sum)
			}
			first, second := res[0], res[1]
			if !first.OK() || first.IdentityGot != fakeimdstest.SystemObjectID || first.ClientIDGot != fakeimdstest.SystemClientID || first.Audience != resource ||
				first.IdentityAsked != "system" || first.HTTPStatus != 200 || first.FromCache || first.Requests < 1 {
				t.Errorf("first attempt %+v", first)
			}
			if time.Until(first.TokenExp) < 23*time.Hour || first.TokenExpired {
				t.Errorf("tokenExp %v expired %v, want the 24h default", first.TokenExp, first.TokenExpired)
			}
			wantCached := client != ClientRaw
			if second.FromCache != wantCached || (second.Requests == 0) != wantCached || second.IdentityGot != fakeimdstest.SystemObjectID {
				t.Errorf("second attempt fromCache=%v requests=%d, want fromCache=%v", second.FromCache, second.Requests, wantCached)
			}
			if client == ClientAzidentityDefault && first.Requests != 2 {
				t.Errorf("azidentity-default made %d requests; want its header-less IMDS probe then the token request", first.Requests)
			}
			if client == ClientRaw && (first.FieldTypes["expires_on"] != "string" || first.ResourceEcho != resource) {
				t.Errorf("raw wire checks: %v, resource %q", first.FieldTypes, first.ResourceEcho)
			}
			if first.Attempt != 1 || second.Attempt != 2 || first.Mode != ModeIMDS || first.Client != client {
				t.Errorf("attempt numbering %d,%d mode %s client %s", first.Attempt, second.Attempt, first.Mode, first.Client)
			}
		})
	}
}

// TestClientsUserAssigned asks each client for user-assigned identities
// each way it can name them.
func TestClientsUserAssigned(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	rid := fakeimdstest.Config().UserAssignedResourceID("id-b")
	for _, tc := range []struct {
		identity string
		want     string
		clients  []string
	}{
		{"client_id=" + fakeimdstest.UserAClientID, fakeimdstest.UserAObjectID, imdsClients},
		{"object_id=" + fakeimdstest.UserBObjectID, fakeimdstest.UserBObjectID, []string{ClientAzidentityMI, ClientMSALMI, ClientRaw}},
		{"resource_id=" + rid, fakeimdstest.UserBObjectID, []string{ClientAzidentityMI, ClientMSALMI, ClientRaw}},
	} {
		id, err := ParseIdentity(tc.identity)
		if err != nil {
			t.Fatal(err)
		}
		if got := DefaultClients(ModeIMDS, id); strings.Join(got, ",") != strings.Join(tc.clients, ",") {
			t.Errorf("DefaultClients(%s) = %v, want %v", tc.identity, got, tc.clients)
		}
		for _, client := range tc.clients {
			t.Run(string(id.Kind)+"/"+client, func(t *testing.T) {
				if client == ClientAzidentityDefault {
					t.Setenv("AZURE_CLIENT_ID", id.Value)
				}
				res, _ := runProbe(t, Config{
					Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS, Identity: id},
					Clients: []string{client}, Resource: uniqueResource(t, ""),
				})
				if len(res) != 1 || !res[0].OK() || res[0].IdentityGot != tc.want || res[0].IdentityAsked != tc.identity {
					t.Fatalf("%+v", res)
				}
			})
		}
	}
}

// TestClientsUnknownIdentity: every client surfaces the fake's 400 for an
// identity the host does not have, and never returns another identity's
// token.
func TestClientsUnknownIdentity(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	id := Identity{Kind: ByClientID, Value: unknownID}
	for _, client := range imdsClients {
		t.Run(client, func(t *testing.T) {
			t.Setenv("AZURE_CLIENT_ID", unknownID)
			res, sum := runProbe(t, Config{
				Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS, Identity: id},
				Clients: []string{client}, Resource: uniqueResource(t, ""),
			})
			r := res[0]
			if r.OK() || r.Stage != proberesult.StageToken || r.IdentityGot != "" || r.HTTPStatus != 400 || r.Error == "" || sum.Errors != 1 {
				t.Fatalf("%+v", r)
			}
			if client == ClientRaw && !strings.Contains(r.Body, "Identity not found") {
				t.Errorf("raw body %q", r.Body)
			}
			t.Logf("%s says: %s", client, r.Error)
		})
	}
}

// TestExpiryLoop runs each client in a loop with tokens that expire
// during it (2s here; 6 minutes in the cluster suite, where the clients'
// 5-minute refresh margin leaves one minute of reuse) and checks that no
// attempt presents an expired token.
func TestExpiryLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("loops for a few seconds")
	}
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, func(c *config.Config) { c.Tokens.Lifetime = duration.Of(2 * time.Second) })
	res, sum := runProbe(t, Config{
		Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS},
		Clients: imdsClients, Resource: uniqueResource(t, ""), Duration: 3500 * time.Millisecond, Interval: 700 * time.Millisecond,
	})
	if sum.ExpiredPresented != 0 || sum.Errors != 0 || sum.Rounds < 4 {
		t.Fatalf("summary %+v", sum)
	}
	exps := map[string]map[time.Time]bool{}
	for _, r := range res {
		if r.TokenExpired || r.TokenExp.IsZero() {
			t.Errorf("%s attempt %d presented a token expiring %v", r.Client, r.Attempt, r.TokenExp)
		}
		if exps[r.Client] == nil {
			exps[r.Client] = map[time.Time]bool{}
		}
		exps[r.Client][r.TokenExp] = true
	}
	for c, e := range exps {
		if len(e) < 2 {
			t.Errorf("%s used one token (exp %v) through the loop; it never refreshed", c, e)
		}
	}
}

// TestRawWireChecks runs the raw client's negative checks: IMDS refuses a
// request without Metadata or with X-Forwarded-For, and the raw client
// reports the status and body unedited.
func TestRawWireChecks(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	for _, tc := range []struct {
		name string
		opts Options
		body string
	}{
		{"no Metadata header", Options{RawNoMetadata: true}, "Required metadata header not specified"},
		{"X-Forwarded-For", Options{RawForwardedFor: "10.1.2.3"}, "X-Forwarded-For"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Mode, o.IMDSAddr = ModeIMDS, a.IMDS
			res, _ := runProbe(t, Config{Options: o, Clients: []string{ClientRaw}, Resource: uniqueResource(t, "")})
			r := res[0]
			if r.OK() || r.HTTPStatus != 400 || !strings.Contains(r.Body, tc.body) || r.Requests != 1 {
				t.Fatalf("%+v", r)
			}
		})
	}
}

// TestAppServiceMode runs the clients against the App Service face, found
// through IDENTITY_ENDPOINT and IDENTITY_HEADER as on App Service.
func TestAppServiceMode(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	t.Setenv("IDENTITY_ENDPOINT", "http://"+a.IMDS+"/msi/token")
	for _, tc := range []struct {
		name     string
		header   string
		identity Identity
		want     string
		status   int
	}{
		{"system", "idharness-identity-header", Identity{Kind: System}, fakeimdstest.SystemObjectID, 200},
		{"client_id", "idharness-identity-header", Identity{Kind: ByClientID, Value: fakeimdstest.UserBClientID}, fakeimdstest.UserBObjectID, 200},
		{"wrong header", "guess", Identity{Kind: System}, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("IDENTITY_HEADER", tc.header)
			if tc.identity.Kind == ByClientID {
				t.Setenv("AZURE_CLIENT_ID", tc.identity.Value)
			}
			clients := imdsClients
			if tc.status != 200 {
				clients = []string{ClientRaw}
			}
			for _, client := range clients {
				// One resource per client: the SDKs share a process-wide cache.
				res, _ := runProbe(t, Config{
					Options: Options{Mode: ModeAppService, Identity: tc.identity},
					Clients: []string{client}, Resource: uniqueResource(t, client),
				})
				r := res[0]
				if r.IdentityGot != tc.want || r.HTTPStatus != tc.status || r.Mode != ModeAppService {
					t.Errorf("%s: %+v", r.Client, r)
				}
				if r.Client == ClientAzidentityDefault && tc.status == 200 && r.Requests != 1 {
					t.Errorf("azidentity-default made %d requests; it probes only IMDS", r.Requests)
				}
				if r.Client == ClientRaw && tc.status == 200 {
					for f, typ := range r.FieldTypes {
						if typ != "string" {
							t.Errorf("App Service field %s is a %s", f, typ)
						}
					}
				}
			}
		})
	}
}

// TestModeEnvironment: a client whose environment contradicts the mode
// reports why on every attempt instead of testing another source.
func TestModeEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		env    map[string]string
		id     Identity
		client string
		want   string
	}{
		{"imds with IDENTITY_ENDPOINT", ModeIMDS, map[string]string{"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token"}, Identity{}, ClientMSALMI, "unset it or use --mode appservice"},
		{"appservice without its variables", ModeAppService, nil, Identity{}, ClientRaw, "IDENTITY_ENDPOINT and IDENTITY_HEADER"},
		{"workload identity without the webhook", ModeWorkloadIdentity, nil, Identity{}, ClientMSALWI, "AZURE_TENANT_ID"},
		{"workload identity by object ID", ModeWorkloadIdentity, map[string]string{"AZURE_TENANT_ID": fakeimdstest.TenantID, "AZURE_FEDERATED_TOKEN_FILE": "/f", "AZURE_AUTHORITY_HOST": "https://a/"},
			Identity{Kind: ByObjectID, Value: fakeimdstest.UserAObjectID}, ClientAzidentityWI, "by client ID only"},
		{"default with another AZURE_CLIENT_ID", ModeIMDS, map[string]string{"AZURE_CLIENT_ID": fakeimdstest.UserBClientID}, Identity{Kind: ByClientID, Value: fakeimdstest.UserAClientID}, ClientAzidentityDefault, "set AZURE_CLIENT_ID=" + fakeimdstest.UserAClientID},
		{"default by resource ID", ModeIMDS, nil, Identity{Kind: ByResourceID, Value: "/subscriptions/x"}, ClientAzidentityDefault, "only by client ID"},
		{"raw in workload identity mode", ModeWorkloadIdentity, map[string]string{"AZURE_TENANT_ID": fakeimdstest.TenantID, "AZURE_FEDERATED_TOKEN_FILE": "/f", "AZURE_AUTHORITY_HOST": "https://a/", "AZURE_CLIENT_ID": fakeimdstest.UserAClientID},
			Identity{}, ClientRaw, "IMDS and App Service only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearIdentityEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			res, sum := runProbe(t, Config{Options: Options{Mode: tc.mode, Identity: tc.id}, Clients: []string{tc.client}, Count: 2, Interval: time.Millisecond})
			if len(res) != 2 || sum.Errors != 2 || !strings.Contains(res[1].Error, tc.want) || res[1].Requests != 0 || res[1].Stage != proberesult.StageToken {
				t.Fatalf("want every attempt to fail with %q: %+v", tc.want, res)
			}
		})
	}
}

// TestProcessWideCache documents why fromCache must be measured: MSAL Go
// and azidentity share one managed identity token cache per process, so a
// client's very first call can be answered from a token another client
// fetched.
func TestProcessWideCache(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	res, _ := runProbe(t, Config{
		Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS},
		Clients: []string{ClientAzidentityMI, ClientMSALMI}, Resource: uniqueResource(t, ""),
	})
	if res[0].FromCache || res[0].Requests != 1 {
		t.Errorf("azidentity-mi, first in the process: %+v", res[0])
	}
	if !res[1].FromCache || res[1].Requests != 0 || res[1].IdentityGot != fakeimdstest.SystemObjectID {
		t.Errorf("msal-mi after azidentity-mi asked for the same token: fromCache=%v requests=%d; want it served from the shared cache", res[1].FromCache, res[1].Requests)
	}
}

// TestParallel runs each round's calls as a fan-out on one client: every
// call is a result line with its number, the round's calls share the
// round's attempt number, and none claims a request count it cannot
// know.
func TestParallel(t *testing.T) {
	clearIdentityEnv(t)
	_, a := fakeimdstest.Start(t, nil)
	for _, tc := range []struct {
		parallel, rounds int
	}{
		{1, 2},
		{4, 2},
	} {
		t.Run(fmt.Sprint(tc.parallel), func(t *testing.T) {
			res, sum := runProbe(t, Config{
				Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS},
				Clients: []string{ClientAzidentityMI}, Resource: uniqueResource(t, ""), Count: tc.rounds, Interval: time.Millisecond, Parallel: tc.parallel,
			})
			if len(res) != tc.parallel*tc.rounds || sum.OK != len(res) {
				t.Fatalf("%d results (%d ok), want %d", len(res), sum.OK, tc.parallel*tc.rounds)
			}
			for i, r := range res {
				wantCall, wantRound := 0, i+1
				if tc.parallel > 1 {
					wantCall, wantRound = i%tc.parallel+1, i/tc.parallel+1
				}
				if r.Call != wantCall || r.Attempt != wantRound {
					t.Errorf("result %d: call %d attempt %d, want call %d attempt %d", i, r.Call, r.Attempt, wantCall, wantRound)
				}
				if tc.parallel > 1 && (r.Requests != proberesult.RequestsUnmeasured || r.FromCache) {
					t.Errorf("result %d of a fan-out: requests %d fromCache %v, want unmeasured", i, r.Requests, r.FromCache)
				}
			}
		})
	}
}
