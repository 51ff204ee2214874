package fakeimds

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	mi "github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"

	"github.com/idharness/idharness/fakeimds/config"
)

func TestInstanceMetadata(t *testing.T) {
	s := newServer(t, func(c *config.Config) { c.Host.Tags = map[string]string{"env": "ci", "team": "id"} })
	cases := []struct {
		name   string
		target string
		hdr    map[string]string
		status int
		body   string // substring
		ctype  string
	}{
		{"whole document", "/metadata/instance?api-version=2021-02-01", meta, 200, `"vmId":"7a3c6f0e-1d2b-4c5e-9f8a-0b1c2d3e4f50"`, "application/json; charset=utf-8"},
		{"compute", "/metadata/instance/compute?api-version=2021-02-01", meta, 200, `"resourceGroupName":"idharness-rg"`, "application/json; charset=utf-8"},
		{"tags string", "/metadata/instance/compute/tags?api-version=2021-02-01&format=text", meta, 200, "env:ci;team:id", "text/plain; charset=utf-8"},
		{"leaf as text", "/metadata/instance/compute/location?api-version=2021-02-01&format=text", meta, 200, "westeurope", "text/plain; charset=utf-8"},
		{"list index", "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text", meta, 200, "10.0.0.4", ""},
		{"text on non-leaf", "/metadata/instance/compute?api-version=2021-02-01&format=text", meta, 400, "only supported for leaf nodes", ""},
		{"missing api-version", "/metadata/instance", meta, 400, `"newest-versions":["2025-04-07"`, ""},
		{"no metadata header", "/metadata/instance?api-version=2021-02-01", nil, 400, "Required metadata header not specified", ""},
		{"unknown path", "/metadata/instance/compute/nope?api-version=2021-02-01", meta, 404, "Not found", ""},
		{"bad format", "/metadata/instance?api-version=2021-02-01&format=xml", meta, 400, "Unsupported format", ""},
		{"versions", "/metadata/versions", meta, 200, `"apiVersions":["2017-03-01"`, ""},
		{"versions needs the header", "/metadata/versions", nil, 400, "metadata header", ""},
		{"unknown metadata path", "/metadata/scheduledevents?api-version=2020-07-01", meta, 404, "Not found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s.IMDSHandler(), http.MethodGet, "http://169.254.169.254"+tc.target, tc.hdr)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%d %s; want %d containing %q", w.Code, w.Body, tc.status, tc.body)
			}
			if tc.ctype != "" && w.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
		})
	}
}

func TestAppServiceRules(t *testing.T) {
	s := newServer(t, nil)
	secret := map[string]string{"X-IDENTITY-HEADER": "idharness-identity-header"}
	rid := testConfig().UserAssignedResourceID("id-b")
	cases := []struct {
		name   string
		method string
		query  string
		hdr    map[string]string
		status int
		client string
		msg    string
	}{
		{"system", "GET", "api-version=2019-08-01&resource=https://vault.azure.net", secret, 200, sysClient, ""},
		{"client_id", "GET", "api-version=2019-08-01&resource=r&client_id=" + uaClient, secret, 200, uaClient, ""},
		{"principal_id", "GET", "api-version=2019-08-01&resource=r&principal_id=" + ubObject, secret, 200, ubClient, ""},
		{"object_id alias", "GET", "api-version=2019-08-01&resource=r&object_id=" + uaObject, secret, 200, uaClient, ""},
		{"mi_res_id", "GET", "api-version=2019-08-01&resource=r&mi_res_id=" + rid, secret, 200, ubClient, ""},
		{"two selectors", "GET", "api-version=2019-08-01&resource=r&client_id=" + uaClient + "&mi_res_id=" + rid, secret, 400, "", "Only one of"},
		{"no header", "GET", "api-version=2019-08-01&resource=r", nil, 401, "", "X-IDENTITY-HEADER"},
		{"wrong header", "GET", "api-version=2019-08-01&resource=r", map[string]string{"X-IDENTITY-HEADER": "guess"}, 401, "", "X-IDENTITY-HEADER"},
		{"old api version", "GET", "api-version=2017-09-01&resource=r", secret, 400, "", "api-version"},
		{"no resource", "GET", "api-version=2019-08-01", secret, 400, "", "resource"},
		{"unknown identity", "GET", "api-version=2019-08-01&resource=r&client_id=99999999-9999-4999-8999-999999999999", secret, 400, "", "Managed Identity"},
		{"POST", "POST", "api-version=2019-08-01&resource=r", secret, 405, "", "http method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s.IMDSHandler(), tc.method, "http://localhost/msi/token?"+tc.query, tc.hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			body := decodeObject(t, w.Body)
			if tc.status != 200 {
				if body["statusCode"] != float64(tc.status) || !strings.Contains(body["message"].(string), tc.msg) || body["correlationId"] == "" {
					t.Errorf("error body %v", body)
				}
				return
			}
			for _, f := range []string{"access_token", "expires_on", "not_before", "resource", "token_type", "client_id"} {
				if _, ok := body[f].(string); !ok {
					t.Errorf("%s = %#v, want a string", f, body[f])
				}
			}
			if body["client_id"] != tc.client {
				t.Errorf("client_id %v, want %s", body["client_id"], tc.client)
			}
			verifyToken(t, s, body["access_token"].(string))
		})
	}
}

func TestAppServiceRealClients(t *testing.T) {
	clearIdentityEnv(t)
	s := newServer(t, nil)
	a := running(t, s)
	t.Setenv("IDENTITY_ENDPOINT", "http://"+a.IMDS+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "idharness-identity-header")
	t.Run("azidentity", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(uaClient)})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{uniqueResource(t) + "/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if c := verifyToken(t, s, tok.Token); c.ObjectID != uaObject || tok.ExpiresOn.Unix() != c.Expiry {
			t.Errorf("oid %s exp %d vs %d", c.ObjectID, tok.ExpiresOn.Unix(), c.Expiry)
		}
	})
	t.Run("msal", func(t *testing.T) {
		c, err := mi.New(mi.SystemAssigned())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.AcquireToken(context.Background(), uniqueResource(t))
		if err != nil {
			t.Fatalf("AcquireToken: %v", err)
		}
		if claims := verifyToken(t, s, res.AccessToken); claims.ObjectID != sysObject {
			t.Errorf("oid %s", claims.ObjectID)
		}
	})
	for _, e := range s.Journal().Since(0) {
		if e.Face != FaceAppService || e.Status != 200 || e.Headers["X-IDENTITY-HEADER"] != "present" {
			t.Errorf("journal entry %+v", e)
		}
	}
}

// TestArcRealClient runs azidentity's Azure Arc flow, which only accepts
// challenge files under /var/opt/azcmagent/tokens, so it needs root.
func TestArcRealClient(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Arc flow reads challenge files from /var/opt/azcmagent/tokens, writable by root only")
	}
	clearIdentityEnv(t)
	on := true
	s := newServer(t, func(c *config.Config) {
		c.Faces.Arc.Enabled = &on
		c.Faces.Arc.Addr = "127.0.0.1:0"
	})
	a := running(t, s)
	t.Setenv("IDENTITY_ENDPOINT", "http://"+a.Arc+"/metadata/identity/oauth2/token")
	t.Setenv("IMDS_ENDPOINT", "http://"+a.Arc)
	cred, err := azidentity.NewManagedIdentityCredential(nil)
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
	e := s.Journal().Since(0)
	if len(e) != 2 || e[0].Status != 401 || e[1].Status != 200 || e[1].Headers["Authorization"] != "present" {
		t.Fatalf("want a 401 challenge then a 200: %+v", e)
	}
}

func TestArcRules(t *testing.T) {
	on := true
	dir := t.TempDir()
	s := newServer(t, func(c *config.Config) { c.Faces.Arc.Enabled = &on; c.Faces.Arc.SecretDir = dir })
	h := s.ArcHandler()
	q := "http://127.0.0.1:40342/metadata/identity/oauth2/token?api-version=2020-06-01&resource=r"
	w := do(h, "GET", q, meta)
	realm := strings.TrimPrefix(w.Header().Get("WWW-Authenticate"), "Basic realm=")
	if w.Code != 401 || !strings.HasPrefix(realm, dir+"/") || !strings.HasSuffix(realm, ".key") {
		t.Fatalf("challenge: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	secret, err := os.ReadFile(realm)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(realm); st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", st.Mode())
	}
	for _, tc := range []struct {
		name   string
		query  string
		hdr    map[string]string
		status int
	}{
		{"right secret", q, map[string]string{"Metadata": "true", "Authorization": "Basic " + string(secret)}, 200},
		{"wrong secret", q, map[string]string{"Metadata": "true", "Authorization": "Basic nope"}, 401},
		{"no metadata header", q, map[string]string{"Authorization": "Basic " + string(secret)}, 400},
		{"user-assigned refused", q + "&client_id=" + uaClient, map[string]string{"Metadata": "true", "Authorization": "Basic " + string(secret)}, 400},
		{"old api-version", strings.Replace(q, "2020-06-01", "2019-01-01", 1), meta, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := do(h, "GET", tc.query, tc.hdr); w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
		})
	}
	s.arc.cleanup()
	if _, err := os.Stat(realm); !os.IsNotExist(err) {
		t.Error("challenge file left behind")
	}
}

// FuzzIMDSToken throws arbitrary queries and headers at the token
// endpoint: the server must never panic, answer 5xx, or hand out a token
// for an identity the request did not name.
func FuzzIMDSToken(f *testing.F) {
	f.Add("api-version=2018-02-01&resource=r", "true", "")
	f.Add("api-version=2018-02-01&resource=r&client_id="+uaClient, "true", "")
	f.Add("api-version=2018-02-01&resource=%zz&client_id=", "TRUE", "1.2.3.4")
	f.Add("api-version=2018-02-01-preview&resource=r&msi_res_id=/subscriptions/../x&object_id=;", "true", "")
	s := newServer(f, nil)
	h := s.IMDSHandler()
	f.Fuzz(func(t *testing.T, query, metadata, xff string) {
		req, err := http.NewRequest(http.MethodGet, "http://169.254.169.254"+IMDSTokenPath, nil)
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		req.Header["Metadata"] = []string{metadata}
		if xff != "" {
			req.Header["X-Forwarded-For"] = []string{xff}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q", w.Code, query)
		}
		if w.Code != 200 {
			return
		}
		body := decodeObject(t, w.Body)
		c := verifyToken(t, s, body["access_token"].(string))
		if v := req.URL.Query(); v.Get("client_id") != "" && !strings.EqualFold(v.Get("client_id"), c.AppID) {
			t.Fatalf("asked for client_id %q, got a token for %s", v.Get("client_id"), c.AppID)
		}
	})
}
