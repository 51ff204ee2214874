package nodeagent

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler drives the agent with raw requests (method, request target,
// two header lines) from a pod bound to id-a only and from an unbound pod,
// against minter, an IMDS that mints a token for anything it is asked
// that is not instance metadata. The invariant: the bound pod never gets
// a token of an identity other than id-a, the unbound pod no token at all.
func FuzzHandler(f *testing.F) {
	const q = "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	b, resBq := "&client_id="+clientB, "&msi_res_id="+url.QueryEscape(resB)
	seeds := []struct {
		method, target, h1, v1, h2, v2 string
		unbound                        bool
	}{
		{"GET", "/metadata/identity/oauth2/token" + q, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata/identity/oauth2/token/" + q + b, "Metadata", "True", "", "", false},
		{"GET", "/metadata/identity/oauth2/token/x" + q + b, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token/x" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata//identity/oauth2/token" + q + b, "Metadata", "true", "", "", false},
		{"GET", "/metadata//identity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata/./identity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata/instance/../identity/oauth2/token" + q + b, "Metadata", "true", "", "", false},
		{"GET", "/metadata/instance/%2e%2e/identity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata/instance%2F..%2Fidentity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", "/metadata/%69dentity/oauth2/token" + q, "Metadata", "true", "", "", true},
		{"GET", `/metadata/instance/..\identity/oauth2/token` + q, "Metadata", "true", "", "", true},
		{"GET", "/METADATA/IDENTITY/OAUTH2/TOKEN" + q, "Metadata", "true", "", "", true},
		{"GET", "http://169.254.169.254/metadata/identity/oauth2/token" + q + b, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&client_id=&client_id=" + clientB, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&client_id=" + clientA + "&object_id=" + objB, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&msi_res_id=" + url.QueryEscape(resA) + resBq, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&client_id=" + clientA + ";client_id=" + clientB, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&CLIENT_ID=" + clientB, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q + "&principal_id=" + objB, "Metadata", "true", "", "", false},
		{"GET", "/metadata/identity/oauth2/token" + q, "Metadata", "true", "X-Forwarded-For", boundIP, true},
		{"GET", "/metadata/identity/oauth2/token" + q, "Metadata", "true", "X-Original-URL", "/metadata/identity/oauth2/token" + q + b, false},
		{"GET", "/metadata/identity/oauth2/token" + q, "Metadata", "true", "Connection", "Metadata", true},
		{"POST", "/metadata/identity/oauth2/token" + q + b, "Metadata", "true", "Content-Type", "application/x-www-form-urlencoded", false},
		{"GET", "/metadata/instance/compute?api-version=2021-02-01", "Metadata", "true", "", "", true},
		{"GET", "/metadata/versions", "Metadata", "true", "", "", true},
		{"GET", "/metadata/scheduledevents?api-version=2020-07-01", "Metadata", "true", "", "", true},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.h1, s.v1, s.h2, s.v2, s.unbound)
	}
	m := startMinter(f)
	h := newTestHandler(f, m.srv.URL, nil)
	f.Fuzz(func(t *testing.T, method, target, h1, v1, h2, v2 string, unbound bool) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: 169.254.169.254\r\n"
		for _, kv := range [][2]string{{h1, v1}, {h2, v2}} {
			if kv[0] != "" {
				raw += kv[0] + ": " + kv[1] + "\r\n"
			}
		}
		// Parsed as the agent's server parses it: what it rejects never
		// reaches the handler.
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
		if err != nil {
			return
		}
		ip := boundIP
		if unbound {
			ip = unboundIP
		}
		r.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := mintedFor(w.Body.String() + headerText(w.Header()))
		for _, id := range got {
			if unbound || id != "id-a" {
				t.Fatalf("pod %s got a token for %s (all: %v); %q → %d %s", ip, id, got, raw, w.Code, w.Body)
			}
		}
	})
}
