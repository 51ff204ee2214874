package fakeimds

// Tests for the findings of the security review: each pins the fix of
// one finding.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/journal"
)

// rawGET sends target exactly as written in the request line, so that no
// client library cleans or re-escapes the path, and returns the response.
func rawGET(t *testing.T, addr, target string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestIMDSTokenPathVariants checks that only the token path itself and
// its trailing-slash form hand out tokens: real IMDS answers 404 to any
// other spelling, and a fake that is laxer hides client bugs.
func TestIMDSTokenPathVariants(t *testing.T) {
	s := newServer(t, nil)
	a := running(t, s)
	const q = "?api-version=2018-02-01&resource=https://vault.azure.net"
	cases := []struct {
		name   string
		target string
		status int
	}{
		{"exact", IMDSTokenPath + q, 200},
		{"trailing slash (JS SDK)", IMDSTokenPath + "/" + q, 200},
		{"sub-path", IMDSTokenPath + "/x" + q, 404},
		{"deeper sub-path", IMDSTokenPath + "/x/y" + q, 404},
		{"double trailing slash", IMDSTokenPath + "//" + q, 404},
		{"trailing dot segment", IMDSTokenPath + "/." + q, 404},
		{"double slash inside", "/metadata//identity/oauth2/token" + q, 404},
		{"double slash leading", "//metadata/identity/oauth2/token" + q, 404},
		{"dot segment", "/metadata/identity/./oauth2/token" + q, 404},
		{"dot-dot segment", "/metadata/identity/oauth2/../oauth2/token" + q, 404},
		{"encoded slash", "/metadata/identity/oauth2%2Ftoken" + q, 404},
		{"encoded slashes throughout", "/metadata%2Fidentity%2Foauth2%2Ftoken" + q, 404},
		{"encoded trailing slash", IMDSTokenPath + "%2F" + q, 404},
		{"encoded letter", "/metadata/identity/oauth2/%74oken" + q, 404},
		{"encoded sub-path", IMDSTokenPath + "/%2E" + q, 404},
		{"upper-case segment", "/metadata/identity/oauth2/TOKEN" + q, 404},
		{"capitalised prefix", "/Metadata/identity/oauth2/token" + q, 404},
		// The instance face keeps its subtree, as real IMDS serves it.
		{"instance subtree", InstancePath + "/compute/location?api-version=2021-02-01&format=text", 200},
		{"instance double slash", "/metadata//instance/compute?api-version=2021-02-01", 404},
		// The App Service face answers its own spelling only too.
		{"app service", "/msi/token?api-version=2019-08-01&resource=r", 200},
		{"app service encoded letter", "/msi/%74oken?api-version=2019-08-01&resource=r", 404},
		{"app service double slash", "/msi//token?api-version=2019-08-01&resource=r", 404},
		{"app service sub-path", "/msi/token/x?api-version=2019-08-01&resource=r", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawGET(t, a.IMDS, tc.target, "Metadata: true", "X-IDENTITY-HEADER: idharness-identity-header")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (Location %q), want %d: %.200s", resp.StatusCode, resp.Header.Get("Location"), tc.status, body)
			}
			if tc.status == 200 {
				return
			}
			if strings.Contains(string(body), "access_token") {
				t.Fatalf("a token for %s: %s", tc.target, body)
			}
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil || (e["error"] != "Not found" && e["message"] != "Not found.") {
				t.Errorf("body %s, want a JSON \"Not found\"", body)
			}
		})
	}
}

// TestArcTokenPathVariants checks the same of the Arc listener, which has
// no mux: every path used to be its token endpoint. 401 is its challenge,
// the answer of the token endpoint to a first request.
func TestArcTokenPathVariants(t *testing.T) {
	on := true
	s := newServer(t, func(c *config.Config) { c.Faces.Arc.Enabled = &on; c.Faces.Arc.SecretDir = t.TempDir() })
	defer s.arc.cleanup()
	const q = "?api-version=2020-06-01&resource=r"
	cases := []struct {
		name   string
		target string
		status int
	}{
		{"exact", IMDSTokenPath + q, 401},
		{"trailing slash", IMDSTokenPath + "/" + q, 401},
		{"root", "/" + q, 404},
		{"other path", "/metadata/instance" + q, 404},
		{"sub-path", IMDSTokenPath + "/x" + q, 404},
		{"double slash", "/metadata//identity/oauth2/token" + q, 404},
		{"dot segment", "/metadata/identity/./oauth2/token" + q, 404},
		{"encoded slash", "/metadata/identity/oauth2%2Ftoken" + q, 404},
		{"encoded letter", "/metadata/identity/oauth2/%74oken" + q, 404},
		{"upper case", "/metadata/identity/oauth2/Token" + q, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			req.Header.Set("Metadata", "true")
			w := newRecorderFor(s.ArcHandler(), req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %.200s", w.Code, tc.status, w.Body)
			}
			if tc.status == 404 && w.Header().Get("WWW-Authenticate") != "" {
				t.Error("a challenge file was written for a path that is not the endpoint")
			}
		})
	}
}

// stubListener hands out the connections the test gives it. afterAccept,
// when set, runs between taking a connection and returning it: a Close
// racing with an Accept that the kernel has already completed.
type stubListener struct {
	conns       chan net.Conn
	closed      chan struct{}
	once        sync.Once
	afterAccept func()
}

func newStubListener() *stubListener {
	return &stubListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *stubListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		if l.afterAccept != nil {
			l.afterAccept()
		}
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *stubListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *stubListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// closedSoon reports whether c's peer closes it within two seconds.
func closedSoon(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

// TestFaultListenerCloseWhileHolding shuts listeners down while a
// blackhole holds connections: the server crashed with "assignment to
// entry in nil map" when a connection was held after Close.
func TestFaultListenerCloseWhileHolding(t *testing.T) {
	const hole = `{"name":"hole","action":{"type":"blackhole","max":"5s"}}`
	cases := []struct {
		name string
		run  func(t *testing.T, s *Server)
	}{
		{"held connection closed at Close", func(t *testing.T, s *Server) {
			ln := newStubListener()
			fl := newFaultListener(s, ln, []string{FaceIMDS}, false)
			accepted := make(chan error, 1)
			go func() { _, err := fl.Accept(); accepted <- err }()
			srv, cli := net.Pipe()
			defer cli.Close()
			ln.conns <- srv
			waitFor(t, "the connection to be held", func() bool {
				fl.mu.Lock()
				defer fl.mu.Unlock()
				return len(fl.held) == 1
			})
			if err := fl.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-accepted; err == nil {
				t.Error("Accept returned a connection after Close")
			}
			if !closedSoon(cli) {
				t.Error("the held connection stayed open after Close")
			}
		}},
		{"connection accepted as Close runs", func(t *testing.T, s *Server) {
			ln := newStubListener()
			fl := newFaultListener(s, ln, []string{FaceIMDS}, false)
			ln.afterAccept = func() { _ = fl.Close() }
			accepted := make(chan error, 1)
			go func() { _, err := fl.Accept(); accepted <- err }()
			srv, cli := net.Pipe()
			defer cli.Close()
			ln.conns <- srv
			if err := <-accepted; err == nil {
				t.Error("Accept returned a connection after Close")
			}
			if !closedSoon(cli) {
				t.Error("a connection accepted during Close stayed open")
			}
		}},
		{"server shut down with held and kicked connections", func(t *testing.T, s *Server) {
			if !s.Chaos().Remove("hole") {
				t.Fatal("no rule to remove")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addrs := make(chan Addrs, 1)
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, func(a Addrs) { addrs <- a }) }()
			a := <-addrs
			// A keep-alive connection from before the blackhole, and one
			// accepted during it.
			pooled, err := net.Dial("tcp", a.IMDS)
			if err != nil {
				t.Fatal(err)
			}
			defer pooled.Close()
			_, _ = io.WriteString(pooled, "GET "+IMDSTokenPath+"?api-version=2018-02-01&resource=r HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n")
			if _, err := http.ReadResponse(bufio.NewReader(pooled), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Chaos().Add(rule(t, hole)); err != nil {
				t.Fatal(err)
			}
			held, err := net.Dial("tcp", a.IMDS)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			waitFor(t, "the connection to be blackholed", func() bool {
				for _, e := range s.Journal().Since(0) {
					if strings.HasPrefix(e.Error, "blackholed") {
						return true
					}
				}
				return false
			})
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return 15 s after shutdown began")
			}
			if !closedSoon(held) {
				t.Error("the held connection stayed open after shutdown")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, nil)
			if err := s.Chaos().Add(rule(t, hole)); err != nil {
				t.Fatal(err)
			}
			tc.run(t, s)
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHugeResourcesStayBounded sends many requests with 100 KiB resources:
// they must be refused, the token cache must not grow, and no journal
// entry may keep more than a few KiB of them.
func TestHugeResourcesStayBounded(t *testing.T) {
	on := true
	s := newServer(t, func(c *config.Config) {
		c.Faces.Arc.Enabled = &on
		c.Faces.Arc.SecretDir = t.TempDir()
	})
	const n = 20
	huge := func(i, size int) string {
		r := "https://" + strconv.Itoa(i) + ".example/"
		return r + strings.Repeat("a", size-len(r))
	}
	imds := func(res string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, "http://169.254.169.254"+IMDSTokenPath+"?api-version=2018-02-01&resource="+url.QueryEscape(res), nil)
		req.Header.Set("Metadata", "true")
		req.Header.Set("User-Agent", strings.Repeat("u", 100<<10))
		return req
	}
	cases := []struct {
		name    string
		h       http.Handler
		size    int
		req     func(res string) *http.Request
		status  int
		inBody  string
		growsBy int // tokens the cache may gain
	}{
		{name: "imds", h: s.IMDSHandler(), size: 100 << 10, req: imds, status: 400, inBody: `"invalid_request"`},
		{name: "imds one byte over", h: s.IMDSHandler(), size: maxResourceBytes + 1, req: imds, status: 400, inBody: `"invalid_request"`},
		{name: "imds at the bound", h: s.IMDSHandler(), size: maxResourceBytes, req: imds, status: 200, growsBy: n},
		{name: "appservice", h: s.IMDSHandler(), size: 100 << 10, status: 400, inBody: "resource", req: func(res string) *http.Request {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/msi/token?api-version=2019-08-01&resource="+url.QueryEscape(res), nil)
			req.Header.Set("X-IDENTITY-HEADER", "idharness-identity-header")
			return req
		}},
		{name: "arc", h: s.ArcHandler(), size: 100 << 10, status: 400, inBody: `"invalid_request"`, req: func(res string) *http.Request {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:40342"+IMDSTokenPath+"?api-version=2020-06-01&resource="+url.QueryEscape(res), nil)
			req.Header.Set("Metadata", "true")
			return req
		}},
		{name: "authority", h: s.IMDSHandler(), size: 16 << 10, status: 400, inBody: `"invalid_scope"`, req: func(res string) *http.Request {
			form := tokenForm("x.y.z")
			form.Set("scope", res+"/.default")
			req := httptest.NewRequest(http.MethodPost, "https://login.microsoftonline.com/"+testTenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Minter().CacheLen()
			after := s.Journal().Since(0)
			var seq uint64
			if len(after) > 0 {
				seq = after[len(after)-1].Seq
			}
			for i := range n {
				w := newRecorderFor(tc.h, tc.req(huge(i, tc.size)))
				if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.inBody) {
					t.Fatalf("status %d, want %d with %s: %.300s", w.Code, tc.status, tc.inBody, w.Body)
				}
			}
			if got := s.Minter().CacheLen() - before; got > tc.growsBy {
				t.Errorf("token cache grew by %d, want at most %d", got, tc.growsBy)
			}
			entries := s.Journal().Since(seq)
			if len(entries) != n {
				t.Fatalf("%d journal entries, want %d", len(entries), n)
			}
			for _, e := range entries {
				b, _ := json.Marshal(e)
				if len(b) > 4*journal.MaxFieldBytes {
					t.Fatalf("a journal entry takes %d bytes of JSON, want at most %d", len(b), 4*journal.MaxFieldBytes)
				}
				if len(e.Query) > journal.MaxFieldBytes || len(e.Resource) > journal.MaxFieldBytes {
					t.Fatalf("journal kept a %d-byte query and a %d-byte resource", len(e.Query), len(e.Resource))
				}
			}
		})
	}
}

// TestForwardedForRefused checks that a request carrying X-Forwarded-For
// is refused whatever its values: an empty header line before or after
// a real one must not slip through.
func TestForwardedForRefused(t *testing.T) {
	s := newServer(t, nil)
	faces := []struct {
		name, target, inBody string
	}{
		{"token", IMDSTokenPath + "?api-version=2018-02-01&resource=https://vault.azure.net", `"invalid_request"`},
		{"instance", InstancePath + "?api-version=2021-02-01", "X-Forwarded-For"},
		{"versions", VersionsPath, "X-Forwarded-For"},
	}
	cases := []struct {
		name   string
		values []string // nil: no header at all
		status int
	}{
		{"no header", nil, 200},
		{"one address", []string{"10.1.2.3"}, 400},
		{"empty value alone", []string{""}, 400},
		{"empty line, then an address", []string{"", "10.1.2.3"}, 400},
		{"address, then an empty line", []string{"10.1.2.3", ""}, 400},
		{"two empty lines", []string{"", ""}, 400},
	}
	for _, f := range faces {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, "http://169.254.169.254"+f.target, nil)
				req.Header.Set("Metadata", "true")
				if tc.values != nil {
					req.Header["X-Forwarded-For"] = tc.values
				}
				w := newRecorderFor(s.IMDSHandler(), req)
				if w.Code != tc.status {
					t.Fatalf("status %d, want %d: %.200s", w.Code, tc.status, w.Body)
				}
				if tc.status != 200 && !strings.Contains(w.Body.String(), f.inBody) {
					t.Errorf("body %s, want it to contain %s", w.Body, f.inBody)
				}
			})
		}
	}
	// Over the wire too: net/http must hand the handler an empty header line.
	a := running(t, s)
	for _, order := range [][]string{{"X-Forwarded-For:", "X-Forwarded-For: 10.1.2.3"}, {"X-Forwarded-For: 10.1.2.3", "X-Forwarded-For:"}} {
		resp, body := rawGET(t, a.IMDS, faces[0].target, append([]string{"Metadata: true"}, order...)...)
		if resp.StatusCode != 400 {
			t.Errorf("raw %q: status %d, want 400: %s", order, resp.StatusCode, body)
		}
	}
}

// TestRepeatedSelectorRefused checks that a request naming its identity
// more than once is refused rather than served for one of the names.
func TestRepeatedSelectorRefused(t *testing.T) {
	s := newServer(t, nil)
	rid := url.QueryEscape(testConfig().UserAssignedResourceID("id-b"))
	faces := []struct {
		name, base string
		hdr        map[string]string
		errField   string
	}{
		{"imds", IMDSTokenPath + "?api-version=2018-02-01&resource=r", meta, "error_description"},
		{"appservice", "/msi/token?api-version=2019-08-01&resource=r", map[string]string{"X-IDENTITY-HEADER": "idharness-identity-header"}, "message"},
	}
	cases := []struct {
		name, query string
		status      int
		names       string // the parameter the error must name
		client      string // want this identity on success
	}{
		{"one client_id", "&client_id=" + ubClient, 200, "", ubClient},
		{"one empty client_id means none", "&client_id=", 200, "", sysClient},
		{"empty then real client_id", "&client_id=&client_id=" + ubClient, 400, "client_id", ""},
		{"real then empty client_id", "&client_id=" + ubClient + "&client_id=", 400, "client_id", ""},
		{"two client_ids", "&client_id=" + uaClient + "&client_id=" + ubClient, 400, "client_id", ""},
		{"the same client_id twice", "&client_id=" + ubClient + "&client_id=" + ubClient, 400, "client_id", ""},
		{"two object_ids", "&object_id=" + uaObject + "&object_id=" + ubObject, 400, "object_id", ""},
		{"two mi_res_ids", "&mi_res_id=" + rid + "&mi_res_id=" + rid, 400, "mi_res_id", ""},
		{"empty client_id beside object_id", "&client_id=&object_id=" + ubObject, 400, "client_id", ""},
		{"client_id beside empty mi_res_id", "&client_id=" + ubClient + "&mi_res_id=", 400, "mi_res_id", ""},
	}
	for _, f := range faces {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				w := do(s.IMDSHandler(), http.MethodGet, "http://169.254.169.254"+f.base+tc.query, f.hdr)
				if w.Code != tc.status {
					t.Fatalf("status %d, want %d: %.200s", w.Code, tc.status, w.Body)
				}
				body := decodeObject(t, w.Body)
				if tc.status == 200 {
					if body["client_id"] != tc.client {
						t.Errorf("client_id %v, want %s", body["client_id"], tc.client)
					}
					return
				}
				if msg, _ := body[f.errField].(string); !strings.Contains(msg, tc.names) {
					t.Errorf("%s %q does not name %s", f.errField, msg, tc.names)
				}
				if _, leaked := body["access_token"]; leaked {
					t.Error("error response carries an access_token")
				}
			})
		}
	}
}

// TestAPIVersionExact checks that only published api-versions are
// accepted: a well-formed but unknown version, or a known one with
// anything after it, is refused as real IMDS refuses it.
func TestAPIVersionExact(t *testing.T) {
	on := true
	s := newServer(t, func(c *config.Config) {
		c.Faces.Arc.Enabled = &on
		c.Faces.Arc.SecretDir = t.TempDir()
	})
	faces := []struct {
		name string
		h    http.Handler
		path string
		ok   int // the status once the version passes
	}{
		{"token", s.IMDSHandler(), IMDSTokenPath + "?resource=r&api-version=", 200},
		{"instance", s.IMDSHandler(), InstancePath + "?api-version=", 200},
		// Arc then challenges: 401 means the version passed.
		{"arc", s.ArcHandler(), IMDSTokenPath + "?resource=r&api-version=", 401},
	}
	cases := []struct {
		version string
		ok      bool
	}{
		{"2021-02-01", true},
		{"2020-06-01", true},
		{"2018-02-01-previewX", false},
		{"2020-06-01-preview", false},
		{"2020-06-01x", false},
		{"2019-01-01", false}, // well-formed, never published
		{"2020-02-30", false},
		{"2020-6-01", false},
		{"2020-06-01%20", false},
		{"latest", false},
		{"", false},
	}
	for _, f := range faces {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.version, func(t *testing.T) {
				w := do(f.h, http.MethodGet, "http://169.254.169.254"+f.path+tc.version, meta)
				want := 400
				if tc.ok {
					want = f.ok
				}
				if w.Code != want {
					t.Fatalf("status %d, want %d: %.200s", w.Code, want, w.Body)
				}
			})
		}
	}
}

// TestAuthorityFormLimitWithFaultRule checks that the 64 KiB bound on a
// token request's body holds when fault rules are loaded: the rule
// matcher reads the form before the authority does.
func TestAuthorityFormLimitWithFaultRule(t *testing.T) {
	iss, _ := newTestIssuer(t, false)
	cases := []struct {
		name   string
		rule   string
		pad    int
		status int
	}{
		{"small form, no rule", "", 0, 200},
		{"small form, rule on another face", `{"name":"r","match":{"faces":["imds"]},"action":{"type":"latency","delay":"1ms"}}`, 0, 200},
		{"1 MiB form, no rule", "", 1 << 20, 400},
		{"1 MiB form, rule on another face", `{"name":"r","match":{"faces":["imds"]},"action":{"type":"latency","delay":"1ms"}}`, 1 << 20, 400},
		{"1 MiB form, rule on the authority", `{"name":"r","match":{"faces":["authority"]},"action":{"type":"latency","delay":"1ms"}}`, 1 << 20, 400},
		{"just over 64 KiB, rule on the authority", `{"name":"r","match":{"faces":["authority"]},"action":{"type":"latency","delay":"1ms"}}`, maxFormBytes, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, withFederation(iss.url))
			if tc.rule != "" {
				if err := s.Chaos().Add(rule(t, tc.rule)); err != nil {
					t.Fatal(err)
				}
			}
			form := tokenForm(iss.sign(t, assertion{}))
			if tc.pad > 0 {
				form.Set("pad", strings.Repeat("p", tc.pad))
			}
			w := postToken(s.IMDSHandler(), testTenant, form)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %.300s", w.Code, tc.status, w.Body)
			}
		})
	}
}

// TestArcChallengeFileLifetime checks that challenge secrets do not
// outlive their use: stale files of a killed predecessor go at start, a
// file goes once answered or expired, and nothing but the server's own
// files is touched.
func TestArcChallengeFileLifetime(t *testing.T) {
	on := true
	old := time.Now().Add(-time.Hour)
	type file struct {
		name  string
		old   bool
		stays bool
	}
	start := func(t *testing.T, dir string, files []file) *Server {
		for _, f := range files {
			p := filepath.Join(dir, f.name)
			if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if f.old {
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
		}
		return newServer(t, func(c *config.Config) { c.Faces.Arc.Enabled = &on; c.Faces.Arc.SecretDir = dir })
	}
	challenge := func(t *testing.T, s *Server) (path, secret string) {
		w := do(s.ArcHandler(), http.MethodGet, "http://127.0.0.1:40342"+IMDSTokenPath+"?api-version=2020-06-01&resource=r", meta)
		path = strings.TrimPrefix(w.Header().Get("WWW-Authenticate"), "Basic realm=")
		if w.Code != 401 || path == "" {
			t.Fatalf("challenge: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, string(b)
	}
	answer := func(s *Server, secret string) int {
		return do(s.ArcHandler(), http.MethodGet, "http://127.0.0.1:40342"+IMDSTokenPath+"?api-version=2020-06-01&resource=r",
			map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}).Code
	}
	gone := func(p string) bool { _, err := os.Stat(p); return os.IsNotExist(err) }
	cases := []struct {
		name  string
		files []file
		run   func(t *testing.T, s *Server, dir string)
	}{
		{name: "stale files of a predecessor removed at start, others kept", files: []file{
			{name: arcFilePrefix + "0123456789abcdef.key", old: true},
			{name: arcFilePrefix + "fedcba9876543210.key", old: true},
			// A fresh one may belong to another server sharing the directory.
			{name: arcFilePrefix + "00112233445566aa.key", stays: true},
			{name: "0123456789abcdef.key", old: true, stays: true},
			{name: "8b1f4c1e-2d3a-4b5c-9d6e-7f8091a2b3c4.key", old: true, stays: true},
			{name: arcFilePrefix + "0123456789abcdef.key.bak", old: true, stays: true},
			{name: "notes.txt", old: true, stays: true},
		}},
		{name: "file removed once answered, secret good for a retry", run: func(t *testing.T, s *Server, _ string) {
			p, secret := challenge(t, s)
			if !strings.HasPrefix(filepath.Base(p), arcFilePrefix) {
				t.Errorf("challenge file %s lacks the prefix %q that start-up cleaning relies on", p, arcFilePrefix)
			}
			if code := answer(s, secret); code != 200 {
				t.Fatalf("answer: %d", code)
			}
			if !gone(p) {
				t.Error("challenge file kept after its secret was used")
			}
			if code := answer(s, secret); code != 200 {
				t.Errorf("retry with the same secret: %d, want 200", code)
			}
		}},
		{name: "unanswered file removed when it expires", run: func(t *testing.T, s *Server, _ string) {
			s.arc.ttl = 50 * time.Millisecond
			p, secret := challenge(t, s)
			waitFor(t, "the challenge file to expire", func() bool { return gone(p) })
			if code := answer(s, secret); code != 401 {
				t.Errorf("answer after expiry: %d, want 401", code)
			}
		}},
		{name: "a new challenge sweeps expired files", run: func(t *testing.T, s *Server, dir string) {
			p := filepath.Join(dir, arcFilePrefix+"aaaaaaaaaaaaaaaa.key")
			if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			challenge(t, s)
			if !gone(p) {
				t.Error("an expired file of a predecessor outlived a new challenge")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, dir, tc.files)
			for _, f := range tc.files {
				if got := !gone(filepath.Join(dir, f.name)); got != f.stays {
					t.Errorf("%s exists = %v after start, want %v", f.name, got, f.stays)
				}
			}
			if tc.run != nil {
				tc.run(t, s, dir)
			}
			s.arc.cleanup()
		})
	}
}
