package fakeimds

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// Federated credentials of the test identities: id-a trusts the workload
// service account, id-b another one, with a custom audience.
const (
	wiSubject      = "system:serviceaccount:default:workload"
	otherSubject   = "system:serviceaccount:other:app"
	customAudience = "api://custom-exchange"
	vaultScope     = "https://vault.azure.net/.default"
	vaultResource  = "https://vault.azure.net"
)

var (
	issuerKeysOnce sync.Once
	issuerKeys     [2]*rsa.PrivateKey
)

// testIssuerKeys returns two RSA keys for test issuers, made once.
func testIssuerKeys() [2]*rsa.PrivateKey {
	issuerKeysOnce.Do(func() {
		for i := range issuerKeys {
			k, err := token.GenerateKey()
			if err != nil {
				panic(err)
			}
			issuerKeys[i] = k
		}
	})
	return issuerKeys
}

// testIssuer is an external OIDC issuer (a Kubernetes API server, say):
// it signs assertions with its current key and serves discovery and JWKS
// on loopback. Its published keys can be swapped to simulate rotation.
type testIssuer struct {
	url     string
	key     *rsa.PrivateKey
	kid     string
	mu      sync.Mutex
	jwks    jose.JSONWebKeySet
	fetches atomic.Int64
}

func newTestIssuer(t testing.TB, tlsServer bool) (*testIssuer, *httptest.Server) {
	t.Helper()
	iss := &testIssuer{}
	iss.use(testIssuerKeys()[0], "issuer-key-1")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"issuer": iss.url, "jwks_uri": iss.url + "/openid/v1/jwks"})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		iss.fetches.Add(1)
		iss.mu.Lock()
		defer iss.mu.Unlock()
		writeJSON(w, http.StatusOK, iss.jwks)
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss, srv
}

// use makes key (with key ID kid) the one the issuer signs with and the
// only one it publishes.
func (iss *testIssuer) use(key *rsa.PrivateKey, kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.key, iss.kid = key, kid
	iss.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}}}
}

// assertion describes a client assertion to sign; zero fields get the
// values of a valid workload assertion.
type assertion struct {
	iss, sub string
	aud      []string
	nbf, exp time.Time
	noExp    bool
	key      *rsa.PrivateKey
	kid      string
	alg      jose.SignatureAlgorithm
}

func (iss *testIssuer) sign(t testing.TB, a assertion) string {
	t.Helper()
	iss.mu.Lock()
	key, kid := iss.key, iss.kid
	iss.mu.Unlock()
	if a.key != nil {
		key = a.key
	}
	if a.kid != "" {
		kid = a.kid
	}
	if a.alg == "" {
		a.alg = jose.RS256
	}
	if a.iss == "" {
		a.iss = iss.url
	}
	if a.sub == "" {
		a.sub = wiSubject
	}
	if a.aud == nil {
		a.aud = []string{"api://AzureADTokenExchange"}
	}
	now := time.Now()
	if a.nbf.IsZero() {
		a.nbf = now.Add(-time.Minute)
	}
	if a.exp.IsZero() {
		a.exp = now.Add(time.Hour)
	}
	c := jwt.Claims{Issuer: a.iss, Subject: a.sub, Audience: jwt.Audience(a.aud), NotBefore: jwt.NewNumericDate(a.nbf), IssuedAt: jwt.NewNumericDate(a.nbf)}
	if !a.noExp {
		c.Expiry = jwt.NewNumericDate(a.exp)
	}
	var signingKey any = key
	if a.alg == jose.HS256 {
		signingKey = []byte("a shared secret that anyone could know, 32+ bytes")
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: a.alg, Key: jose.JSONWebKey{Key: signingKey, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	raw, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatalf("sign assertion: %v", err)
	}
	return raw
}

// withFederation gives id-a a credential for the workload subject and
// id-b one for another subject with a custom audience, both trusting iss.
func withFederation(iss string) func(*config.Config) {
	return func(c *config.Config) {
		c.UserAssigned[0].FederatedCredentials = []config.FederatedCredential{{Name: "workload", Issuer: iss, Subject: wiSubject}}
		c.UserAssigned[1].FederatedCredentials = []config.FederatedCredential{{Name: "other", Issuer: iss, Subject: otherSubject, Audiences: []string{customAudience}}}
	}
}

// tokenForm is a valid token request for id-a with assertion.
func tokenForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {uaClient},
		"scope":                 {vaultScope},
		"client_assertion_type": {JWTBearerAssertionType},
		"client_assertion":      {assertion},
	}
}

func postToken(h http.Handler, tenant string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "https://login.microsoftonline.com/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var (
	aadTimestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`)
	guidRE         = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// checkAADError asserts that w is Azure AD's error shape with error and
// AADSTS code, every field of the JSON type Azure AD sends.
func checkAADError(t *testing.T, w *httptest.ResponseRecorder, status int, wantErr string, code int) map[string]any {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	m := decodeObject(t, w.Body)
	if m["error"] != wantErr {
		t.Errorf("error = %v, want %q", m["error"], wantErr)
	}
	desc, _ := m["error_description"].(string)
	if !strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d: ", code)) {
		t.Errorf("error_description = %q, want it to start with AADSTS%d", desc, code)
	}
	codes, ok := m["error_codes"].([]any)
	if !ok || len(codes) != 1 || codes[0] != float64(code) {
		t.Errorf("error_codes = %#v, want [%d] as numbers", m["error_codes"], code)
	}
	ts, _ := m["timestamp"].(string)
	if !aadTimestampRE.MatchString(ts) {
		t.Errorf("timestamp = %#v", m["timestamp"])
	}
	for _, f := range []string{"trace_id", "correlation_id"} {
		if v, _ := m[f].(string); !guidRE.MatchString(v) {
			t.Errorf("%s = %#v, want a GUID", f, m[f])
		}
	}
	for _, part := range []string{"Trace ID: " + fmt.Sprint(m["trace_id"]), "Correlation ID: " + fmt.Sprint(m["correlation_id"]), "Timestamp: " + ts} {
		if !strings.Contains(desc, part) {
			t.Errorf("error_description lacks %q: %s", part, desc)
		}
	}
	if _, ok := m["error_uri"].(string); !ok {
		t.Errorf("error_uri = %#v", m["error_uri"])
	}
	return m
}

// checkAADToken asserts a v2 token response for identity (clientID,
// objectID) and the vault resource, and returns its expires_in.
func checkAADToken(t *testing.T, s *Server, w *httptest.ResponseRecorder, clientID, objectID string) float64 {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	m := decodeObject(t, w.Body)
	if m["token_type"] != "Bearer" {
		t.Errorf("token_type = %#v", m["token_type"])
	}
	in, ok := m["expires_in"].(float64)
	if !ok || in <= 0 {
		t.Errorf("expires_in = %#v, want a positive JSON number", m["expires_in"])
	}
	if ext, ok := m["ext_expires_in"].(float64); !ok || ext <= 0 {
		t.Errorf("ext_expires_in = %#v, want a positive JSON number", m["ext_expires_in"])
	}
	raw, _ := m["access_token"].(string)
	c := verifyToken(t, s, raw)
	if c.Audience != vaultResource || c.AppID != clientID || c.ObjectID != objectID || c.TenantID != testTenant {
		t.Errorf("claims aud=%q appid=%q oid=%q tid=%q, want %q %q %q %q", c.Audience, c.AppID, c.ObjectID, c.TenantID, vaultResource, clientID, objectID, testTenant)
	}
	if got := time.Unix(c.Expiry, 0); got.Sub(time.Now().Add(time.Duration(in)*time.Second)).Abs() > 5*time.Second {
		t.Errorf("exp %v disagrees with expires_in %v", got, in)
	}
	return in
}

func TestAuthorityToken(t *testing.T) {
	iss, _ := newTestIssuer(t, false)
	s := newServer(t, withFederation(iss.url))
	h := s.IMDSHandler()
	other := testIssuerKeys()[1]
	now := time.Now()

	type tc struct {
		name   string
		tenant string
		method string
		form   func(url.Values)
		status int
		err    string
		code   int
		inDesc string
	}
	set := func(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
	del := func(k string) func(url.Values) { return func(f url.Values) { f.Del(k) } }
	assert := func(a assertion) func(url.Values) { return set("client_assertion", iss.sign(t, a)) }
	cases := []tc{
		{name: "valid workload assertion", status: 200},
		{name: "scope with OIDC scopes beside it", form: set("scope", vaultScope+" openid offline_access profile"), status: 200},
		{name: "tenant in upper case", tenant: strings.ToUpper(testTenant), status: 200},
		{name: "custom audience of id-b", form: func(f url.Values) {
			f.Set("client_id", ubClient)
			f.Set("client_assertion", iss.sign(t, assertion{sub: otherSubject, aud: []string{"other", customAudience}}))
		}, status: 200},
		{name: "GET", method: http.MethodGet, status: 400, err: "invalid_request", code: 900561},
		{name: "missing grant_type", form: del("grant_type"), status: 400, err: "invalid_request", code: 900144, inDesc: "'grant_type'"},
		{name: "password grant", form: set("grant_type", "password"), status: 400, err: "unsupported_grant_type", code: 70003},
		{name: "missing client_id", form: del("client_id"), status: 400, err: "invalid_request", code: 900144, inDesc: "'client_id'"},
		{name: "missing scope", form: del("scope"), status: 400, err: "invalid_request", code: 900144, inDesc: "'scope'"},
		{name: "scope without /.default", form: set("scope", "https://vault.azure.net/secrets.read"), status: 400, err: "invalid_scope", code: 1002012},
		{name: "two resources", form: set("scope", vaultScope+" https://management.azure.com/.default"), status: 400, err: "invalid_scope", code: 1002012},
		{name: "missing assertion", form: del("client_assertion"), status: 401, err: "invalid_client", code: 7000216},
		{name: "wrong assertion type", form: set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"), status: 401, err: "invalid_client", code: 7000216},
		{name: "unknown client_id", form: set("client_id", "99999999-9999-4999-8999-999999999999"), status: 400, err: "unauthorized_client", code: 700016, inDesc: "'99999999-9999-4999-8999-999999999999' was not found in the directory '" + testTenant + "'"},
		{name: "other tenant", tenant: "0d2a5b6c-0000-4000-8000-000000000000", status: 400, err: "unauthorized_client", code: 700016},
		{name: "invalid tenant", tenant: "-bad-", status: 400, err: "invalid_request", code: 900023},
		{name: "malformed assertion", form: set("client_assertion", "not.a.jwt"), status: 400, err: "invalid_request", code: 50027},
		{name: "assertion without exp", form: assert(assertion{noExp: true}), status: 400, err: "invalid_request", code: 50027},
		{name: "HS256 assertion", form: assert(assertion{alg: jose.HS256}), status: 400, err: "invalid_request", code: 50027},
		{name: "wrong subject", form: assert(assertion{sub: "system:serviceaccount:default:intruder"}), status: 400, err: "invalid_request", code: 70021,
			inDesc: "Assertion Issuer: '" + iss.url + "'. Assertion Subject: 'system:serviceaccount:default:intruder'. Assertion Audience: 'api://AzureADTokenExchange'."},
		{name: "subject differs in case", form: assert(assertion{sub: strings.ToUpper(wiSubject)}), status: 400, err: "invalid_request", code: 70021},
		{name: "wrong issuer", form: assert(assertion{iss: "https://issuer.example"}), status: 400, err: "invalid_request", code: 70021},
		{name: "wrong audience", form: assert(assertion{aud: []string{"api://other"}}), status: 400, err: "invalid_request", code: 70021},
		{name: "id-b's assertion presented for id-a", form: assert(assertion{sub: otherSubject, aud: []string{customAudience}}), status: 400, err: "invalid_request", code: 70021},
		{name: "id-a's assertion presented for id-b", form: set("client_id", ubClient), status: 400, err: "invalid_request", code: 70021},
		{name: "system identity has no federated credential", form: set("client_id", sysClient), status: 400, err: "invalid_request", code: 70021},
		{name: "expired", form: assert(assertion{nbf: now.Add(-2 * time.Hour), exp: now.Add(-time.Hour)}), status: 400, err: "invalid_client", code: 700024, inDesc: "Client assertion is not within its valid time range. Current time: "},
		{name: "not yet valid", form: assert(assertion{nbf: now.Add(time.Hour), exp: now.Add(2 * time.Hour)}), status: 400, err: "invalid_client", code: 700024},
		{name: "signed by a key the issuer does not publish", form: assert(assertion{key: other}), status: 401, err: "invalid_client", code: 700027},
		{name: "unknown key ID", form: assert(assertion{key: other, kid: "rogue"}), status: 401, err: "invalid_client", code: 700027, inDesc: "The key was not found."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := tokenForm(iss.sign(t, assertion{}))
			if c.form != nil {
				c.form(form)
			}
			tenant := c.tenant
			if tenant == "" {
				tenant = testTenant
			}
			var w *httptest.ResponseRecorder
			if c.method != "" {
				w = do(h, c.method, "https://login.microsoftonline.com/"+tenant+"/oauth2/v2.0/token?"+form.Encode(), nil)
			} else {
				w = postToken(h, tenant, form)
			}
			last := s.Journal().Since(0)
			e := last[len(last)-1]
			if e.Face != FaceAuthority || e.Status != c.status {
				t.Errorf("journal entry face=%q status=%d", e.Face, e.Status)
			}
			if c.status == 200 {
				clientID, objectID := uaClient, uaObject
				if form.Get("client_id") == ubClient {
					clientID, objectID = ubClient, ubObject
				}
				checkAADToken(t, s, w, clientID, objectID)
				if e.Identity != clientID || e.Resource != vaultResource || e.Error != "" {
					t.Errorf("journal entry identity=%q resource=%q error=%q", e.Identity, e.Resource, e.Error)
				}
				return
			}
			m := checkAADError(t, w, c.status, c.err, c.code)
			if desc := m["error_description"].(string); c.inDesc != "" && !strings.Contains(desc, c.inDesc) {
				t.Errorf("error_description = %q, want it to contain %q", desc, c.inDesc)
			}
			if want := fmt.Sprintf("AADSTS%d", c.code); e.Error != want {
				t.Errorf("journal error = %q, want %q", e.Error, want)
			}
		})
	}
}

// TestAuthorityCorrelationID checks that a client's client-request-id
// comes back as the correlation ID, as Azure AD echoes it.
func TestAuthorityCorrelationID(t *testing.T) {
	s := newServer(t, nil)
	const id = "0b2e6c1e-4a3f-4c55-9d3e-5f1a2b3c4d5e"
	req := httptest.NewRequest(http.MethodPost, "/"+testTenant+"/oauth2/v2.0/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", id)
	w := httptest.NewRecorder()
	s.IMDSHandler().ServeHTTP(w, req)
	m := checkAADError(t, w, 400, "invalid_request", 900144)
	if m["correlation_id"] != id || w.Header().Get("client-request-id") != id {
		t.Errorf("correlation_id = %v, header %q, want %s", m["correlation_id"], w.Header().Get("client-request-id"), id)
	}
}

func TestAuthorityClockSkew(t *testing.T) {
	iss, _ := newTestIssuer(t, false)
	s := newServer(t, func(c *config.Config) {
		withFederation(iss.url)(c)
		c.Faces.Authority.ClockSkew = config.Duration{Duration: 2 * time.Minute}
	})
	now := time.Now()
	cases := []struct {
		name     string
		nbf, exp time.Time
		ok       bool
	}{
		{"expired within skew", now.Add(-time.Hour), now.Add(-time.Minute), true},
		{"expired beyond skew", now.Add(-time.Hour), now.Add(-3 * time.Minute), false},
		{"not yet valid within skew", now.Add(time.Minute), now.Add(time.Hour), true},
		{"not yet valid beyond skew", now.Add(3 * time.Minute), now.Add(time.Hour), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{nbf: c.nbf, exp: c.exp})))
			if c.ok {
				checkAADToken(t, s, w, uaClient, uaObject)
				return
			}
			checkAADError(t, w, 400, "invalid_client", 700024)
		})
	}
	t.Run("no skew", func(t *testing.T) {
		s := newServer(t, func(c *config.Config) {
			withFederation(iss.url)(c)
			c.Faces.Authority.ClockSkew = config.Duration{}
		})
		w := postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{exp: now.Add(-10 * time.Second)})))
		checkAADError(t, w, 400, "invalid_client", 700024)
	})
}

// TestAuthorityKeyRotation checks the key cache: keys are fetched once
// for many exchanges; an unknown key ID causes a refetch (the issuer
// rotated), but at most once per refetch interval; keys past their TTL are
// fetched again.
func TestAuthorityKeyRotation(t *testing.T) {
	iss, _ := newTestIssuer(t, false)
	s := newServer(t, withFederation(iss.url))
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	kc := s.auth.keys
	kc.now = func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	exchange := func() int {
		return postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))).Code
	}
	for range 3 {
		if code := exchange(); code != 200 {
			t.Fatalf("exchange: %d", code)
		}
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for 3 exchanges, want 1", n)
	}

	iss.use(testIssuerKeys()[1], "issuer-key-2")
	// Within the refetch interval of the last fetch an unknown key ID is
	// refused without fetching: random key IDs must not cost a fetch each.
	advance(kc.refetchMin / 2)
	if code := exchange(); code != 401 {
		t.Fatalf("exchange right after the previous fetch: %d, want 401", code)
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want still 1", n)
	}
	advance(kc.refetchMin)
	if code := exchange(); code != 200 {
		t.Fatalf("exchange with the rotated key: %d, want 200", code)
	}
	if n := iss.fetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (refetch on unknown kid)", n)
	}

	advance(kc.ttl)
	if code := exchange(); code != 200 {
		t.Fatalf("exchange after TTL: %d", code)
	}
	if n := iss.fetches.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3 (TTL expired)", n)
	}
}

// TestAuthorityJWKSFile checks an issuer whose keys come from a file: no
// network, and a rotated file is read again on an unknown key ID.
func TestAuthorityJWKSFile(t *testing.T) {
	iss := &testIssuer{url: "https://oidc.cluster.example/issuer"}
	iss.use(testIssuerKeys()[0], "file-key-1")
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeSet := func() {
		b, err := json.Marshal(iss.jwks)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSet()
	s := newServer(t, func(c *config.Config) {
		withFederation(iss.url)(c)
		c.Faces.Authority.Issuers = []config.Issuer{{URL: iss.url + "/", JWKSFile: file}}
	})
	s.auth.keys.refetchMin = 0
	checkAADToken(t, s, postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))), uaClient, uaObject)

	iss.use(testIssuerKeys()[1], "file-key-2")
	writeSet()
	checkAADToken(t, s, postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))), uaClient, uaObject)

	w := postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{key: testIssuerKeys()[0], kid: "file-key-1"})))
	checkAADError(t, w, 401, "invalid_client", 700027)
}

// TestAuthorityIssuerTLS checks an HTTPS issuer: trusted through its
// configured CA file, refused (AADSTS50166) without it.
func TestAuthorityIssuerTLS(t *testing.T) {
	iss, srv := newTestIssuer(t, true)
	caFile := filepath.Join(t.TempDir(), "issuer-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("with CA file", func(t *testing.T) {
		s := newServer(t, func(c *config.Config) {
			withFederation(iss.url)(c)
			c.Faces.Authority.Issuers = []config.Issuer{{URL: iss.url, CAFile: caFile}}
		})
		checkAADToken(t, s, postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))), uaClient, uaObject)
	})
	t.Run("without CA file", func(t *testing.T) {
		s := newServer(t, withFederation(iss.url))
		checkAADError(t, postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))), 400, "invalid_request", 50166)
	})
	t.Run("jwksUrl", func(t *testing.T) {
		s := newServer(t, func(c *config.Config) {
			withFederation(iss.url)(c)
			c.Faces.Authority.Issuers = []config.Issuer{{URL: iss.url, JWKSURL: iss.url + "/openid/v1/jwks", CAFile: caFile}}
		})
		checkAADToken(t, s, postToken(s.IMDSHandler(), testTenant, tokenForm(iss.sign(t, assertion{}))), uaClient, uaObject)
	})
	t.Run("bad CA file stops the server", func(t *testing.T) {
		c := testConfig()
		c.Faces.Authority.Issuers = []config.Issuer{{URL: iss.url, CAFile: filepath.Join(t.TempDir(), "missing.pem")}}
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "missing.pem") {
			t.Fatalf("New = %v, want an error naming the CA file", err)
		}
	})
}

func TestAuthorityDiscovery(t *testing.T) {
	s := newServer(t, nil)
	h := s.IMDSHandler()

	t.Run("openid-configuration", func(t *testing.T) {
		for _, tc := range []struct{ target, base, issuer string }{
			{"http://fake.example:8080/" + testTenant + "/v2.0/.well-known/openid-configuration", "http://fake.example:8080/" + testTenant, "http://fake.example:8080/" + testTenant + "/v2.0"},
			{"https://localhost:8443/common/v2.0/.well-known/openid-configuration", "https://localhost:8443/common", "https://localhost:8443/{tenantid}/v2.0"},
		} {
			w := do(h, http.MethodGet, tc.target, nil)
			if w.Code != 200 {
				t.Fatalf("%s: status %d", tc.target, w.Code)
			}
			m := decodeObject(t, w.Body)
			want := map[string]string{
				"issuer":                 tc.issuer,
				"token_endpoint":         tc.base + "/oauth2/v2.0/token",
				"authorization_endpoint": tc.base + "/oauth2/v2.0/authorize",
				"jwks_uri":               tc.base + "/discovery/v2.0/keys",
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %q", k, m[k], v)
				}
			}
			if _, ok := m["tenant_region_scope"].(string); !ok {
				t.Errorf("tenant_region_scope = %#v", m["tenant_region_scope"])
			}
			if _, ok := m["id_token_signing_alg_values_supported"].([]any); !ok {
				t.Errorf("id_token_signing_alg_values_supported = %#v", m["id_token_signing_alg_values_supported"])
			}
		}
	})

	t.Run("keys", func(t *testing.T) {
		for _, p := range []string{"/discovery/v2.0/keys", "/discovery/keys"} {
			w := do(h, http.MethodGet, "http://fake.example/"+testTenant+p, nil)
			var set jose.JSONWebKeySet
			if err := json.NewDecoder(w.Body).Decode(&set); err != nil || w.Code != 200 {
				t.Fatalf("%s: status %d, decode %v", p, w.Code, err)
			}
			if ks := set.Key(s.Minter().Signer().KeyID()); len(ks) != 1 || !ks[0].IsPublic() {
				t.Errorf("%s lacks the public signing key: %+v", p, set)
			}
		}
	})

	t.Run("instance discovery", func(t *testing.T) {
		for _, tc := range []struct{ host, preferred string }{
			{"fakeimds.test:8443", "fakeimds.test:8443"},
			{"login.microsoftonline.com", "login.microsoftonline.com"},
		} {
			q := url.Values{"api-version": {"1.1"}, "authorization_endpoint": {"https://" + tc.host + "/" + testTenant + "/oauth2/v2.0/authorize"}}
			w := do(h, http.MethodGet, "https://login.microsoftonline.com/common/discovery/instance?"+q.Encode(), nil)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var d InstanceDiscovery
			if err := json.NewDecoder(w.Body).Decode(&d); err != nil {
				t.Fatal(err)
			}
			if want := "https://" + tc.host + "/" + testTenant + "/v2.0/.well-known/openid-configuration"; d.TenantDiscoveryEndpoint != want {
				t.Errorf("tenant_discovery_endpoint = %q, want %q", d.TenantDiscoveryEndpoint, want)
			}
			if len(d.Metadata) != 1 || d.Metadata[0].PreferredNetwork != tc.preferred || !contains(strings.Join(d.Metadata[0].Aliases, " "), tc.host) {
				t.Errorf("metadata = %+v", d.Metadata)
			}
		}
		w := do(h, http.MethodGet, "https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=http://plain/t/oauth2/v2.0/authorize", nil)
		checkAADError(t, w, 400, "invalid_instance", 50049)
	})
}

func TestAuthorityOff(t *testing.T) {
	off := false
	s := newServer(t, func(c *config.Config) { c.Faces.Authority.Enabled = &off })
	w := postToken(s.IMDSHandler(), testTenant, tokenForm("x"))
	if w.Code != http.StatusNotFound {
		t.Fatalf("status = %d with the authority off, want 404", w.Code)
	}
}

// TestAuthorityTLS checks the HTTPS listener's certificate: generated with
// its CA in tlsDir/ca.crt and the configured extra hosts, or loaded from
// the configured files.
func TestAuthorityTLS(t *testing.T) {
	t.Run("generated", func(t *testing.T) {
		dir := t.TempDir()
		s := newServer(t, func(c *config.Config) {
			c.Listen.AuthorityTLS = "127.0.0.1:0"
			c.Faces.Authority.TLSDir = dir
			c.Faces.Authority.TLSHosts = []string{"fakeimds.test", "10.1.2.3"}
		})
		a := running(t, s)
		pool := x509.NewCertPool()
		caPEM, err := os.ReadFile(filepath.Join(dir, CAFileName))
		if err != nil || !pool.AppendCertsFromPEM(caPEM) {
			t.Fatalf("read CA: %v", err)
		}
		for _, name := range []string{"localhost", "127.0.0.1", "::1", "fakeimds.test", "10.1.2.3"} {
			conn, err := tls.Dial("tcp", a.AuthorityTLS, &tls.Config{RootCAs: pool, ServerName: name})
			if err != nil {
				t.Errorf("TLS as %s: %v", name, err)
				continue
			}
			_ = conn.Close()
		}
		if _, err := tls.Dial("tcp", a.AuthorityTLS, &tls.Config{RootCAs: pool, ServerName: "elsewhere.test"}); err == nil {
			t.Error("certificate is valid for a host it should not cover")
		}
	})
	t.Run("files", func(t *testing.T) {
		caPEM, cert, err := newCAAndLeaf([]string{"files.test"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		var chain []byte
		for _, der := range cert.Certificate {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, chain, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		tlsDir := t.TempDir()
		s := newServer(t, func(c *config.Config) {
			c.Listen.AuthorityTLS = "127.0.0.1:0"
			c.Faces.Authority.TLSDir = tlsDir
			c.Faces.Authority.TLSCertFile, c.Faces.Authority.TLSKeyFile = certFile, keyFile
		})
		a := running(t, s)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		conn, err := tls.Dial("tcp", a.AuthorityTLS, &tls.Config{RootCAs: pool, ServerName: "files.test"})
		if err != nil {
			t.Fatalf("TLS with the configured certificate: %v", err)
		}
		_ = conn.Close()
		if _, err := os.Stat(filepath.Join(tlsDir, CAFileName)); !os.IsNotExist(err) {
			t.Errorf("a CA was written although certificate files were configured (stat: %v)", err)
		}
	})
	t.Run("tlsHosts setting", func(t *testing.T) {
		c := testConfig()
		env := map[string]string{"FAKEIMDS_TLS_HOSTS": "fakeimds.test, 10.0.0.5,,::1"}
		if err := config.ApplyEnv(&c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Faces.Authority.TLSHosts, "|"); got != "fakeimds.test|10.0.0.5|::1" {
			t.Errorf("tlsHosts = %q", got)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
		for _, bad := range []string{"", "https://fakeimds.test", "host:443", "two words"} {
			c.Faces.Authority.TLSHosts = []string{"ok.test", bad}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "faces.authority.tlsHosts[1]") {
				t.Errorf("Validate with tlsHosts %q = %v, want an error naming faces.authority.tlsHosts[1]", bad, err)
			}
		}
	})
	t.Run("bad files stop Run", func(t *testing.T) {
		s := newServer(t, func(c *config.Config) {
			c.Listen.AuthorityTLS = "127.0.0.1:0"
			c.Faces.Authority.TLSCertFile, c.Faces.Authority.TLSKeyFile = "/nonexistent/tls.crt", "/nonexistent/tls.key"
		})
		if err := s.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/tls.crt") {
			t.Fatalf("Run = %v, want an error naming the certificate file", err)
		}
	})
}

// FuzzAuthorityToken feeds arbitrary bodies to the token endpoint: it must
// never panic, never answer 5xx, and never hand out a token unless the
// request carried an assertion that verifies against the issuer's key and
// matches a federated credential of the identity it names.
func FuzzAuthorityToken(f *testing.F) {
	iss := &testIssuer{url: "https://fuzz.issuer.example"}
	iss.use(testIssuerKeys()[0], "fuzz-key")
	dir := f.TempDir()
	file := filepath.Join(dir, "jwks.json")
	b, err := json.Marshal(iss.jwks)
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		f.Fatal(err)
	}
	s := newServer(f, func(c *config.Config) {
		withFederation(iss.url)(c)
		c.Faces.Authority.Issuers = []config.Issuer{{URL: iss.url, JWKSFile: file}}
	})
	good := tokenForm(iss.sign(f, assertion{exp: time.Now().Add(24 * time.Hour)}))
	f.Add([]byte(good.Encode()))
	b2 := tokenForm(iss.sign(f, assertion{sub: otherSubject, aud: []string{customAudience}, exp: time.Now().Add(24 * time.Hour)}))
	b2.Set("client_id", ubClient)
	f.Add([]byte(b2.Encode()))
	bad := tokenForm(iss.sign(f, assertion{sub: otherSubject}))
	f.Add([]byte(bad.Encode()))
	f.Add([]byte("grant_type=client_credentials&client_id=%zz&scope=/.default"))
	f.Add([]byte(""))
	pub := iss.jwks
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/"+testTenant+"/oauth2/v2.0/token", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.IMDSHandler().ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if w.Code != http.StatusOK {
			return
		}
		// ParseQuery keeps the well-formed pairs of a partly malformed body,
		// as the server's form parsing does.
		form, _ := url.ParseQuery(string(body))
		var out AADToken
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("200 body: %v", err)
		}
		tok, err := jwt.ParseSigned(form.Get("client_assertion"), assertionAlgs)
		if err != nil {
			t.Fatalf("token issued for an unparsable assertion: %q", body)
		}
		var c jwt.Claims
		if err := tok.Claims(pub.Keys[0].Key, &c); err != nil {
			t.Fatalf("token issued for an assertion not signed by the issuer: %v", err)
		}
		id, ok := s.Store().Lookup(form.Get("client_id"))
		if !ok {
			t.Fatalf("token issued for unknown client %q", form.Get("client_id"))
		}
		if _, ok := matchFederated(id.Federated, c); !ok {
			t.Fatalf("token issued for %s whose federated credentials do not match iss=%q sub=%q aud=%v", id.Name, c.Issuer, c.Subject, c.Audience)
		}
		claims := verifyToken(t, s, out.AccessToken)
		if claims.AppID != id.ClientID || claims.ObjectID != id.ObjectID {
			t.Fatalf("token for %s/%s, want %s/%s", claims.AppID, claims.ObjectID, id.ClientID, id.ObjectID)
		}
	})
}
