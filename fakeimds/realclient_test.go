package fakeimds

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	mi "github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"

	"github.com/idharness/idharness/fakeimds/config"
)

// redirectClient returns an HTTP client that connects to addr whatever
// host a request names. Real SDKs hard-code 169.254.169.254; this sends
// their requests to the server on loopback without changing a byte of
// them (the Host header still says 169.254.169.254).
func redirectClient(addr string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// clearIdentityEnv removes variables that would make SDKs pick another
// managed identity source than IMDS.
func clearIdentityEnv(t *testing.T) {
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
		"IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
}

func TestAzidentityManagedIdentity(t *testing.T) {
	clearIdentityEnv(t)
	s := newServer(t, nil)
	a := running(t, s)
	hc := redirectClient(a.IMDS)
	rid := testConfig().UserAssignedResourceID("id-b")
	cases := []struct {
		name  string
		id    azidentity.ManagedIDKind
		want  string
		query string // what the SDK must have sent
	}{
		{"system-assigned", nil, sysObject, ""},
		{"by client ID", azidentity.ClientID(uaClient), uaObject, "client_id=" + uaClient},
		{"by object ID", azidentity.ObjectID(ubObject), ubObject, "object_id=" + ubObject},
		{"by resource ID", azidentity.ResourceID(rid), ubObject, "msi_res_id="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ID: tc.id, ClientOptions: azcore.ClientOptions{Transport: hc},
			})
			if err != nil {
				t.Fatal(err)
			}
			before := len(s.Journal().Since(0))
			resource := uniqueResource(t)
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			c := verifyToken(t, s, tok.Token)
			if c.ObjectID != tc.want || c.Audience != resource {
				t.Errorf("token oid=%s aud=%s, want oid=%s", c.ObjectID, c.Audience, tc.want)
			}
			if got := tok.ExpiresOn.Unix(); got != c.Expiry {
				t.Errorf("SDK ExpiresOn %d, token exp %d", got, c.Expiry)
			}
			entries := s.Journal().Since(0)[before:]
			if len(entries) != 1 || entries[0].Status != 200 || !strings.Contains(entries[0].Query, tc.query) {
				t.Fatalf("journal after GetToken: %+v", entries)
			}
			// A second call is served from the SDK's own cache: the
			// response's expires_on/expires_in were understood.
			if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}}); err != nil {
				t.Fatal(err)
			}
			if n := len(s.Journal().Since(0)) - before; n != 1 {
				t.Errorf("second GetToken reached the server (%d requests in all); the SDK did not cache the token", n)
			}
		})
	}
}

func TestAzidentityErrors(t *testing.T) {
	clearIdentityEnv(t)
	s := newServer(t, func(c *config.Config) { c.SystemAssigned = nil })
	a := running(t, s)
	hc := redirectClient(a.IMDS)
	for _, tc := range []struct {
		name string
		id   azidentity.ManagedIDKind
		want string
	}{
		{"ambiguous", nil, "Multiple user assigned identities exist"},
		{"unknown", azidentity.ClientID("99999999-9999-4999-8999-999999999999"), "Identity not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: tc.id, ClientOptions: azcore.ClientOptions{Transport: hc}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{uniqueResource(t) + "/.default"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GetToken error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAzidentityDefaultCredential(t *testing.T) {
	clearIdentityEnv(t)
	s := newServer(t, nil)
	a := running(t, s)
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: redirectClient(a.IMDS)},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{uniqueResource(t) + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if c := verifyToken(t, s, tok.Token); c.ObjectID != sysObject {
		t.Errorf("oid %s", c.ObjectID)
	}
	// DefaultAzureCredential first probes IMDS without the Metadata
	// header; the fake must answer it as IMDS does, with a 400.
	var probed bool
	for _, e := range s.Journal().Since(0) {
		if e.Headers["Metadata"] == "" && e.Status == 400 && e.Error == "bad_request_102" {
			probed = true
		}
	}
	if !probed {
		t.Error("DefaultAzureCredential's header-less IMDS probe was not answered with 400 bad_request_102")
	}
}

func TestMSALManagedIdentity(t *testing.T) {
	clearIdentityEnv(t)
	s := newServer(t, nil)
	a := running(t, s)
	hc := redirectClient(a.IMDS)
	rid := testConfig().UserAssignedResourceID("id-a")
	for _, tc := range []struct {
		name string
		id   mi.ID
		want string
	}{
		{"system-assigned", mi.SystemAssigned(), sysObject},
		{"by client ID", mi.UserAssignedClientID(uaClient), uaObject},
		{"by object ID", mi.UserAssignedObjectID(ubObject), ubObject},
		{"by resource ID", mi.UserAssignedResourceID(rid), uaObject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mi.New(tc.id, mi.WithHTTPClient(hc))
			if err != nil {
				t.Fatal(err)
			}
			resource := uniqueResource(t)
			res, err := c.AcquireToken(context.Background(), resource)
			if err != nil {
				t.Fatalf("AcquireToken: %v", err)
			}
			claims := verifyToken(t, s, res.AccessToken)
			if claims.ObjectID != tc.want || claims.Audience != resource {
				t.Errorf("oid=%s aud=%s", claims.ObjectID, claims.Audience)
			}
			if res.ExpiresOn.Unix() != claims.Expiry {
				t.Errorf("ExpiresOn %d, exp %d", res.ExpiresOn.Unix(), claims.Expiry)
			}
		})
	}
	t.Run("unknown identity", func(t *testing.T) {
		c, err := mi.New(mi.UserAssignedClientID("99999999-9999-4999-8999-999999999999"), mi.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AcquireToken(context.Background(), uniqueResource(t))
		if err == nil || !strings.Contains(err.Error(), "Identity not found") {
			t.Fatalf("error %v, want Identity not found", err)
		}
	})
}
