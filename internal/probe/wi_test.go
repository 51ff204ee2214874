package probe

import (
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/fakeimds/token"
)

const wiSubject = "system:serviceaccount:default:probe"

// oidcIssuer is a cluster's service account issuer: discovery and keys
// on loopback, and a key to sign projected tokens with.
type oidcIssuer struct {
	url string
	key *rsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss.url, "jwks_uri": iss.url + "/openid/v1/jwks"})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "sa-key", Algorithm: "RS256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss
}

// projectedToken writes a service account token as kubelet projects it
// and returns the file's path.
func (iss *oidcIssuer) projectedToken(t *testing.T) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: iss.key, KeyID: "sa-key"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: iss.url, Subject: wiSubject, Audience: jwt.Audience{"api://AzureADTokenExchange"},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(p, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// workloadFake runs a fake whose authority serves HTTPS on loopback and
// trusts iss for id-a, sets the variables the webhook would, and returns
// the generated CA's path.
func workloadFake(t *testing.T, iss *oidcIssuer) string {
	t.Helper()
	dir := t.TempDir()
	_, a := fakeimdstest.Start(t, func(c *config.Config) {
		c.Listen.AuthorityTLS = "127.0.0.1:0"
		c.Faces.Authority.TLSDir = dir
		c.UserAssigned[0].FederatedCredentials = []config.FederatedCredential{{Name: "probe", Issuer: iss.url, Subject: wiSubject}}
	})
	_, port, err := net.SplitHostPort(a.AuthorityTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_CLIENT_ID", fakeimdstest.UserAClientID)
	t.Setenv("AZURE_TENANT_ID", fakeimdstest.TenantID)
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", iss.projectedToken(t))
	t.Setenv("AZURE_AUTHORITY_HOST", "https://localhost:"+port+"/")
	return filepath.Join(dir, fakeimds.CAFileName)
}

// TestWorkloadIdentityMode runs the workload identity clients through the
// token exchange at the fake authority over HTTPS: a token for the
// federated identity, then the same token from the client's cache.
func TestWorkloadIdentityMode(t *testing.T) {
	clearIdentityEnv(t)
	iss := newOIDCIssuer(t)
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
