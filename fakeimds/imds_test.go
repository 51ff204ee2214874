package fakeimds

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
)

var meta = map[string]string{"Metadata": "true"}

func TestIMDSTokenRules(t *testing.T) {
	vmRID := config.Default().Host.ResourceID()
	uaRID := testConfig().UserAssignedResourceID("id-a")
	cases := []struct {
		name     string
		method   string
		path     string
		query    string
		hdr      map[string]string
		noSystem bool
		status   int
		errCode  string
		errDesc  string
		client   string // want this client_id on success
	}{
		{name: "system by default", query: "api-version=2018-02-01&resource=https://vault.azure.net", hdr: meta, status: 200, client: sysClient},
		{name: "trailing slash", path: IMDSTokenPath + "/", query: "api-version=2018-02-01&resource=https://vault.azure.net", hdr: meta, status: 200, client: sysClient},
		{name: "by client_id", query: "api-version=2018-02-01&resource=r&client_id=" + uaClient, hdr: meta, status: 200, client: uaClient},
		{name: "client_id case-insensitive", query: "api-version=2018-02-01&resource=r&client_id=" + "11111111-1111-4111-8111-111111111111", hdr: meta, status: 200, client: uaClient},
		{name: "by object_id", query: "api-version=2018-02-01&resource=r&object_id=" + ubObject, hdr: meta, status: 200, client: ubClient},
		{name: "by msi_res_id", query: "api-version=2018-02-01&resource=r&msi_res_id=" + url.QueryEscape(uaRID), hdr: meta, status: 200, client: uaClient},
		{name: "by mi_res_id", query: "api-version=2018-02-01&resource=r&mi_res_id=" + url.QueryEscape(uaRID), hdr: meta, status: 200, client: uaClient},
		{name: "system by its resource id", query: "api-version=2018-02-01&resource=r&msi_res_id=" + url.QueryEscape(vmRID), hdr: meta, status: 200, client: sysClient},
		{name: "unescaped query as python sends", query: "api-version=2018-02-01&resource=https://management.core.windows.net/&msi_res_id=" + uaRID, hdr: meta, status: 200, client: uaClient},
		{name: "later api version", query: "api-version=2021-02-01&resource=r", hdr: meta, status: 200, client: sysClient},
		{name: "no metadata header", query: "api-version=2018-02-01&resource=r", status: 400, errCode: "bad_request_102", errDesc: "Required metadata header not specified"},
		{name: "metadata false", query: "api-version=2018-02-01&resource=r", hdr: map[string]string{"Metadata": "false"}, status: 400, errCode: "bad_request_102"},
		{name: "x-forwarded-for", query: "api-version=2018-02-01&resource=r", hdr: map[string]string{"Metadata": "true", "X-Forwarded-For": "10.1.2.3"}, status: 400, errCode: "invalid_request"},
		{name: "missing api-version", query: "resource=r", hdr: meta, status: 400, errCode: "invalid_request", errDesc: "Required query variable 'api-version' is missing; supported versions are 2018-02-01 and later, e.g. 2025-04-07, 2024-03-15, 2023-11-15"},
		{name: "old api-version", query: "api-version=2017-12-01&resource=r", hdr: meta, status: 400, errCode: "invalid_request"},
		{name: "garbage api-version", query: "api-version=latest&resource=r", hdr: meta, status: 400, errCode: "invalid_request"},
		{name: "missing resource", query: "api-version=2018-02-01", hdr: meta, status: 400, errCode: "invalid_request", errDesc: "Required audience parameter not specified"},
		{name: "two selectors", query: "api-version=2018-02-01&resource=r&client_id=" + uaClient + "&object_id=" + uaObject, hdr: meta, status: 400, errCode: "invalid_request"},
		{name: "unknown client_id", query: "api-version=2018-02-01&resource=r&client_id=99999999-9999-4999-8999-999999999999", hdr: meta, status: 400, errCode: "invalid_request", errDesc: "Identity not found"},
		{name: "unknown resource id", query: "api-version=2018-02-01&resource=r&msi_res_id=/subscriptions/x/nope", hdr: meta, status: 400, errCode: "invalid_request", errDesc: "Identity not found"},
		{name: "ambiguous without system", noSystem: true, query: "api-version=2018-02-01&resource=r", hdr: meta, status: 400, errCode: "invalid_request",
			errDesc: "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"},
		{name: "POST", method: http.MethodPost, query: "api-version=2018-02-01&resource=r", hdr: meta, status: 405, errCode: "method_not_allowed"},
		{name: "bad escape", query: "api-version=2018-02-01&resource=%zz", hdr: meta, status: 400, errCode: "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(c *config.Config) {
				if tc.noSystem {
					c.SystemAssigned = nil
				}
			})
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodGet
			}
			if path == "" {
				path = IMDSTokenPath
			}
			w := do(s.IMDSHandler(), method, "http://169.254.169.254"+path+"?"+tc.query, tc.hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			body := decodeObject(t, w.Body)
			if tc.status != 200 {
				if body["error"] != tc.errCode {
					t.Errorf("error %v, want %q", body["error"], tc.errCode)
				}
				desc, _ := body["error_description"].(string)
				if desc == "" || (tc.errDesc != "" && desc != tc.errDesc) {
					t.Errorf("error_description %q, want %q", desc, tc.errDesc)
				}
				if _, leaked := body["access_token"]; leaked {
					t.Error("error response carries an access_token")
				}
				return
			}
			for _, f := range []string{"access_token", "refresh_token", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type", "client_id"} {
				if _, ok := body[f].(string); !ok {
					t.Errorf("field %s = %#v, want a JSON string", f, body[f])
				}
			}
			if body["token_type"] != "Bearer" || body["refresh_token"] != "" {
				t.Errorf("token_type %v refresh_token %v", body["token_type"], body["refresh_token"])
			}
			if body["client_id"] != tc.client {
				t.Errorf("client_id %v, want %s", body["client_id"], tc.client)
			}
			q, _ := url.ParseQuery(tc.query)
			if body["resource"] != q.Get("resource") {
				t.Errorf("resource %v does not echo %q", body["resource"], q.Get("resource"))
			}
			c := verifyToken(t, s, body["access_token"].(string))
			if c.Audience != q.Get("resource") || c.AppID != tc.client {
				t.Errorf("claims aud=%q appid=%q", c.Audience, c.AppID)
			}
			exp, _ := strconv.ParseInt(body["expires_on"].(string), 10, 64)
			if exp != c.Expiry {
				t.Errorf("expires_on %d != exp %d", exp, c.Expiry)
			}
			in, _ := strconv.ParseInt(body["expires_in"].(string), 10, 64)
			if d := time.Until(time.Unix(exp, 0)).Seconds(); in < int64(d)-2 || in > int64(d)+2 {
				t.Errorf("expires_in %d, want about %.0f", in, d)
			}
		})
	}
}

func TestIMDSTokenClaims(t *testing.T) {
	s := newServer(t, nil)
	w := do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=https://storage.azure.com/&client_id="+uaClient), meta)
	body := decodeObject(t, w.Body)
	c := verifyToken(t, s, body["access_token"].(string))
	want := testConfig().UserAssignedResourceID("id-a")
	if c.ObjectID != uaObject || c.Subject != uaObject || c.TenantID != testTenant || c.ResourceID != want ||
		c.Issuer != "https://sts.windows.net/"+testTenant+"/" || c.AZP != uaClient || c.Audience != "https://storage.azure.com/" {
		t.Errorf("claims %+v", c)
	}
	if c.Expiry-c.IssuedAt != int64((24 * time.Hour).Seconds()) {
		t.Errorf("lifetime %ds, want 24h", c.Expiry-c.IssuedAt)
	}
	if c.NotBefore > c.IssuedAt {
		t.Errorf("nbf %d after iat %d", c.NotBefore, c.IssuedAt)
	}
}

func TestIMDSTokenCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s := newServer(t, func(c *config.Config) {
		c.Tokens.Lifetime = config.Duration{Duration: time.Hour}
	}, WithClock(clock))
	get := func(q string) map[string]any {
		w := do(s.IMDSHandler(), "GET", imdsURL(q), meta)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		return decodeObject(t, w.Body)
	}
	first := get("api-version=2018-02-01&resource=r1")
	now = now.Add(10 * time.Minute)
	second := get("api-version=2018-02-01&resource=r1")
	if first["access_token"] != second["access_token"] {
		t.Fatal("token not reused within its lifetime")
	}
	if second["expires_in"] != "3000" {
		t.Errorf("cached expires_in %v, want 3000 (counting down)", second["expires_in"])
	}
	if other := get("api-version=2018-02-01&resource=r2"); other["access_token"] == first["access_token"] {
		t.Error("a different resource got the same token")
	}
	if other := get("api-version=2018-02-01&resource=r1&client_id=" + uaClient); other["access_token"] == first["access_token"] {
		t.Error("a different identity got the same token")
	}
	now = now.Add(46 * time.Minute) // 4 minutes left: under the 5-minute threshold
	third := get("api-version=2018-02-01&resource=r1")
	if third["access_token"] == first["access_token"] || third["expires_in"] != "3600" {
		t.Errorf("near-expiry token reused (expires_in %v)", third["expires_in"])
	}
	if e := s.Journal().Since(0); !e[1].Cached || e[0].Cached {
		t.Errorf("journal cached flags: %v %v", e[0].Cached, e[1].Cached)
	}
	s.Minter().SetCache(false, 0)
	a, b := get("api-version=2018-02-01&resource=r1"), get("api-version=2018-02-01&resource=r1")
	if a["access_token"] == b["access_token"] {
		t.Error("cache off still reuses tokens")
	}
}

func TestIMDSJournal(t *testing.T) {
	s := newServer(t, nil)
	do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=r&client_id="+uaClient), map[string]string{"Metadata": "true", "User-Agent": "probe/1"})
	do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=r"), nil)
	e := s.Journal().Since(0)
	if len(e) != 2 {
		t.Fatalf("%d entries", len(e))
	}
	if e[0].Face != FaceIMDS || e[0].Status != 200 || e[0].Identity != uaClient || e[0].IdentityName != "id-a" ||
		e[0].Selector != "client_id="+uaClient || e[0].Resource != "r" || e[0].Headers["User-Agent"] != "probe/1" {
		t.Errorf("entry 0: %+v", e[0])
	}
	if e[1].Status != 400 || e[1].Error != "bad_request_102" || e[1].Identity != "" {
		t.Errorf("entry 1: %+v", e[1])
	}
}
