package fakeimds

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/config"
)

const testControlToken = "0123456789abcdef0123456789abcdef"

func TestControlGuard(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(testControlToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := newServer(t, nil)
	guarded := newServer(t, func(c *config.Config) { c.Listen.ControlTokenFile = tokFile })
	cases := []struct {
		name        string
		srv         *Server
		method      string
		path        string
		host        string
		token       string
		contentType string
		body        string
		want        int
	}{
		{"no token: loopback address", open, "GET", api.PathJournal, "127.0.0.1:8079", "", "", "", 200},
		{"no token: localhost", open, "GET", api.PathJournal, "localhost:8079", "", "", "", 200},
		{"no token: IPv6 loopback", open, "GET", api.PathJournal, "[::1]:8079", "", "", "", 200},
		{"no token: DNS name (rebinding)", open, "GET", api.PathJournal, "evil.example.com:8079", "", "", "", 403},
		{"no token: DNS name without port", open, "DELETE", api.PathJournal, "attacker.test", "", "", "", 403},
		{"token: missing", guarded, "GET", api.PathConfig, "10.0.0.5:8079", "", "", "", 401},
		{"token: wrong", guarded, "DELETE", api.PathJournal, "10.0.0.5:8079", strings.Repeat("x", len(testControlToken)), "", "", 401},
		{"token: prefix only", guarded, "GET", api.PathConfig, "10.0.0.5:8079", testControlToken[:8], "", "", 401},
		{"token: right", guarded, "GET", api.PathConfig, "10.0.0.5:8079", testControlToken, "", "", 200},
		{"token: right, DNS Host (API server proxy)", guarded, "GET", api.PathConfig, "apiserver.example:443", testControlToken, "", "", 200},
		{"token: readiness check needs none", guarded, "GET", api.PathHealth, "10.0.0.5:8079", "", "", "", 200},
		{"token: metrics need it", guarded, "GET", api.PathMetrics, "10.0.0.5:8079", "", "", "", 401},
		{"form body refused", open, "POST", api.PathFaults, "127.0.0.1", "", "application/x-www-form-urlencoded", `a=b`, 415},
		{"text body refused", open, "POST", api.PathFaults, "127.0.0.1", "", "text/plain", `[]`, 415},
		{"no content type refused", open, "PUT", api.PathThrottle, "127.0.0.1", "", "", `{}`, 415},
		{"JSON body accepted", guarded, "POST", api.PathReset, "10.0.0.5", testControlToken, "application/json; charset=utf-8", `{}`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://x"+tc.path, strings.NewReader(tc.body))
			req.Host = tc.host
			if tc.body == "" {
				req.ContentLength = 0
			}
			if tc.token != "" {
				req.Header.Set(api.HeaderControlToken, tc.token)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			tc.srv.ControlHandler().ServeHTTP(rec, req)
			if tc.want == 0 {
				if rec.Code == 401 || rec.Code == 403 || rec.Code == 415 {
					t.Fatalf("status %d, want it let through: %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

func TestControlTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	for name, path := range map[string]string{"missing": filepath.Join(dir, "none"), "too short": short} {
		t.Run(name, func(t *testing.T) {
			c := testConfig()
			c.Faces.Authority.TLSDir = t.TempDir()
			c.Listen.ControlTokenFile = path
			if _, err := New(c, WithSigningKey(sharedKey(t))); err == nil || !strings.Contains(err.Error(), "controlTokenFile") {
				t.Fatalf("New: %v, want an error naming listen.controlTokenFile", err)
			}
		})
	}
}

// TestServicesListenerServesNoMetadata checks the split of faces: with
// listen.services, the App Service and authority faces leave the IMDS
// listener, and the services listener hands out no metadata token.
func TestServicesListenerServesNoMetadata(t *testing.T) {
	s := newServer(t, func(c *config.Config) { c.Listen.Services = "127.0.0.1:0" })
	get := func(h http.Handler, target string, hdr map[string]string) int {
		req := httptest.NewRequest("GET", target, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	imdsToken := "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
	meta := map[string]string{"Metadata": "true"}
	app := s.Config().Faces.AppService
	appReq := app.Path + "?api-version=2019-08-01&resource=https://vault.azure.net"
	appHdr := map[string]string{"X-IDENTITY-HEADER": app.Secret}
	if c := get(s.IMDSHandler(), imdsToken, meta); c != 200 {
		t.Errorf("IMDS listener, token path: %d, want 200", c)
	}
	if c := get(s.ServicesHandler(), imdsToken, meta); c != 404 {
		t.Errorf("services listener, IMDS token path: %d, want 404", c)
	}
	if c := get(s.ServicesHandler(), appReq, appHdr); c != 200 {
		t.Errorf("services listener, App Service: %d, want 200", c)
	}
	if c := get(s.IMDSHandler(), appReq, appHdr); c != 404 {
		t.Errorf("IMDS listener, App Service with listen.services set: %d, want 404", c)
	}
	// Without listen.services one listener serves every face, as before.
	one := newServer(t, nil)
	if c := get(one.IMDSHandler(), appReq, appHdr); c != 200 {
		t.Errorf("single listener, App Service: %d, want 200", c)
	}
}

// TestListenersBoundHeaders checks M5: every listener refuses a header
// block over maxHeaderBytes instead of reading and journaling it.
func TestListenersBoundHeaders(t *testing.T) {
	s := newServer(t, func(c *config.Config) { c.Listen.Services = "127.0.0.1:0" })
	a := running(t, s)
	for name, addr := range map[string]string{"imds": a.IMDS, "services": a.Services, "control": a.Control} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+addr+"/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r", nil)
			req.Header.Set("Metadata", "true")
			req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("a %d KiB header: HTTP %d, want 431", 2*maxHeaderBytes>>10, resp.StatusCode)
			}
		})
	}
}
