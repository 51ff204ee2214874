package vault

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/token"
)

// fake is a fakeimds server signing with key, served over loopback HTTP.
type fake struct {
	srv  *fakeimds.Server
	url  string
	jwks string
}

func newFake(t *testing.T, key *rsa.PrivateKey) *fake {
	t.Helper()
	s := fakeimdstest.New(t, nil, fakeimds.WithSigningKey(key))
	hs := httptest.NewServer(s.IMDSHandler())
	t.Cleanup(hs.Close)
	return &fake{srv: s, url: hs.URL, jwks: hs.URL + "/" + fakeimdstest.TenantID + "/discovery/v2.0/keys"}
}

// imdsToken gets a token over the fake's IMDS face, as a pod would.
func (f *fake) imdsToken(t *testing.T, clientID, resource string) string {
	t.Helper()
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {resource}}
	if clientID != "" {
		q.Set("client_id", clientID)
	}
	req, _ := http.NewRequest(http.MethodGet, f.url+fakeimds.IMDSTokenPath+"?"+q.Encode(), nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("IMDS token: %d %v", resp.StatusCode, err)
	}
	return body.AccessToken
}

// mint signs a token for the identity with clientID, its times shifted.
func (f *fake) mint(t *testing.T, clientID, resource string, shift token.Shift, edit func(*identity.Identity)) string {
	t.Helper()
	id, ok := f.srv.Store().Lookup(clientID)
	if !ok {
		t.Fatalf("no identity %s", clientID)
	}
	if edit != nil {
		edit(&id)
	}
	tok, err := f.srv.Minter().Mint(id, resource, shift)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Raw
}

// signed signs arbitrary claims with key under kid.
func signed(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newVault(t *testing.T, cfg Config, opts ...Option) (*Server, *bytes.Buffer) {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = map[string]Secret{
			"db-password": {Value: "hunter2", Readers: []string{fakeimdstest.UserAObjectID}},
			"banner":      {Value: "hello", Readers: []string{AnyReader}},
		}
	}
	var logs bytes.Buffer
	s, err := New(cfg, append([]Option{WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, &logs
}

// get reads secret with the Authorization header auth.
func get(s *Server, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "http://idharness.vault.test"+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func TestSecretRead(t *testing.T) {
	f := newFake(t, fakeimdstest.Key())
	other := newFake(t, fakeimdstest.SecondKey())
	s, logs := newVault(t, Config{JWKSURLs: []string{f.jwks}})
	good := "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)
	fakeKid := f.srv.Minter().Signer().KeyID()
	now := time.Now()
	base := jwt.Claims{Issuer: token.Issuer(fakeimdstest.TenantID), Audience: jwt.Audience{DefaultAudience}, Expiry: jwt.NewNumericDate(now.Add(time.Hour)), NotBefore: jwt.NewNumericDate(now)}
	cases := []struct {
		name   string
		path   string
		auth   string
		status int
		reason string
		msg    string
	}{
		{"reader", "/secrets/db-password?api-version=7.4", good, 200, ReasonOK, ""},
		{"no api-version", "/secrets/db-password", good, 200, ReasonOK, ""},
		{"empty version, as the JavaScript SDK asks", "/secrets/db-password/?api-version=7.5", good, 200, ReasonOK, ""},
		{"by version", "/secrets/db-password/" + versionOf("db-password", "hunter2"), good, 200, ReasonOK, ""},
		{"audience with trailing slash", "/secrets/db-password", "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience+"/"), 200, ReasonOK, ""},
		{"anyone may read", "/secrets/banner", "Bearer " + f.imdsToken(t, "", DefaultAudience), 200, ReasonOK, ""},
		{"no token", "/secrets/db-password", "", 401, ReasonMissingToken, "AKV10000"},
		{"basic auth", "/secrets/db-password", "Basic dXNlcjpwYXNz", 401, ReasonMissingToken, "AKV10000"},
		{"not a JWT", "/secrets/db-password", "Bearer abc.def", 401, ReasonMalformed, "not an RS256-signed JWT"},
		{"HS256", "/secrets/db-password", "Bearer " + signed(t, []byte("a secret anyone could know, 32 bytes+"), jose.HS256, fakeKid, base), 401, ReasonMalformed, "RS256"},
		{"other audience", "/secrets/db-password", "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, "https://management.azure.com"), 401, ReasonWrongAudience, "found: https://management.azure.com"},
		{"expired", "/secrets/db-password", "Bearer " + f.mint(t, fakeimdstest.UserAClientID, DefaultAudience, token.Shift{Lifetime: -time.Minute}, nil), 401, ReasonExpired, "Token expired at"},
		{"not yet valid", "/secrets/db-password", "Bearer " + f.mint(t, fakeimdstest.UserAClientID, DefaultAudience, token.Shift{Offset: 10 * time.Minute}, nil), 401, ReasonNotYetValid, "not valid before"},
		{"other tenant", "/secrets/db-password", "Bearer " + f.mint(t, fakeimdstest.UserAClientID, DefaultAudience, token.Shift{}, func(id *identity.Identity) { id.TenantID = "00000000-0000-4000-8000-000000000000" }), 401, ReasonWrongIssuer, "AKV10032"},
		{"unknown key", "/secrets/db-password", "Bearer " + other.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience), 401, ReasonUnknownKey, "not published"},
		{"bad signature", "/secrets/db-password", "Bearer " + signed(t, fakeimdstest.SecondKey(), jose.RS256, fakeKid, base), 401, ReasonBadSignature, "does not verify"},
		{"no oid", "/secrets/db-password", "Bearer " + signed(t, fakeimdstest.Key(), jose.RS256, fakeKid, base), 401, ReasonNoObjectID, "no oid"},
		{"not a reader", "/secrets/db-password", "Bearer " + f.imdsToken(t, "", DefaultAudience), 403, ReasonNotAllowed, "oid=" + fakeimdstest.SystemObjectID},
		{"unknown secret", "/secrets/nope", good, 404, ReasonUnknownSecret, "nope was not found"},
		{"unknown version", "/secrets/db-password/0123", good, 404, ReasonUnknownSecret, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := get(s, tc.path, tc.auth)
			if w.Code != tc.status || w.Header().Get(ReasonHeader) != tc.reason {
				t.Fatalf("%d %s %s; want %d %s", w.Code, w.Header().Get(ReasonHeader), w.Body, tc.status, tc.reason)
			}
			if tc.status == 200 {
				var r SecretResponse
				if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || r.Value == "" || !r.Attributes.Enabled ||
					!strings.HasPrefix(r.ID, "https://idharness.vault.test/secrets/") || len(r.ID[strings.LastIndex(r.ID, "/")+1:]) != 32 {
					t.Fatalf("body %s: %v", w.Body, err)
				}
				return
			}
			var e ErrorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error.Message, tc.msg) {
				t.Fatalf("error body %s, want message containing %q", w.Body, tc.msg)
			}
			wantCode := map[int]string{401: "Unauthorized", 403: "Forbidden", 404: "SecretNotFound"}[tc.status]
			if e.Error.Code != wantCode {
				t.Errorf("code %q, want %q", e.Error.Code, wantCode)
			}
			challenge := w.Header().Get("WWW-Authenticate")
			if want := `Bearer authorization="https://login.microsoftonline.com/` + fakeimdstest.TenantID + `", resource="https://vault.azure.net"`; (tc.status == 401) != (challenge == want) {
				t.Errorf("WWW-Authenticate %q", challenge)
			}
		})
	}
	// Every decision is logged with its oid, secret, outcome and reason.
	var n int
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var e map[string]any
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if e["msg"] == "decision" {
			n++
			if e["reason"] == ReasonNotAllowed && (e["oid"] != fakeimdstest.SystemObjectID || e["secret"] != "db-password" || e["outcome"] != "denied" || e["status"] != float64(403)) {
				t.Errorf("decision log %s", line)
			}
		}
	}
	if n != len(cases) {
		t.Errorf("%d decisions logged for %d requests", n, len(cases))
	}
}

func TestHealthz(t *testing.T) {
	f := newFake(t, fakeimdstest.Key())
	s, _ := newVault(t, Config{JWKSURLs: []string{f.jwks}})
	if w := get(s, "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	if w := get(s, "/keys/k", ""); w.Code != 404 {
		t.Fatalf("unknown path %d", w.Code)
	}
}

// TestSeveralKeySets: every node's fakeimds has its own key; a vault
// given each node's JWKS URL accepts tokens from any node.
func TestSeveralKeySets(t *testing.T) {
	a, b := newFake(t, fakeimdstest.Key()), newFake(t, fakeimdstest.SecondKey())
	s, _ := newVault(t, Config{JWKSURLs: []string{a.jwks, b.jwks}})
	for _, f := range []*fake{a, b} {
		if w := get(s, "/secrets/db-password", "Bearer "+f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)); w.Code != 200 {
			t.Errorf("token from %s: %d %s", f.url, w.Code, w.Body)
		}
	}
	if n := s.Keys().Fetches(); n != 1 {
		t.Errorf("%d fetch rounds; want one for both URLs", n)
	}
}

// jwksServer publishes a key set that tests can swap, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	set     jose.JSONWebKeySet
	fetches int
	failing bool
	url     string
}

func (j *jwksServer) setFailing(on bool) {
	j.mu.Lock()
	j.failing = on
	j.mu.Unlock()
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	j := &jwksServer{set: jose.JSONWebKeySet{Keys: keys}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.fetches++
		if j.failing {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_ = json.NewEncoder(w).Encode(j.set)
	}))
	t.Cleanup(hs.Close)
	j.url = hs.URL
	return j
}

func (j *jwksServer) publish(keys ...jose.JSONWebKey) {
	j.mu.Lock()
	j.set = jose.JSONWebKeySet{Keys: keys}
	j.mu.Unlock()
}

func (j *jwksServer) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetches
}

func pub(key *rsa.PrivateKey, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}
}

// TestKeyRotation: a token with a kid not yet fetched makes the vault
// refetch (once per refetch interval), and keys are refetched after TTL.
func TestKeyRotation(t *testing.T) {
	f := newFake(t, fakeimdstest.SecondKey())
	rotated := f.srv.Minter().Signer().KeyID()
	j := newJWKSServer(t, pub(fakeimdstest.Key(), "old"))
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, _ := newVault(t, Config{JWKSURLs: []string{j.url}, KeysTTL: time.Hour, RefetchInterval: time.Minute}, WithClock(clock))
	tok := "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)

	if w := get(s, "/secrets/db-password", tok); w.Code != 401 || j.count() != 1 {
		t.Fatalf("before rotation: %d after %d fetches", w.Code, j.count())
	}
	j.publish(pub(fakeimdstest.Key(), "old"), pub(fakeimdstest.SecondKey(), rotated))
	// Within the refetch interval an unknown kid does not refetch.
	if w := get(s, "/secrets/db-password", tok); w.Code != 401 || j.count() != 1 {
		t.Fatalf("within the refetch interval: %d after %d fetches", w.Code, j.count())
	}
	advance(2 * time.Minute)
	if w := get(s, "/secrets/db-password", tok); w.Code != 200 || j.count() != 2 {
		t.Fatalf("after rotation: %d %s after %d fetches", w.Code, w.Body, j.count())
	}
	// A known kid is served from cache until the TTL.
	get(s, "/secrets/db-password", tok)
	if j.count() != 2 {
		t.Fatalf("%d fetches; a known kid refetched", j.count())
	}
	advance(time.Hour)
	get(s, "/secrets/db-password", tok)
	if j.count() != 3 {
		t.Fatalf("%d fetches; keys not refetched after the TTL", j.count())
	}
}

// TestSharedKeyAnyKid: nodes sharing one signing key may publish it under
// different kids; AnyKey accepts a token whose kid is not published if a
// trusted key verifies it.
func TestSharedKeyAnyKid(t *testing.T) {
	f := newFake(t, fakeimdstest.Key())
	j := newJWKSServer(t, pub(fakeimdstest.Key(), "another-node's-kid"))
	tok := "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)
	for _, anyKey := range []bool{false, true} {
		s, _ := newVault(t, Config{JWKSURLs: []string{j.url}, AnyKey: anyKey})
		want := map[bool]int{false: 401, true: 200}[anyKey]
		if w := get(s, "/secrets/db-password", tok); w.Code != want {
			t.Errorf("AnyKey=%v: %d %s", anyKey, w.Code, w.Body)
		}
	}
	// A key nobody trusts is still refused.
	s, _ := newVault(t, Config{JWKSURLs: []string{j.url}, AnyKey: true})
	other := newFake(t, fakeimdstest.SecondKey())
	if w := get(s, "/secrets/db-password", "Bearer "+other.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)); w.Code != 401 || w.Header().Get(ReasonHeader) != ReasonUnknownKey {
		t.Errorf("untrusted key with AnyKey: %d %s", w.Code, w.Body)
	}
}

// TestKeysUnavailable: with no key reachable the vault says so (503)
// rather than blaming the token; keys fetched earlier outlive an outage.
func TestKeysUnavailable(t *testing.T) {
	f := newFake(t, fakeimdstest.Key())
	tok := "Bearer " + f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s, _ := newVault(t, Config{JWKSURLs: []string{dead.URL + "/keys"}})
	if w := get(s, "/secrets/db-password", tok); w.Code != 503 || w.Header().Get(ReasonHeader) != ReasonKeysUnavailable {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	j := newJWKSServer(t, f.srv.Minter().Signer().JWKS().Keys...)
	now := time.Now()
	s, _ = newVault(t, Config{JWKSURLs: []string{j.url}, KeysTTL: time.Minute}, WithClock(func() time.Time { return now }))
	if w := get(s, "/secrets/db-password", tok); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	j.setFailing(true)
	now = now.Add(2 * time.Minute)
	if w := get(s, "/secrets/db-password", tok); w.Code != 200 || j.count() != 2 {
		t.Fatalf("during an outage, after %d fetches: %d %s", j.count(), w.Code, w.Body)
	}
	j.setFailing(false)
	j.publish()
	now = now.Add(2 * time.Minute)
	if w := get(s, "/secrets/db-password", tok); w.Code != 503 || !strings.Contains(w.Body.String(), "empty") {
		t.Fatalf("after every key was withdrawn: %d %s", w.Code, w.Body)
	}
}

func TestStaticKeys(t *testing.T) {
	f := newFake(t, fakeimdstest.Key())
	p := filepath.Join(t.TempDir(), "jwks.json")
	b, _ := json.Marshal(f.srv.Minter().Signer().JWKS())
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadJWKSFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newVault(t, Config{Keys: k})
	tok := f.imdsToken(t, fakeimdstest.UserAClientID, DefaultAudience)
	if w := get(s, "/secrets/db-password", "Bearer "+tok); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if c, rej := s.Verify(t.Context(), tok); rej != nil || c.ObjectID != fakeimdstest.UserAObjectID {
		t.Fatalf("Verify: %+v %v", c, rej)
	}
	if _, rej := s.Verify(t.Context(), f.mint(t, fakeimdstest.UserAClientID, "https://other", token.Shift{}, nil)); rej == nil || rej.Reason != ReasonWrongAudience {
		t.Fatalf("Verify of a token for another audience: %v", rej)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no keys", Config{}, "no signing keys"},
		{"bad URL", Config{JWKSURLs: []string{"keys.json"}}, "want http(s)"},
		{"no readers", Config{JWKSURLs: []string{"http://x/keys"}, Secrets: map[string]Secret{"s": {Value: "v"}}}, "no readers"},
		{"slash in name", Config{JWKSURLs: []string{"http://x/keys"}, Secrets: map[string]Secret{"a/b": {Value: "v", Readers: []string{"*"}}}}, "without /"},
		{"negative skew", Config{JWKSURLs: []string{"http://x/keys"}, Skew: -time.Second}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadACL(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, err string
	}{
		{"yaml", "secrets:\n  db:\n    value: hunter2\n    readers: [" + fakeimdstest.UserAObjectID + "]\n", ""},
		{"json", `{"secrets":{"db":{"value":"hunter2","readers":["` + fakeimdstest.UserAObjectID + `"]}}}`, ""},
		{"unknown field", "secrets:\n  db:\n    value: hunter2\n    reader: [x]\n", ":4: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			acl, err := LoadACL(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || acl.Secrets["db"].Value != "hunter2" || acl.Secrets["db"].Readers[0] != fakeimdstest.UserAObjectID {
				t.Fatalf("%+v %v", acl, err)
			}
		})
	}
}
