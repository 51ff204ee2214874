package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// fakeCluster has one pod per address, all in namespace ns.
type fakeCluster struct {
	pods map[string]map[string]string // IP → labels
	objs Objects
}

func (f fakeCluster) PodByIP(_ context.Context, ip string) (*corev1.Pod, error) {
	labels, ok := f.pods[ip]
	if !ok {
		return nil, nil
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod-" + ip, Labels: labels}}, nil
}

func (f fakeCluster) Objects(context.Context, string) (Objects, error) { return f.objs, nil }

func TestHandler(t *testing.T) {
	// upstream passes on the queries it gets and answers with a token.
	forwarded := make(chan string, 10)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded <- r.URL.RawQuery
		if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"t"}`)
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	h := &Handler{
		Cluster: fakeCluster{
			pods: map[string]map[string]string{
				"10.0.0.1": {podidentity.BindingLabel: "web"},
				"10.0.0.2": {podidentity.BindingLabel: "nothing"},
				"10.0.0.3": {podidentity.BindingLabel: "broken"},
				"10.0.0.4": {"app": "node-agent"},
			},
			objs: Objects{
				Identities: []Identity{{Name: "id-a", ClientID: "aaaa", ResourceID: "/r/id-a"}, {Name: "id-c", ResourceID: "/r/id-c"}},
				Bindings:   []Binding{{Name: "a", Identity: "id-a", Selector: "web"}, {Name: "c", Identity: "id-c", Selector: "broken"}},
				Exceptions: []Exception{{Name: "e", PodLabels: map[string]string{"app": "node-agent"}}},
			},
		},
		Upstream: up, Client: NewUpstreamClient(0), Retries: 1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	const q = "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	meta := map[string]string{"Metadata": "true"}
	for _, tc := range []struct {
		name, ip, method, target string
		headers                  map[string]string
		status                   int
		upstream                 string // the query upstream got, "" for none
	}{
		{"bound, no selector", "10.0.0.1", "GET", TokenPath + q, meta, 200, "api-version=2018-02-01&client_id=aaaa&resource=https%3A%2F%2Fvault.azure.net"},
		{"bound, own client_id", "10.0.0.1", "GET", TokenPath + q + "&client_id=AAAA", meta, 200, "api-version=2018-02-01&client_id=aaaa&resource=https%3A%2F%2Fvault.azure.net"},
		{"bound, other client_id", "10.0.0.1", "GET", TokenPath + q + "&client_id=bbbb", meta, 403, ""},
		{"no binding", "10.0.0.2", "GET", TokenPath + q, meta, 404, ""},
		{"unknown address", "10.9.9.9", "GET", TokenPath + q, meta, 404, ""},
		{"identity without clientID", "10.0.0.3", "GET", TokenPath + q, meta, 403, ""},
		{"exception, passed through with its selector", "10.0.0.4", "GET", TokenPath + q + "&object_id=o1", meta, 200, "api-version=2018-02-01&object_id=o1&resource=https%3A%2F%2Fvault.azure.net"},
		{"no Metadata header", "10.0.0.1", "GET", TokenPath + q, nil, 400, ""},
		{"Metadata: false", "10.0.0.1", "GET", TokenPath + q, map[string]string{"Metadata": "false"}, 400, ""},
		{"X-Forwarded-For", "10.0.0.2", "GET", TokenPath + q, map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, 400, ""},
		{"empty X-Forwarded-For", "10.0.0.1", "GET", TokenPath + q, map[string]string{"Metadata": "true", "X-Forwarded-For": ""}, 400, ""},
		{"POST", "10.0.0.1", "POST", TokenPath + q, meta, 405, ""},
		{"double slash", "10.0.0.1", "GET", "/metadata//identity/oauth2/token" + q, meta, 404, ""},
		{"encoded path", "10.0.0.1", "GET", "/metadata/identity/oauth2/%74oken" + q, meta, 404, ""},
		{"instance metadata", "10.0.0.1", "GET", "/metadata/instance?api-version=2021-02-01", meta, 404, ""},
		{"selector twice", "10.0.0.1", "GET", TokenPath + q + "&client_id=aaaa&CLIENT_ID=bbbb", meta, 400, ""},
		{"empty selector", "10.0.0.1", "GET", TokenPath + q + "&client_id=", meta, 400, ""},
		{"two selectors", "10.0.0.1", "GET", TokenPath + q + "&client_id=aaaa&object_id=o1", meta, 400, ""},
		{"semicolon in the query", "10.0.0.1", "GET", TokenPath + q + ";client_id=bbbb", meta, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.RequestURI = tc.target // as the server sets it, undecoded
			r.RemoteAddr = tc.ip + ":40000"
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, strings.TrimSpace(w.Body.String()))
			}
			// The upstream call is over once ServeHTTP returns.
			var got []string
			for len(forwarded) > 0 {
				got = append(got, <-forwarded)
			}
			switch {
			case tc.upstream == "" && len(got) > 0:
				t.Errorf("forwarded %q, want nothing forwarded", got)
			case tc.upstream != "" && (len(got) != 1 || got[0] != tc.upstream):
				t.Errorf("forwarded %q, want [%s]", got, tc.upstream)
			}
		})
	}
}

// An upstream redirect is refused, never followed nor relayed.
func TestHandlerRefusesUpstreamRedirects(t *testing.T) {
	upstream := httptest.NewServer(http.RedirectHandler("http://elsewhere.invalid/", http.StatusFound))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	h := &Handler{Cluster: fakeCluster{pods: map[string]map[string]string{"10.0.0.1": {"app": "x"}},
		objs: Objects{Exceptions: []Exception{{Name: "e", PodLabels: map[string]string{"app": "x"}}}}},
		Upstream: up, Client: NewUpstreamClient(0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := httptest.NewRequest("GET", TokenPath+"?resource=x", nil)
	r.RequestURI, r.RemoteAddr = TokenPath+"?resource=x", "10.0.0.1:1"
	r.Header.Set("Metadata", "true")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadGateway || w.Header().Get("Location") != "" {
		t.Errorf("status %d, Location %q; want 502 and no Location", w.Code, w.Header().Get("Location"))
	}
}
