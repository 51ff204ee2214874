package registry

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestParseRepository(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "localhost:5001/idharness", want: "localhost:5001/idharness"},
		{in: "localhost:5001", want: "localhost:5001"},
		{in: "localhost:5001/", want: "localhost:5001"},
		{in: "idh-registry:5000/a/b", want: "idh-registry:5000/a/b"},
		{in: "registry.example.com/team", want: "registry.example.com/team"},
		{in: "", err: "empty"},
		{in: "idharness/images", err: "not a registry host"},
		{in: "localhost:5001/IDHarness", err: "registry host and an optional path"},
		{in: "localhost:5001/idharness:dev", err: "registry host and an optional path"},
		{in: "localhost:5001/idharness@sha256:" + strings.Repeat("a", 64), err: "a digest is not a repository"},
		{in: "local host:5001/x", err: "registry host and an optional path"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRepository(tc.in, false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRepository(%q) = %v, %v; want error with %q", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("ParseRepository(%q) = %q, %v; want %q", tc.in, r, err, tc.want)
			}
		})
	}
}

func TestTarget(t *testing.T) {
	repo, err := ParseRepository("localhost:5001/idharness", false)
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := ParseRepository("localhost:5001", false)
	for _, tc := range []struct {
		repo        Repository
		local, want string
	}{
		{repo, "idharness.local/fakeimds:dev", "localhost:5001/idharness/fakeimds:dev"},
		{repo, "idharness.local/client-python:dev", "localhost:5001/idharness/client-python:dev"},
		{repo, "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17", "localhost:5001/idharness/oss/azure/aad-pod-identity/nmi:v1.8.17"},
		{repo, "busybox:1.36", "localhost:5001/idharness/busybox:1.36"},
		{bare, "idharness.local/probe:dev", "localhost:5001/probe:dev"},
	} {
		got, err := Target(tc.repo, tc.local)
		if err != nil || got.String() != tc.want {
			t.Errorf("Target(%s, %s) = %s, %v; want %s", tc.repo, tc.local, got, err, tc.want)
		}
	}
	if _, err := Target(repo, "Not A Ref"); err == nil {
		t.Error("Target accepted an invalid local reference")
	}
}

// serve starts a registry (Handler, blobs in dir or memory) wrapped in wrap.
func serve(t *testing.T, dir string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h, err := Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func randomImages(t *testing.T, n int) []Source {
	t.Helper()
	var out []Source
	for i := 0; i < n; i++ {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Source{Local: "idharness.local/prog" + string(rune('a'+i)) + ":dev", Image: img})
	}
	return out
}

func TestPushByDigest(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		host := serve(t, dir, nil)
		srcs := randomImages(t, 3)
		got, err := Push(context.Background(), host+"/idharness", srcs, Options{Keychain: authn.NewMultiKeychain()})
		if err != nil {
			t.Fatalf("push (blobs in %q): %v", dir, err)
		}
		if len(got) != len(srcs) {
			t.Fatalf("pushed %d images, want %d", len(got), len(srcs))
		}
		for i, p := range got {
			d, _ := srcs[i].Image.Digest()
			id, _ := srcs[i].Image.ConfigName()
			if want := host + "/idharness/prog" + string(rune('a'+i)) + "@" + d.String(); p.Ref != want {
				t.Errorf("ref %s, want %s", p.Ref, want)
			}
			if p.ID != id.String() || p.Local != srcs[i].Local {
				t.Errorf("pushed %+v: want ID %s, local %s", p, id, srcs[i].Local)
			}
			// The registry serves exactly these bytes under the digest,
			// and the tag points to them.
			for _, r := range []string{p.Ref, p.Tag} {
				ref, err := name.ParseReference(r)
				if err != nil {
					t.Fatal(err)
				}
				img, err := remote.Image(ref)
				if err != nil {
					t.Fatalf("pull %s: %v", r, err)
				}
				if gd, _ := img.Digest(); gd != d {
					t.Errorf("pull %s: digest %s, want %s", r, gd, d)
				}
			}
		}
	}
}

// The error paths: each input makes Push fail, and the message says what
// failed and what to do.
func TestPushErrors(t *testing.T) {
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	silent := func() string {
		// Accepts connections and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return ln.Addr().String()
	}
	basicAuth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="idharness"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	onlyTeam := func(next http.Handler) http.Handler {
		// As registries that know their projects: another path is unknown.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/" && !strings.HasPrefix(r.URL.Path, "/v2/team/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}}})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	untrusted := "localhost:" + tlsSrv.URL[strings.LastIndex(tlsSrv.URL, ":")+1:]

	for _, tc := range []struct {
		name, repo string
		opts       Options
		want       []string
	}{
		{"wrong name", "localhost:5001/Team", Options{}, []string{"registry host and an optional path"}},
		{"not a host", "team/idharness", Options{}, []string{"not a registry host"}},
		{"unreachable", closedPort() + "/idharness", Options{}, []string{"unreachable", "idharness registry start"}},
		{"unknown host", "no-such-registry.invalid:5000/idharness", Options{Insecure: true}, []string{"unreachable", "unknown here"}},
		{"no answer", silent() + "/idharness", Options{CheckTimeout: 300 * time.Millisecond}, []string{"unreachable", "no answer in 300ms"}},
		{"auth", serve(t, "", basicAuth) + "/idharness", Options{Keychain: authn.NewMultiKeychain()}, []string{"refused", "HTTP 401", "docker login"}},
		{"wrong credentials", serve(t, "", basicAuth) + "/idharness", Options{Keychain: staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "wrong"})}}, []string{"refused", "docker login"}},
		{"repository unknown to the registry", serve(t, "", onlyTeam) + "/other", Options{Keychain: authn.NewMultiKeychain()}, []string{"does not accept the repository", "check the path"}},
		{"untrusted certificate", untrusted + "/idharness", Options{Keychain: authn.NewMultiKeychain()}, []string{"certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Push(context.Background(), tc.repo, randomImages(t, 1), tc.opts)
			if err == nil {
				t.Fatalf("Push to %s succeeded", tc.repo)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			t.Log(err)
		})
	}

	// Two local images that would land on one name are refused before
	// anything is sent.
	two := randomImages(t, 2)
	two[0].Local, two[1].Local = "a.example.com/agent:v1", "b.example.com/agent:v1"
	if _, err := Push(context.Background(), serve(t, "", nil)+"/idharness", two, Options{Keychain: authn.NewMultiKeychain()}); err == nil || !strings.Contains(err.Error(), "would both be pushed as") {
		t.Errorf("colliding images: %v", err)
	}

	// The same registries take the push when the input is right.
	for _, tc := range []struct {
		name, repo string
		kc         authn.Keychain
	}{
		{"auth", serve(t, "", basicAuth) + "/idharness", staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "secret"})}},
		{"repository known", serve(t, "", onlyTeam) + "/team", authn.NewMultiKeychain()},
	} {
		if _, err := Push(context.Background(), tc.repo, randomImages(t, 1), Options{Keychain: tc.kc}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// staticKeychain gives one authenticator for every registry.
type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }
