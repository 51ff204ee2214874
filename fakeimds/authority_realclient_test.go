package fakeimds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// workloadSetup runs a server whose authority listens over HTTPS on
// loopback with a generated CA, and returns the authority host URL, an
// HTTP client that trusts that CA and connects every request to the
// server, and the test issuer.
//
// The certificate also covers login.microsoftonline.com because MSAL
// sends instance discovery for a host it does not know to that host; the
// client's dialer brings it to the fake like every other request.
func workloadSetup(t *testing.T) (*Server, string, *http.Client, *testIssuer) {
	t.Helper()
	clearIdentityEnv(t)
	iss, _ := newTestIssuer(t, false)
	dir := t.TempDir()
	s := newServer(t, func(c *config.Config) {
		withFederation(iss.url)(c)
		c.Listen.AuthorityTLS = "127.0.0.1:0"
		c.Faces.Authority.TLSDir = dir
		c.Faces.Authority.TLSHosts = []string{"login.microsoftonline.com"}
	})
	a := running(t, s)
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFileName))
	if err != nil {
		t.Fatalf("read generated CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("generated ca.crt holds no certificate")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, a.AuthorityTLS)
		},
	}}
	_, port, err := net.SplitHostPort(a.AuthorityTLS)
	if err != nil {
		t.Fatal(err)
	}
	return s, "https://localhost:" + port + "/", hc, iss
}

// writeAssertion writes a service account token as the workload identity
// webhook projects it, and returns the file's path.
func writeAssertion(t *testing.T, raw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(p, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthorityRealClientWorkloadIdentity runs azidentity's
// WorkloadIdentityCredential, MSAL underneath, against the authority over
// HTTPS: the authority host given both ways a pod can give it, with
// instance discovery on (answered by the fake) and off.
func TestAuthorityRealClientWorkloadIdentity(t *testing.T) {
	for _, how := range []string{"ClientOptions.Cloud", "AZURE_AUTHORITY_HOST", "DisableInstanceDiscovery"} {
		t.Run(how, func(t *testing.T) {
			s, host, hc, iss := workloadSetup(t)
			opts := &azidentity.WorkloadIdentityCredentialOptions{
				ClientID:      uaClient,
				TenantID:      testTenant,
				TokenFilePath: writeAssertion(t, iss.sign(t, assertion{})),
				ClientOptions: azcore.ClientOptions{Transport: hc},
			}
			switch how {
			case "AZURE_AUTHORITY_HOST":
				t.Setenv("AZURE_AUTHORITY_HOST", host)
			case "DisableInstanceDiscovery":
				opts.DisableInstanceDiscovery = true
				t.Setenv("AZURE_AUTHORITY_HOST", host)
			default:
				opts.ClientOptions.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: host, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
			}
			cred, err := azidentity.NewWorkloadIdentityCredential(opts)
			if err != nil {
				t.Fatalf("NewWorkloadIdentityCredential: %v", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultScope}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			c := verifyWithPublishedKeys(t, hc, host, tok.Token)
			if c.Audience != vaultResource || c.ObjectID != uaObject || c.AppID != uaClient || c.TenantID != testTenant {
				t.Errorf("claims aud=%q oid=%q appid=%q tid=%q", c.Audience, c.ObjectID, c.AppID, c.TenantID)
			}
			if exp := time.Unix(c.Expiry, 0); exp.Sub(tok.ExpiresOn).Abs() > 5*time.Second || !exp.After(time.Now()) {
				t.Errorf("exp %v, client's ExpiresOn %v", exp, tok.ExpiresOn)
			}
			var sawDiscovery, sawToken bool
			for _, e := range s.Journal().Since(0) {
				sawDiscovery = sawDiscovery || e.Path == InstanceDiscoveryPath
				if e.Face == FaceAuthority && strings.HasSuffix(e.Path, "/oauth2/v2.0/token") && e.Status == 200 {
					sawToken = e.Identity == uaClient && e.Resource == vaultResource
				}
			}
			if wantDiscovery := how != "DisableInstanceDiscovery"; sawDiscovery != wantDiscovery || !sawToken {
				t.Errorf("journal: instance discovery seen %v (want %v), token for %s seen %v", sawDiscovery, wantDiscovery, uaClient, sawToken)
			}
		})
	}
}

// verifyWithPublishedKeys checks raw against the key set the authority
// publishes over HTTPS, as a resource server would, and returns its claims.
func verifyWithPublishedKeys(t *testing.T, hc *http.Client, host, raw string) token.Claims {
	t.Helper()
	resp, err := hc.Get(host + testTenant + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatalf("fetch keys: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("keys: status %d, decode: %v", resp.StatusCode, err)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("access token's kid %q is not published", tok.Headers[0].KeyID)
	}
	var c token.Claims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("verify access token: %v", err)
	}
	return c
}

// TestAuthorityRealClientNoMatchingCredential checks that the client sees
// Azure AD's AADSTS70021 when the assertion's subject is not trusted.
func TestAuthorityRealClientNoMatchingCredential(t *testing.T) {
	s, host, hc, iss := workloadSetup(t)
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientID:      uaClient,
		TenantID:      testTenant,
		TokenFilePath: writeAssertion(t, iss.sign(t, assertion{sub: "system:serviceaccount:default:intruder"})),
		ClientOptions: azcore.ClientOptions{Transport: hc, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: host}},
	})
	if err != nil {
		t.Fatalf("NewWorkloadIdentityCredential: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultScope}})
	if err == nil || !strings.Contains(err.Error(), "AADSTS70021") {
		t.Fatalf("GetToken error = %v, want AADSTS70021", err)
	}
	for _, e := range s.Journal().Since(0) {
		if e.Status == 200 && strings.HasSuffix(e.Path, "/oauth2/v2.0/token") {
			t.Errorf("a token was issued: %+v", e)
		}
	}
}
