package fakeimds

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// Identities of the test host.
const (
	sysClient  = "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01"
	sysObject  = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a501"
	uaClient   = "11111111-1111-4111-8111-111111111111"
	uaObject   = "22222222-2222-4222-8222-222222222222"
	ubClient   = "33333333-3333-4333-8333-333333333333"
	ubObject   = "44444444-4444-4444-8444-444444444444"
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// sharedKey returns one RSA key for all tests: generating one per test
// would dominate the suite's run time.
func sharedKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := token.GenerateKey()
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// testConfig is a host with a system-assigned and two user-assigned identities.
func testConfig() config.Config {
	c := config.Default()
	c.Listen = config.Listen{IMDS: "127.0.0.1:0", Control: "127.0.0.1:0"}
	c.Faces.Authority.TLSDir = ""
	// Rule tests send bursts; throttling has tests of its own.
	off := false
	c.Chaos.Throttle.Enabled = &off
	c.UserAssigned = []config.Identity{
		{Name: "id-a", ClientID: uaClient, ObjectID: uaObject},
		{Name: "id-b", ClientID: ubClient, ObjectID: ubObject},
	}
	return c
}

func newServer(t testing.TB, mutate func(*config.Config), opts ...Option) *Server {
	t.Helper()
	c := testConfig()
	if mutate != nil {
		mutate(&c)
	}
	if c.Faces.Authority.TLSDir == "" {
		c.Faces.Authority.TLSDir = t.TempDir()
	}
	s, err := New(c, append([]Option{WithSigningKey(sharedKey(t)), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// running starts s on loopback and returns its addresses; it stops when
// the test ends.
func running(t testing.TB, s *Server) Addrs {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(a Addrs) { addrs <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return a
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10s")
	}
	return Addrs{}
}

// do serves one request in process.
func do(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	if strings.HasPrefix(target, "/") {
		// A local fakeimds's address: the control API refuses DNS names
		// (httptest's default Host is example.com).
		req.Host = "127.0.0.1"
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeObject(t testing.TB, body io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(body).Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v", err)
	}
	return m
}

// verifyToken checks raw's signature against the server's published JWKS
// and returns its claims.
func verifyToken(t testing.TB, s *Server, raw string) token.Claims {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		t.Fatalf("JWT header lacks kid: %+v", tok.Headers)
	}
	jwks := s.Minter().Signer().JWKS()
	keys := jwks.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", tok.Headers[0].KeyID)
	}
	var c token.Claims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("verify JWT: %v", err)
	}
	return c
}

func imdsURL(query string) string {
	return "http://169.254.169.254" + IMDSTokenPath + "?" + query
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// uniqueResource returns a resource no other test asks for. MSAL Go, and
// azidentity built on it, cache managed identity tokens process-wide
// across credential instances, so tests sharing a resource would be
// served from each other's cache instead of reaching their server.
func uniqueResource(t testing.TB) string {
	return "https://" + strings.NewReplacer("/", ".", "_", "-", " ", "-").Replace(strings.ToLower(t.Name())) + ".idharness.test"
}

func newRecorderFor(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
