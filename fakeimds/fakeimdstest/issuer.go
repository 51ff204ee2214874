package fakeimdstest

import (
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
)

// ServiceAccountAudience is the audience the workload identity webhook
// projects service account tokens for.
const ServiceAccountAudience = "api://AzureADTokenExchange"

// Issuer is a cluster's service account token issuer for workload
// identity tests: OIDC discovery and keys on loopback, and a key to sign
// projected tokens with. A fake whose identity has a federated credential
// for Issuer.URL accepts its tokens as client assertions.
type Issuer struct {
	// URL is the issuer, as a federated credential names it.
	URL string
	key *rsa.PrivateKey
}

// NewIssuer serves an issuer until the test ends. It signs with
// SecondKey, so that its tokens are never mistaken for the fake's own.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{key: SecondKey()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss.URL, "jwks_uri": iss.URL + "/openid/v1/jwks"})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &iss.key.PublicKey, KeyID: "sa-key", Algorithm: "RS256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	return iss
}

// ProjectedToken writes a service account token for subject (e.g.
// "system:serviceaccount:default:probe") as the kubelet projects it, valid
// for an hour, and returns the file's path.
func (iss *Issuer) ProjectedToken(t testing.TB, subject string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: iss.key, KeyID: "sa-key"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: iss.URL, Subject: subject, Audience: jwt.Audience{ServiceAccountAudience},
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

// StartWorkload starts the test host with its authority also on HTTPS
// (127.0.0.1, a generated CA) and a federated credential on id-a that
// trusts iss's tokens for subject. It returns the addresses, the
// authority's https://localhost:PORT/ URL (the certificate names
// localhost) and the CA file to trust.
func StartWorkload(t testing.TB, iss *Issuer, subject string) (addrs fakeimds.Addrs, authority, caFile string) {
	t.Helper()
	dir := t.TempDir()
	_, a := Start(t, func(c *config.Config) {
		c.Listen.AuthorityTLS = "127.0.0.1:0"
		c.Faces.Authority.TLSDir = dir
		c.UserAssigned[0].FederatedCredentials = []config.FederatedCredential{{Name: "workload", Issuer: iss.URL, Subject: subject}}
	})
	_, port, err := net.SplitHostPort(a.AuthorityTLS)
	if err != nil {
		t.Fatal(err)
	}
	return a, "https://localhost:" + port + "/", filepath.Join(dir, fakeimds.CAFileName)
}
