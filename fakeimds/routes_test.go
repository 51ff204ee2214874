package fakeimds

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/routes"
)

// TestRouteTableIsWhatTheServerServes keeps fakeimds/routes, which the
// fault engine lints rules against, true to the server: every route is
// answered by its face with each of its methods and refused with others,
// and the server routes case-sensitively (the canonical path matching of
// fault rules relies on it). A route added to the mux but not the table,
// or the other way round, fails here.
func TestRouteTableIsWhatTheServerServes(t *testing.T) {
	on := true
	s := newServer(t, func(c *config.Config) { c.Faces.Arc.Enabled = &on; c.Faces.Arc.SecretDir = t.TempDir() })
	cfg := s.Config()
	table := routes.Table(cfg.Faces.AppService.Path, cfg.Faces.Arc.Path)
	// The last journal entry says which face answered; a mux refusal
	// (405 before any face) is not journaled at all.
	answer := func(h http.Handler, method, path string) (face string, status int) {
		before := len(s.Journal().Since(0))
		w := do(h, method, "http://127.0.0.1"+path, meta)
		if e := s.Journal().Since(0); len(e) > before {
			face = e[len(e)-1].Face
		}
		return face, w.Code
	}
	for _, rt := range table {
		h := s.IMDSHandler()
		if rt.Face == routes.FaceArc {
			h = s.ArcHandler()
		}
		p := strings.ReplaceAll(rt.Path, "{tenant}", testTenant)
		concrete := []string{p}
		if rt.Subtree {
			concrete = append(concrete, p+"/compute/name")
		}
		for _, path := range concrete {
			if !rt.Serves(path) {
				t.Errorf("route %s does not serve its own path %s", rt.Path, path)
			}
			for _, m := range rt.Methods {
				if face, code := answer(h, m, path); face != rt.Face || code == 404 || code == 405 {
					t.Errorf("%s %s: answered by %q with %d, want face %s serving it", m, path, face, code, rt.Face)
				}
			}
			for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE"} {
				if containsString(rt.Methods, m) {
					continue
				}
				// The faces answer a wrong method with 405, the mux sends
				// it to the catch-all 404, and Azure AD answers one on
				// its token endpoint with 400.
				if _, code := answer(h, m, path); code != 405 && code != 404 && (code != 400 || rt.Path != routes.AuthorityToken) {
					t.Errorf("%s %s: %d, want a refusal: the table says the method is not served", m, path, code)
				}
			}
		}
		// Case is not folded: the last segment in upper case is a 404.
		i := strings.LastIndexByte(p, '/')
		upper := p[:i] + strings.ToUpper(p[i:])
		if _, code := answer(h, rt.Methods[0], upper); code != 404 {
			t.Errorf("%s %s: %d, want 404: fakeimds must route case-sensitively, as rule paths match", rt.Methods[0], upper, code)
		}
		if rt.Serves(upper) {
			t.Errorf("route %s serves %s in the table", rt.Path, upper)
		}
	}
	// A path in no route is a 404 on both listeners.
	for _, h := range []http.Handler{s.IMDSHandler(), s.ArcHandler()} {
		if _, code := answer(h, "GET", "/metadata/identity/token"); code != 404 {
			t.Errorf("GET /metadata/identity/token: %d, want 404", code)
		}
	}
}

// TestRouteTableConstants: the paths the server mounts that are not
// defined from the table (IMDSTokenPath, the configuration's defaults)
// and the face names must be the table's.
func TestRouteTableConstants(t *testing.T) {
	def := config.Default()
	for _, c := range []struct{ got, want string }{
		{IMDSTokenPath, routes.IMDSToken},
		{def.Faces.AppService.Path, routes.AppServiceToken},
		{def.Faces.Arc.Path, routes.ArcToken},
		{FaceIMDS, routes.FaceIMDS},
		{FaceInstance, routes.FaceInstance},
		{FaceAppService, routes.FaceAppService},
		{FaceArc, routes.FaceArc},
		{FaceAuthority, routes.FaceAuthority},
	} {
		if c.got != c.want {
			t.Errorf("fakeimds has %q where fakeimds/routes has %q", c.got, c.want)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestControlAPILogsLintWarnings: a rule that can never hit is added (a
// warning is not an error) and the log says why, with the server's own
// App Service path counted as served.
func TestControlAPILogsLintWarnings(t *testing.T) {
	var log bytes.Buffer
	s := newServer(t, func(c *config.Config) { c.Faces.AppService.Path = "/custom/msi" },
		WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	for _, tc := range []struct{ rule, warn string }{
		{`{"name":"typo","match":{"path":"/metadata/identity/token"},"action":{"type":"reset"}}`, `no face serves \"/metadata/identity/token\"`},
		{`{"name":"custom","match":{"faces":["appservice"],"path":"/custom/msi"},"action":{"type":"reset"}}`, ""},
	} {
		log.Reset()
		req := httptest.NewRequest("POST", api.PathFaults, strings.NewReader(tc.rule))
		req.Host = "127.0.0.1" // the control API refuses DNS names
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ControlHandler().ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			t.Fatalf("%s: %d %s", tc.rule, w.Code, w.Body)
		}
		got := log.String()
		if tc.warn == "" && strings.Contains(got, "level=WARN") || tc.warn != "" && !strings.Contains(got, tc.warn) {
			t.Errorf("%s: log %q, want warning %q", tc.rule, got, tc.warn)
		}
	}
}
