package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// The pods of the security tests and the fuzz target.
const (
	boundIP   = "10.0.0.10" // app/web, bound to id-a only
	unboundIP = "10.0.0.11" // app/nolabel, opted in, no binding
	plainIP   = "10.0.0.15" // plain/web, namespace not opted in
	resB      = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/idharness-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-b"
	objB      = "44444444-4444-4444-8444-444444444444"
	mintMark  = "TOKEN-FOR-"
)

// staticLookup is a Lookup without informers: fast enough to fuzz.
type staticLookup struct{}

func (staticLookup) PodByIP(ip string) (Pod, bool) {
	switch ip {
	case boundIP:
		return Pod{Namespace: "app", Name: "web", Labels: map[string]string{podidentity.BindingLabel: "web"}}, true
	case unboundIP:
		return Pod{Namespace: "app", Name: "nolabel"}, true
	case plainIP:
		return Pod{Namespace: "plain", Name: "web", Labels: map[string]string{podidentity.BindingLabel: "web"}}, true
	}
	return Pod{}, false
}

func (staticLookup) OptedIn(ns string) bool { return ns == "app" }

func (staticLookup) Identities(ns string) []Identity {
	return []Identity{
		{Namespace: ns, Name: "id-a", ClientID: clientA, ResourceID: resA},
		{Namespace: ns, Name: "id-b", ClientID: clientB, ResourceID: resB},
	}
}

func (staticLookup) Bindings(ns string) []Binding {
	return []Binding{{Namespace: ns, Name: "web-a", AzureIdentity: "id-a", Selector: "web"}}
}

func (staticLookup) Exceptions(string) []Exception { return nil }

func (l staticLookup) Live(_ context.Context, ns, name string) (Pod, []Identity, []Binding, error) {
	for _, ip := range []string{boundIP, unboundIP, plainIP} {
		if p, _ := l.PodByIP(ip); p.Namespace == ns && p.Name == name {
			return p, l.Identities(ns), l.Bindings(ns), nil
		}
	}
	return Pod{}, nil, nil, fmt.Errorf("pod %s/%s not found", ns, name)
}

// minter is a worst-case IMDS: it mints a recognisable token
// (TOKEN-FOR-<identity>;) for every selector value in the query, whatever
// the key's case or the separator, or for the node's system identity when
// there is none, on every path that is not, once decoded and cleaned, the
// instance metadata; it never checks the Metadata header or the method.
// Whatever the agent forwards beyond what it must shows up as a token.
type minter struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []*http.Request
}

func startMinter(tb testing.TB) *minter {
	tb.Helper()
	m := &minter{}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	tb.Cleanup(m.srv.Close)
	return m
}

func (m *minter) requests() []*http.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*http.Request(nil), m.got...)
}

func (m *minter) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.got = append(m.got, r.Clone(context.Background()))
	m.mu.Unlock()
	target, _, _ := strings.Cut(r.RequestURI, "?")
	p := target
	for range 4 {
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
	}
	p = path.Clean("/" + strings.ToLower(strings.ReplaceAll(p, `\`, "/")))
	w.Header().Set("Content-Type", "application/json")
	if p == "/metadata/instance" || strings.HasPrefix(p, "/metadata/instance/") || p == "/metadata/versions" {
		_, _ = w.Write([]byte(`{"compute":{"name":"vm-1"}}`))
		return
	}
	q, _ := url.ParseQuery(strings.ReplaceAll(r.URL.RawQuery, ";", "&"))
	var names []string
	for k, vs := range q {
		switch strings.ToLower(k) {
		case "client_id", "object_id", "principal_id", "msi_res_id", "mi_res_id":
			for _, v := range vs {
				names = append(names, identityOf(v))
			}
		}
	}
	if len(names) == 0 {
		names = []string{"system"}
	}
	var tok strings.Builder
	for _, n := range names {
		tok.WriteString(mintMark + n + ";")
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok.String(), "token_type": "Bearer", "resource": q.Get("resource")})
}

// identityOf names the identity a selector value picks, as IMDS would
// (case-insensitively); any other value is an identity too: the VM may
// hold it.
func identityOf(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case strings.ToLower(clientA), strings.ToLower(resA):
		return "id-a"
	case strings.ToLower(clientB), strings.ToLower(resB), objB:
		return "id-b"
	}
	return "other:" + v
}

// mintedFor returns the identities whose tokens are in s.
func mintedFor(s string) []string {
	var out []string
	for {
		i := strings.Index(s, mintMark)
		if i < 0 {
			return out
		}
		s = s[i+len(mintMark):]
		name, rest, _ := strings.Cut(s, ";")
		out = append(out, name)
		s = rest
	}
}

func newTestHandler(tb testing.TB, upstream string, mut func(*Config)) *Handler {
	tb.Helper()
	cfg := Config{Upstream: upstream, Attempts: 1, Log: slog.New(slog.DiscardHandler)}
	if mut != nil {
		mut(&cfg)
	}
	h, err := NewHandler(cfg, staticLookup{})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// agentCase is one request to the agent and what must come of it.
type agentCase struct {
	name   string
	ip     string
	method string // GET when empty
	target string
	// header is added to the request; a nil value list removes the
	// default Metadata: true.
	header http.Header
	want   int
	// wantToken is the identity whose token the answer carries ("" for
	// none); no other identity's token may be in it.
	wantToken string
	// forwarded: whether the request may reach upstream.
	forwarded bool
	// wantBody is in the body.
	wantBody string
}

func runAgentCases(t *testing.T, m *minter, h http.Handler, tests []agentCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(m.requests())
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			// RequestURI is the raw target, as a server sets it.
			r := httptest.NewRequest(method, tt.target, nil)
			r.RemoteAddr = tt.ip + ":40000"
			r.Header.Set("Metadata", "true")
			for k, vs := range tt.header {
				if vs == nil {
					delete(r.Header, k)
					continue
				}
				r.Header[k] = vs
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != tt.want {
				t.Errorf("status %d, want %d; body %s", w.Code, tt.want, body)
			}
			got := mintedFor(body + headerText(w.Header()))
			switch {
			case tt.wantToken == "" && len(got) > 0:
				t.Errorf("tokens for %v, want none", got)
			case tt.wantToken != "" && (len(got) != 1 || got[0] != tt.wantToken):
				t.Errorf("tokens for %v, want exactly %s's", got, tt.wantToken)
			}
			if n := len(m.requests()) - before; n > 0 && !tt.forwarded {
				t.Errorf("%d requests went upstream, want none", n)
			}
			if tt.wantBody != "" && !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %s lacks %q", body, tt.wantBody)
			}
		})
	}
}

func headerText(h http.Header) string {
	var b strings.Builder
	for k, vs := range h {
		b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	return b.String()
}

const tok = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"

// TestHandlerPathAllowList: only the token path (binding-checked) and the
// instance metadata paths (passed through) are served, matched on the raw
// path; anything else is answered 404 by the agent and never forwarded.
func TestHandlerPathAllowList(t *testing.T) {
	m := startMinter(t)
	h := newTestHandler(t, m.srv.URL, nil)
	const q = "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	tests := []agentCase{
		{name: "token path", ip: boundIP, target: tok, want: 200, wantToken: "id-a", forwarded: true},
		{name: "token path with a trailing slash", ip: boundIP, target: "/metadata/identity/oauth2/token/" + q + "&client_id=" + clientA, want: 200, wantToken: "id-a", forwarded: true},
		{name: "token path, another identity", ip: boundIP, target: tok + "&client_id=" + clientB, want: 403},
		{name: "subpath of the token path, another identity", ip: boundIP, target: "/metadata/identity/oauth2/token/x" + q + "&client_id=" + clientB, want: 404},
		{name: "double slash, another identity", ip: boundIP, target: "/metadata//identity/oauth2/token" + q + "&client_id=" + clientB, want: 404},
		{name: "unbound pod, subpath", ip: unboundIP, target: "/metadata/identity/oauth2/token/x" + q, want: 404},
		{name: "unbound pod, double slash", ip: unboundIP, target: "/metadata//identity/oauth2/token" + q, want: 404},
		{name: "unbound pod, two trailing slashes", ip: unboundIP, target: "/metadata/identity/oauth2/token//" + q, want: 404},
		{name: "dot segment", ip: unboundIP, target: "/metadata/./identity/oauth2/token" + q, want: 404},
		{name: "trailing dot segment", ip: unboundIP, target: "/metadata/identity/oauth2/token/." + q, want: 404},
		{name: "dot-dot out of instance", ip: unboundIP, target: "/metadata/instance/../identity/oauth2/token" + q, want: 404},
		{name: "dot-dot out of an instance subpath", ip: unboundIP, target: "/metadata/instance/compute/../../identity/oauth2/token" + q, want: 404},
		{name: "percent-encoded letter", ip: unboundIP, target: "/metadata/%69dentity/oauth2/token" + q, want: 404},
		{name: "percent-encoded slash", ip: unboundIP, target: "/metadata/identity%2Foauth2/token" + q, want: 404},
		{name: "percent-encoded slash, lower case", ip: unboundIP, target: "/metadata/instance%2f..%2fidentity/oauth2/token" + q, want: 404},
		{name: "percent-encoded dots", ip: unboundIP, target: "/metadata/instance/%2e%2e/identity/oauth2/token" + q, want: 404},
		{name: "backslash", ip: unboundIP, target: `/metadata/instance/..\identity/oauth2/token` + q, want: 404},
		{name: "other case", ip: unboundIP, target: "/Metadata/Identity/OAuth2/Token" + q, want: 404},
		{name: "matrix parameter", ip: unboundIP, target: "/metadata/identity/oauth2/token;x" + q, want: 404},
		{name: "identity tree root", ip: unboundIP, target: "/metadata/identity" + q, want: 404},
		{name: "identity info", ip: unboundIP, target: "/metadata/identity/info" + q, want: 404},
		{name: "scheduled events", ip: unboundIP, target: "/metadata/scheduledevents?api-version=2020-07-01", want: 404},
		{name: "attested document", ip: unboundIP, target: "/metadata/attested/document?api-version=2020-09-01", want: 404},
		{name: "root", ip: unboundIP, target: "/", want: 404},
		{name: "absolute form", ip: unboundIP, target: "http://169.254.169.254/metadata/identity/oauth2/token" + q, want: 404},
		{name: "namespace not opted in: still only the allow-list", ip: plainIP, target: "/metadata/identity/oauth2/token/x" + q, want: 404},
		{name: "instance metadata", ip: unboundIP, target: "/metadata/instance?api-version=2021-02-01", want: 200, forwarded: true, wantBody: "compute"},
		{name: "instance subpath", ip: boundIP, target: "/metadata/instance/compute/name?api-version=2021-02-01&format=text", want: 200, forwarded: true},
		{name: "instance subpath, trailing slash", ip: boundIP, target: "/metadata/instance/compute/?api-version=2021-02-01", want: 200, forwarded: true},
		{name: "instance, double slash", ip: boundIP, target: "/metadata/instance//compute?api-version=2021-02-01", want: 404},
		{name: "versions", ip: unboundIP, target: "/metadata/versions", want: 200, forwarded: true},
		{name: "health", ip: "10.9.9.9", target: "/healthz", want: 200, wantBody: "ok"},
	}
	runAgentCases(t, m, h, tests)
}

// TestHandlerMethodsAndMetadataHeader: GET only; the Metadata header's
// value is compared case-insensitively, as IMDS does.
func TestHandlerMethodsAndMetadataHeader(t *testing.T) {
	m := startMinter(t)
	h := newTestHandler(t, m.srv.URL, nil)
	tests := []agentCase{
		{name: "POST to the token path", ip: boundIP, method: http.MethodPost, target: tok, want: 405},
		{name: "PUT to the token path", ip: unboundIP, method: http.MethodPut, target: tok, want: 405},
		{name: "HEAD to the token path", ip: boundIP, method: http.MethodHead, target: tok, want: 405},
		{name: "DELETE to the token path, not opted in", ip: plainIP, method: http.MethodDelete, target: tok, want: 405},
		{name: "POST to instance metadata", ip: boundIP, method: http.MethodPost, target: "/metadata/instance?api-version=2021-02-01", want: 405},
		{name: "Metadata: True", ip: boundIP, target: tok, header: http.Header{"Metadata": {"True"}}, want: 200, wantToken: "id-a", forwarded: true},
		{name: "Metadata: TRUE", ip: boundIP, target: tok, header: http.Header{"Metadata": {"TRUE"}}, want: 200, wantToken: "id-a", forwarded: true},
		{name: "Metadata: false", ip: boundIP, target: tok, header: http.Header{"Metadata": {"false"}}, want: 400},
		{name: "Metadata empty", ip: boundIP, target: tok, header: http.Header{"Metadata": {""}}, want: 400},
		{name: "Metadata true and false", ip: boundIP, target: tok, header: http.Header{"Metadata": {"false", "true"}}, want: 400},
		{name: "no Metadata", ip: boundIP, target: tok, header: http.Header{"Metadata": nil}, want: 400},
	}
	runAgentCases(t, m, h, tests)
	r := httptest.NewRequest(http.MethodPost, tok, nil)
	r.RemoteAddr = boundIP + ":40000"
	r.Header.Set("Metadata", "true")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("Allow"); got != http.MethodGet {
		t.Errorf("405 with Allow %q, want GET", got)
	}
}

// TestHandlerHeaderSmuggling: proxy headers are refused by the agent; the
// upstream request is built from scratch; ambiguous selectors are refused.
func TestHandlerHeaderSmuggling(t *testing.T) {
	m := startMinter(t)
	h := newTestHandler(t, m.srv.URL, nil)
	tests := []agentCase{
		{name: "X-Forwarded-For with the bound pod's address", ip: unboundIP, target: tok, header: http.Header{"X-Forwarded-For": {boundIP}}, want: 400, wantBody: "node agent"},
		{name: "X-Forwarded-For empty", ip: boundIP, target: tok, header: http.Header{"X-Forwarded-For": {""}}, want: 400, wantBody: "node agent"},
		{name: "X-Forwarded-For on several lines", ip: boundIP, target: tok, header: http.Header{"X-Forwarded-For": {boundIP, "10.1.1.1"}}, want: 400},
		{name: "x-forwarded-for, not canonical", ip: boundIP, target: tok, header: http.Header{"x-forwarded-for": {boundIP}}, want: 400},
		{name: "X-FORWARDED-FOR", ip: boundIP, target: tok, header: http.Header{"X-FORWARDED-FOR": {boundIP}}, want: 400},
		{name: "X-Forwarded-For on instance metadata", ip: boundIP, target: "/metadata/instance?api-version=2021-02-01", header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}, want: 400},
		{name: "X-Forwarded-For, not opted in", ip: plainIP, target: tok, header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}, want: 400},
		{name: "Forwarded", ip: boundIP, target: tok, header: http.Header{"Forwarded": {"for=" + boundIP}}, want: 400},
		{name: "X-Forwarded-Host", ip: boundIP, target: tok, header: http.Header{"X-Forwarded-Host": {"169.254.169.254"}}, want: 400},
		{name: "X-Original-URL", ip: boundIP, target: tok, header: http.Header{"X-Original-Url": {"/metadata/identity/oauth2/token?client_id=" + clientB}}, want: 400},
		{name: "X-Rewrite-URL", ip: boundIP, target: tok, header: http.Header{"X-Rewrite-Url": {"/metadata/identity/oauth2/token?client_id=" + clientB}}, want: 400},
		{name: "empty then another client_id", ip: boundIP, target: tok + "&client_id=&client_id=" + clientB, want: 400},
		{name: "client_id twice, same value", ip: boundIP, target: tok + "&client_id=" + clientA + "&client_id=" + clientA, want: 400},
		{name: "client_id in two cases", ip: boundIP, target: tok + "&client_id=" + clientA + "&CLIENT_ID=" + clientB, want: 400},
		{name: "CLIENT_ID is client_id", ip: boundIP, target: tok + "&CLIENT_ID=" + clientB, want: 403},
		{name: "client_id and object_id", ip: boundIP, target: tok + "&client_id=" + clientA + "&object_id=" + objB, want: 400},
		{name: "msi_res_id twice", ip: boundIP, target: tok + "&msi_res_id=" + url.QueryEscape(resA) + "&msi_res_id=" + url.QueryEscape(resB), want: 400},
		{name: "msi_res_id and mi_res_id", ip: boundIP, target: tok + "&msi_res_id=" + url.QueryEscape(resA) + "&mi_res_id=" + url.QueryEscape(resB), want: 400},
		{name: "empty client_id", ip: boundIP, target: tok + "&client_id=", want: 400},
		{name: "empty msi_res_id", ip: unboundIP, target: tok + "&msi_res_id=", want: 400},
		{name: "empty object_id", ip: boundIP, target: tok + "&object_id", want: 400},
		{name: "semicolon separator", ip: boundIP, target: tok + "&client_id=" + clientA + ";client_id=" + clientB, want: 400},
		{name: "resource twice", ip: boundIP, target: tok + "&resource=https%3A%2F%2Fstorage.azure.com", want: 400},
		{name: "conflicting selectors, not opted in", ip: plainIP, target: tok + "&client_id=" + clientA + "&object_id=" + objB, want: 400},
		{name: "unknown parameter is not forwarded", ip: boundIP, target: tok + "&principal_id=" + objB, want: 200, wantToken: "id-a", forwarded: true},
	}
	runAgentCases(t, m, h, tests)

	// What the pod sends never reaches upstream; hop-by-hop headers
	// included.
	for _, target := range []string{tok, "/metadata/instance?api-version=2021-02-01"} {
		before := len(m.requests())
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.RemoteAddr = boundIP + ":40000"
		r.Host = "evil.example"
		for k, v := range map[string]string{
			"Metadata": "True", "User-Agent": "probe/1 idharness-probe/raw", "Connection": "keep-alive, X-Smuggled",
			"X-Smuggled": "1", "Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic eDp4", "Proxy-Connection": "keep-alive",
			"Te": "trailers", "Trailer": "X-T", "Upgrade": "h2c", "Authorization": "Bearer x", "Cookie": "a=b",
			"X-Ms-Client-Request-Id": "42", "X-Http-Method-Override": "POST",
		} {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: status %d: %s", target, w.Code, w.Body)
		}
		reqs := m.requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("%s: %d requests upstream, want 1", target, len(reqs))
		}
		up := reqs[0]
		for k := range up.Header {
			switch k {
			case "Metadata", "User-Agent", "Accept-Encoding": // Accept-Encoding: Go's transport
			case "Connection":
				// The agent's own "close" (it keeps no upstream connection
				// alive), never the pod's header.
				if v := up.Header.Values(k); len(v) != 1 || v[0] != "close" {
					t.Errorf("%s: Connection %q reached upstream, want the agent's close", target, v)
				}
			default:
				t.Errorf("%s: header %s reached upstream", target, k)
			}
		}
		if got := up.Header.Values("Metadata"); len(got) != 1 || got[0] != "true" {
			t.Errorf("%s: Metadata %q upstream, want true", target, got)
		}
		if !strings.Contains(up.Header.Get("User-Agent"), "idharness-probe/raw") {
			t.Errorf("%s: User-Agent %q upstream lacks the pod's (the harness attributes requests by it)", target, up.Header.Get("User-Agent"))
		}
		if up.Host != strings.TrimPrefix(m.srv.URL, "http://") {
			t.Errorf("%s: Host %q upstream, want the upstream's", target, up.Host)
		}
		if up.Method != http.MethodGet {
			t.Errorf("%s: %s upstream, want GET", target, up.Method)
		}
	}
}

// TestHandlerNeverFollowsRedirects: a redirect from upstream (to another
// identity's token here) is refused, never followed, whatever client the
// handler is given.
func TestHandlerNeverFollowsRedirects(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.String())
		mu.Unlock()
		if r.URL.Query().Get("client_id") == clientB {
			_, _ = w.Write([]byte(`{"access_token":"` + mintMark + `id-b;"}`))
			return
		}
		http.Redirect(w, r, srv.URL+"/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id="+clientB, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name   string
		client *http.Client
		ip     string
		target string
	}{
		{"default client, token", nil, boundIP, tok},
		{"a client that follows redirects, token", &http.Client{}, boundIP, tok},
		{"default client, instance metadata", nil, boundIP, "/metadata/instance?api-version=2021-02-01"},
		{"default client, not opted in", nil, plainIP, tok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			h := newTestHandler(t, srv.URL, func(c *Config) { c.Client = tc.client })
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			r.RemoteAddr = tc.ip + ":40000"
			r.Header.Set("Metadata", "true")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := mintedFor(w.Body.String() + headerText(w.Header())); len(got) > 0 {
				t.Errorf("tokens for %v", got)
			}
			if w.Code < 400 {
				t.Errorf("status %d, want a refusal", w.Code)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(asked) != 1 {
				t.Errorf("upstream asked %d times (%v), want once: the redirect was followed", len(asked), asked)
			}
		})
	}
}

// TestHandlerUpstreamTimeout: the agent never waits on upstream longer
// than its timeout, whatever client it is given.
func TestHandlerUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"default client", nil},
		{"a client without a timeout", &http.Client{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler(t, srv.URL, func(c *Config) { c.Client, c.UpstreamTimeout = tc.client, 200*time.Millisecond })
			r := httptest.NewRequest(http.MethodGet, tok, nil)
			r.RemoteAddr = boundIP + ":40000"
			r.Header.Set("Metadata", "true")
			w := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { h.ServeHTTP(w, r); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("no answer after 10 s: no upstream timeout")
			}
			if w.Code < 400 {
				t.Errorf("status %d, want a refusal", w.Code)
			}
		})
	}
	if h := newTestHandler(t, srv.URL, nil); h.cfg.Client.Timeout <= 0 {
		t.Error("default upstream client has no timeout")
	}
}

// revocation is a change in the API server that takes app/web's grant of
// id-a away; gone reports whether informers have seen it.
type revocation struct {
	name   string
	revoke func(ctx context.Context, t *testing.T, kc *kubefake.Clientset, dc *dynamicfake.FakeDynamicClient)
	gone   func(inf *Informers) bool
}

// revocations are the ways app/web loses id-a: its binding deleted, the
// identity deleted, the pod relabelled.
func revocations() []revocation {
	return []revocation{
		{"binding deleted", func(ctx context.Context, t *testing.T, _ *kubefake.Clientset, dc *dynamicfake.FakeDynamicClient) {
			if err := dc.Resource(podidentity.AzureIdentityBindingGVR).Namespace("app").Delete(ctx, "web-a", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(inf *Informers) bool { return len(inf.Bindings("app")) == 0 }},
		{"identity deleted", func(ctx context.Context, t *testing.T, _ *kubefake.Clientset, dc *dynamicfake.FakeDynamicClient) {
			if err := dc.Resource(podidentity.AzureIdentityGVR).Namespace("app").Delete(ctx, "id-a", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(inf *Informers) bool { return len(inf.Identities("app")) == 1 }},
		{"pod relabelled", func(ctx context.Context, t *testing.T, kc *kubefake.Clientset, _ *dynamicfake.FakeDynamicClient) {
			p, err := kc.CoreV1().Pods("app").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Labels[podidentity.BindingLabel] = "nothing"
			if _, err := kc.CoreV1().Pods("app").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(inf *Informers) bool {
			p, _ := inf.PodByIP("10.244.1.10")
			return p.Labels[podidentity.BindingLabel] == "nothing"
		}},
	}
}

// agentRig is the agent over fake API clients (cluster()) and a fake
// upstream, with app/web (10.244.1.10) bound to id-a.
type agentRig struct {
	up  *upstream
	kc  *kubefake.Clientset
	dc  *dynamicfake.FakeDynamicClient
	inf *Informers
	h   *Handler
	// stopInformers stops the informers, as a partition leaves them.
	stopInformers context.CancelFunc
}

func newAgentRig(t *testing.T) *agentRig {
	t.Helper()
	rig := &agentRig{up: startUpstream(t)}
	kube, dynObjs := cluster()
	rig.kc = kubefake.NewClientset(kube...)
	rig.dc = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rig.stopInformers = cancel
	inf, err := StartInformers(ctx, rig.kc, rig.dc, node, labels.Everything(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rig.inf = inf
	if rig.h, err = NewHandler(Config{Upstream: rig.up.url, Attempts: 1, Log: slog.New(slog.DiscardHandler)}, inf); err != nil {
		t.Fatal(err)
	}
	return rig
}

// ask sends app/web's token request for the vault to the agent.
func (rig *agentRig) ask() *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", nil)
	r.RemoteAddr = "10.244.1.10:40000"
	r.Header.Set("Metadata", "true")
	w := httptest.NewRecorder()
	rig.h.ServeHTTP(w, r)
	return w
}

// TestHandlerBindingRevoked: once the informer's store no longer has the
// binding (or the identity, or the pod's label), the next request gets no
// token: nothing is cached between requests.
func TestHandlerBindingRevoked(t *testing.T) {
	for _, tc := range revocations() {
		t.Run(tc.name, func(t *testing.T) {
			rig := newAgentRig(t)
			if w := rig.ask(); w.Code != 200 || !strings.Contains(w.Body.String(), clientA) {
				t.Fatalf("before: status %d, want 200 with %s's token: %s", w.Code, clientA, w.Body)
			}
			tc.revoke(context.Background(), t, rig.kc, rig.dc)
			deadline := time.Now().Add(10 * time.Second)
			for !tc.gone(rig.inf) {
				if time.Now().After(deadline) {
					t.Fatal("the informers never saw the change")
				}
				time.Sleep(5 * time.Millisecond)
			}
			before := len(rig.up.requests())
			if w := rig.ask(); w.Code == 200 || strings.Contains(w.Body.String(), "access_token") {
				t.Errorf("after: status %d, want a refusal: %s", w.Code, w.Body)
			}
			if n := len(rig.up.requests()) - before; n != 0 {
				t.Errorf("%d requests upstream after the revocation", n)
			}
		})
	}
}

// TestHandlerFailsClosedOnStaleInformers: the informers stop seeing the
// API server (stopped here, as a partition or a relisting watch leaves
// them) and the pod's grant is then revoked there, or the API server
// cannot be read at all. The agent must not hand out the token its stale
// stores still allow: it refuses (the live read shows the revocation) or
// answers 503 (no live read), and never asks upstream.
func TestHandlerFailsClosedOnStaleInformers(t *testing.T) {
	type staleCase struct {
		name   string
		change func(ctx context.Context, t *testing.T, kc *kubefake.Clientset, dc *dynamicfake.FakeDynamicClient)
		want   int
	}
	var cases []staleCase
	for _, r := range revocations() {
		cases = append(cases, staleCase{r.name, r.revoke, http.StatusNotFound})
	}
	cases = append(cases, staleCase{"API server out of reach", func(_ context.Context, _ *testing.T, kc *kubefake.Clientset, _ *dynamicfake.FakeDynamicClient) {
		kc.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("dial tcp 10.96.0.1:443: i/o timeout")
		})
	}, http.StatusServiceUnavailable})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig := newAgentRig(t)
			if w := rig.ask(); w.Code != 200 || !strings.Contains(w.Body.String(), clientA) {
				t.Fatalf("before: status %d, want 200 with %s's token: %s", w.Code, clientA, w.Body)
			}
			rig.stopInformers()
			tc.change(context.Background(), t, rig.kc, rig.dc)
			// The stores still grant the pod id-a: what a stale agent serves.
			time.Sleep(50 * time.Millisecond)
			p, _ := rig.inf.PodByIP("10.244.1.10")
			if d := Decide(p, rig.inf.Identities("app"), rig.inf.Bindings("app"), Selector{}); d.Verdict != Token {
				t.Fatalf("the stopped informers saw the change (%v): the test proves nothing", d)
			}
			before := len(rig.up.requests())
			w := rig.ask()
			if w.Code != tc.want || strings.Contains(w.Body.String(), "access_token") {
				t.Errorf("after: status %d, want %d and no token: %s", w.Code, tc.want, w.Body)
			}
			if n := len(rig.up.requests()) - before; n != 0 {
				t.Errorf("%d requests upstream after the change", n)
			}
		})
	}
}

// lateLookup is staticLookup whose pods show up only after a while, as a
// pod's IP does when the kubelet writes it to the API server late.
type lateLookup struct {
	staticLookup
	from time.Time
}

func (l lateLookup) PodByIP(ip string) (Pod, bool) {
	if time.Now().Before(l.from) {
		return Pod{}, false
	}
	return l.staticLookup.PodByIP(ip)
}

// TestHandlerWaitsForThePod: a request from a pod the agent does not know
// yet is held up to PodWait, not Attempts × Interval, and served once the
// pod shows up; past PodWait it is refused.
func TestHandlerWaitsForThePod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		podWait time.Duration
		want    int
	}{
		{"pod shows up within the wait", 3 * time.Second, http.StatusOK},
		{"pod shows up after it", 500 * time.Millisecond, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t)
			h, err := NewHandler(Config{Upstream: up.url, Attempts: 1, Interval: 100 * time.Millisecond, PodWait: tc.podWait, Log: slog.New(slog.DiscardHandler)},
				lateLookup{from: time.Now().Add(time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", nil)
			r.RemoteAddr = boundIP + ":40000"
			r.Header.Set("Metadata", "true")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
}
