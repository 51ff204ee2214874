package wiwebhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// fakeAuthority answers token requests: a token for client "good" with
// the assertion "sa-token", Azure AD's 70021 refusal otherwise.
func fakeAuthority(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f := r.PostForm
		if r.URL.Path != "/"+testTenant+"/oauth2/v2.0/token" || f.Get("grant_type") != "client_credentials" ||
			f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || f.Get("scope") != "https://vault.azure.net/.default" {
			t.Errorf("unexpected token request %s %v", r.URL.Path, f)
		}
		if f.Get("client_id") != "good" || f.Get("client_assertion") != "sa-token" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"AADSTS70021: No matching federated identity record found for presented assertion."}`))
			return
		}
		_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.access.token"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestProxy(t *testing.T) {
	auth := fakeAuthority(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	proxy := func(clientID, file string) *Proxy {
		return &Proxy{AuthorityHost: auth.URL + "/", TenantID: testTenant, ClientID: clientID, TokenFile: file, HTTP: auth.Client(), Now: func() time.Time { return now }}
	}
	tests := []struct {
		name     string
		proxy    *Proxy
		method   string
		query    string
		metadata bool
		status   int
		inBody   string
	}{
		{"token for the service account's identity", proxy("good", tokenFile), http.MethodGet, "?api-version=2018-02-01&resource=https://vault.azure.net", true, 200, `"expires_on":"1700003599"`},
		{"client_id in the request wins", proxy("other", tokenFile), http.MethodGet, "?resource=https://vault.azure.net&client_id=good", true, 200, `"client_id":"good"`},
		{"no Metadata header", proxy("good", tokenFile), http.MethodGet, "?resource=https://vault.azure.net", false, 400, "Required metadata header not specified"},
		{"no resource", proxy("good", tokenFile), http.MethodGet, "?api-version=2018-02-01", true, 400, "Required audience parameter not specified"},
		{"object_id cannot be honoured", proxy("good", tokenFile), http.MethodGet, "?resource=https://vault.azure.net&object_id=x", true, 400, "client_id only"},
		{"POST", proxy("good", tokenFile), http.MethodPost, "?resource=https://vault.azure.net", true, 405, "only GET"},
		{"no identity at all", proxy("", tokenFile), http.MethodGet, "?resource=https://vault.azure.net", true, 400, "no client_id"},
		{"authority refusal is passed on with its code", proxy("bad", tokenFile), http.MethodGet, "?resource=https://vault.azure.net", true, 400, "AADSTS70021"},
		{"token file missing", proxy("good", filepath.Join(dir, "none")), http.MethodGet, "?resource=https://vault.azure.net", true, 500, "read the service account token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, imdsTokenPath+tt.query, nil)
			if tt.metadata {
				req.Header.Set("Metadata", "true")
			}
			rec := httptest.NewRecorder()
			tt.proxy.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.inBody) {
				t.Fatalf("got %d %s, want %d with %q", rec.Code, rec.Body, tt.status, tt.inBody)
			}
			if tt.status != 200 {
				return
			}
			// IMDS's shape: every field a JSON string.
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				if _, ok := v.(string); !ok {
					t.Errorf("field %s is %T, want a string", k, v)
				}
			}
			if m["access_token"] != "eyJ.access.token" || m["resource"] != "https://vault.azure.net" || m["expires_in"] != "3599" {
				t.Errorf("body %s", rec.Body)
			}
		})
	}
}

func hostNetwork(p *corev1.Pod) *corev1.Pod {
	p.Spec.HostNetwork = true
	return p
}

func TestMutateProxySidecar(t *testing.T) {
	sa := sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient})
	pod := func(ann map[string]string) *corev1.Pod {
		p := &corev1.Pod{}
		p.Labels = map[string]string{workloadidentity.UseLabel: "true"}
		p.Annotations = ann
		p.Spec.ServiceAccountName = "app"
		p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
		p.Spec.Containers = []corev1.Container{{Name: "app"}}
		return p
	}
	withProxy := Config{TenantID: testTenant, AuthorityHost: testAuthority, ProxyImage: "idharness.local/wiwebhook:dev", ProxyCAPEM: "PEM"}
	tests := []struct {
		name   string
		pod    *corev1.Pod
		cfg    Config
		denied string // substring of the denial; empty: admitted
		proxy  bool
	}{
		{"annotated pod gets the sidecar first", pod(map[string]string{workloadidentity.ProxyAnnotation: "true"}), withProxy, "", true},
		{"no annotation, no sidecar", pod(nil), withProxy, "", false},
		{"annotation other than true, no sidecar", pod(map[string]string{workloadidentity.ProxyAnnotation: "yes"}), withProxy, "", false},
		{"no proxy image: refused", pod(map[string]string{workloadidentity.ProxyAnnotation: "true"}), testConfig, "--proxy-image", false},
		{"host network: refused", hostNetwork(pod(map[string]string{workloadidentity.ProxyAnnotation: "true"})), withProxy, "host network", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Mutate(tt.pod, sa, tt.cfg)
			if tt.denied != "" {
				if err == nil || !strings.Contains(err.Error(), tt.denied) {
					t.Fatalf("err %v, want a denial with %q", err, tt.denied)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if has := hasContainer(got.Spec.InitContainers, ProxyContainer); has != tt.proxy {
				t.Fatalf("sidecar present %v, want %v: %+v", has, tt.proxy, got.Spec.InitContainers)
			}
			if !tt.proxy {
				return
			}
			c := got.Spec.InitContainers[0]
			if c.Name != ProxyContainer || c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways || c.StartupProbe == nil {
				t.Errorf("sidecar = %+v", c)
			}
			if e := env(c); e[workloadidentity.EnvClientID] != testClient || e[ProxyCAEnv] != "PEM" || !mounted(c) {
				t.Errorf("sidecar env %v, mounted %v", e, mounted(c))
			}
			again, err := Mutate(got, sa, tt.cfg)
			if err != nil || len(again.Spec.InitContainers) != len(got.Spec.InitContainers) {
				t.Errorf("second mutation: %v, %d init containers", err, len(again.Spec.InitContainers))
			}
		})
	}
}
