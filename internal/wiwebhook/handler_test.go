package wiwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

const (
	testTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient    = "11111111-1111-4111-8111-111111111111"
	testAuthority = "https://wi-authority.idharness-system.svc/"
)

var testConfig = Config{TenantID: testTenant, AuthorityHost: testAuthority}

// review is an AdmissionReview as the API server sends it for a pod
// created in namespace "apps" (the pod object itself has no namespace,
// as for pods made by controllers).
func review(op, podJSON string) string {
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
		"uid":"0d4b5a1e-8c3f-4e7a-9b2d-1f0e3c4a5b6c",
		"kind":{"group":"","version":"v1","kind":"Pod"},
		"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":"apps","operation":"` + op + `",
		"object":` + podJSON + `}}`
}

const labelled = `"labels":{"azure.workload.identity/use":"true"}`

// serviceAccounts is a fake API server holding the service accounts of
// namespace "apps".
func serviceAccounts(sas ...*corev1.ServiceAccount) ServiceAccountGetter {
	return func(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
		for _, sa := range sas {
			if ns == "apps" && sa.Name == name {
				return sa, nil
			}
		}
		return nil, nil
	}
}

func sa(name string, annotations map[string]string) *corev1.ServiceAccount {
	s := &corev1.ServiceAccount{}
	s.Name, s.Namespace, s.Annotations = name, "apps", annotations
	return s
}

// applyPatch applies the webhook's patches (whole-field "add"s under
// /spec) to a pod's JSON.
func applyPatch(t *testing.T, podJSON string, patch []byte) corev1.Pod {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(podJSON), &obj); err != nil {
		t.Fatal(err)
	}
	if len(patch) > 0 {
		var ops []PatchOp
		if err := json.Unmarshal(patch, &ops); err != nil {
			t.Fatalf("patch is not a JSON patch: %v\n%s", err, patch)
		}
		for _, op := range ops {
			field, ok := strings.CutPrefix(op.Path, "/spec/")
			if op.Op != "add" || !ok || strings.Contains(field, "/") {
				t.Fatalf("unexpected patch operation %+v", op)
			}
			spec, _ := obj["spec"].(map[string]any)
			if spec == nil {
				spec = map[string]any{}
				obj["spec"] = spec
			}
			spec[field] = op.Value
		}
	}
	b, _ := json.Marshal(obj)
	var pod corev1.Pod
	if err := json.Unmarshal(b, &pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func mounted(c corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == TokenVolume && m.MountPath == TokenMountPath && m.ReadOnly {
			return true
		}
	}
	return false
}

func tokenProjection(p corev1.Pod) *corev1.ServiceAccountTokenProjection {
	for _, v := range p.Spec.Volumes {
		if v.Name == TokenVolume && v.Projected != nil && len(v.Projected.Sources) == 1 {
			return v.Projected.Sources[0].ServiceAccountToken
		}
	}
	return nil
}

var injectedEnv = map[string]string{
	workloadidentity.EnvClientID: testClient, workloadidentity.EnvTenantID: testTenant, workloadidentity.EnvTokenFile: TokenFile, workloadidentity.EnvAuthorityHost: testAuthority,
}

func TestReview(t *testing.T) {
	app := sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient})
	tests := []struct {
		name    string
		op      string // default CREATE
		pod     string
		sas     []*corev1.ServiceAccount
		denied  string // substring of the denial; empty: allowed
		noPatch bool
		check   func(t *testing.T, p corev1.Pod)
	}{
		{
			name: "labelled pod gets variables, token volume and mounts in every container",
			pod:  `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","initContainers":[{"name":"init","image":"i"}],"containers":[{"name":"a","image":"i"},{"name":"b","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{app},
			check: func(t *testing.T, p corev1.Pod) {
				for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
					if got := env(c); len(got) != 4 || got[workloadidentity.EnvClientID] != testClient || got[workloadidentity.EnvTenantID] != testTenant || got[workloadidentity.EnvTokenFile] != TokenFile || got[workloadidentity.EnvAuthorityHost] != testAuthority {
						t.Errorf("container %s env = %v, want %v", c.Name, got, injectedEnv)
					}
					if !mounted(c) {
						t.Errorf("container %s has no read-only token mount: %+v", c.Name, c.VolumeMounts)
					}
				}
				tp := tokenProjection(p)
				if tp == nil || tp.Audience != workloadidentity.TokenAudience || tp.Path != TokenPath || tp.ExpirationSeconds == nil || *tp.ExpirationSeconds != workloadidentity.DefaultTokenExpiration {
					t.Errorf("token projection = %+v", tp)
				}
			},
		},
		{
			name:    "pod without the label is left alone",
			pod:     `{"metadata":{"name":"p"},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:     []*corev1.ServiceAccount{app},
			noPatch: true,
		},
		{
			name:    "label other than true is left alone",
			pod:     `{"metadata":{"name":"p","labels":{"azure.workload.identity/use":"false"}},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:     []*corev1.ServiceAccount{app},
			noPatch: true,
		},
		{
			name:    "update is not mutated",
			op:      "UPDATE",
			pod:     `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:     []*corev1.ServiceAccount{app},
			noPatch: true,
		},
		{
			name: "variables the container sets are kept",
			pod:  `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i","env":[{"name":"AZURE_AUTHORITY_HOST","value":"https://mine/"},{"name":"AZURE_CLIENT_ID","value":"own"}]}]}}`,
			sas:  []*corev1.ServiceAccount{app},
			check: func(t *testing.T, p corev1.Pod) {
				got := env(p.Spec.Containers[0])
				if got[workloadidentity.EnvAuthorityHost] != "https://mine/" || got[workloadidentity.EnvClientID] != "own" || got[workloadidentity.EnvTenantID] != testTenant || len(p.Spec.Containers[0].Env) != 4 {
					t.Errorf("env = %+v", p.Spec.Containers[0].Env)
				}
			},
		},
		{
			name: "skip-containers leaves the named containers alone",
			pod:  `{"metadata":{"name":"p",` + labelled + `,"annotations":{"azure.workload.identity/skip-containers":"sidecar; init"}},"spec":{"serviceAccountName":"app","initContainers":[{"name":"init","image":"i"}],"containers":[{"name":"a","image":"i"},{"name":"sidecar","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{app},
			check: func(t *testing.T, p corev1.Pod) {
				if c := p.Spec.Containers[0]; len(env(c)) != 4 || !mounted(c) {
					t.Errorf("container a not injected: %+v", c)
				}
				for _, c := range []corev1.Container{p.Spec.Containers[1], p.Spec.InitContainers[0]} {
					if len(c.Env) != 0 || len(c.VolumeMounts) != 0 {
						t.Errorf("skipped container %s was injected: %+v", c.Name, c)
					}
				}
				if tokenProjection(p) == nil {
					t.Error("no token volume")
				}
			},
		},
		{
			name: "tenant-id annotation overrides the webhook's tenant",
			pod:  `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient, workloadidentity.TenantIDAnnotation: "other-tenant"})},
			check: func(t *testing.T, p corev1.Pod) {
				if got := env(p.Spec.Containers[0])[workloadidentity.EnvTenantID]; got != "other-tenant" {
					t.Errorf("AZURE_TENANT_ID = %q", got)
				}
			},
		},
		{
			name: "service account without client-id: no AZURE_CLIENT_ID, the rest injected",
			pod:  `{"metadata":{"name":"p",` + labelled + `},"spec":{"containers":[{"name":"a","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{sa("default", nil)},
			check: func(t *testing.T, p corev1.Pod) {
				got := env(p.Spec.Containers[0])
				if _, ok := got[workloadidentity.EnvClientID]; ok || len(got) != 3 {
					t.Errorf("env = %v", got)
				}
			},
		},
		{
			name: "expiration from the service account",
			pod:  `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient, workloadidentity.TokenExpirationAnnotation: "86400"})},
			check: func(t *testing.T, p corev1.Pod) {
				if tp := tokenProjection(p); tp == nil || *tp.ExpirationSeconds != 86400 {
					t.Errorf("token projection = %+v", tp)
				}
			},
		},
		{
			name: "the pod's expiration wins over the service account's",
			pod:  `{"metadata":{"name":"p",` + labelled + `,"annotations":{"azure.workload.identity/service-account-token-expiration":"7200"}},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:  []*corev1.ServiceAccount{sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient, workloadidentity.TokenExpirationAnnotation: "86400"})},
			check: func(t *testing.T, p corev1.Pod) {
				if tp := tokenProjection(p); tp == nil || *tp.ExpirationSeconds != 7200 {
					t.Errorf("token projection = %+v", tp)
				}
			},
		},
		{
			name:   "expiration below an hour is denied",
			pod:    `{"metadata":{"name":"p",` + labelled + `,"annotations":{"azure.workload.identity/service-account-token-expiration":"3599"}},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:    []*corev1.ServiceAccount{app},
			denied: `pod annotation azure.workload.identity/service-account-token-expiration="3599": want whole seconds from 3600 to 86400`,
		},
		{
			name:   "expiration above a day on the service account is denied",
			pod:    `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:    []*corev1.ServiceAccount{sa("app", map[string]string{workloadidentity.TokenExpirationAnnotation: "86401"})},
			denied: `service account app annotation`,
		},
		{
			name:   "expiration that is not a number is denied",
			pod:    `{"metadata":{"name":"p",` + labelled + `,"annotations":{"azure.workload.identity/service-account-token-expiration":"1h"}},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`,
			sas:    []*corev1.ServiceAccount{app},
			denied: `"1h"`,
		},
		{
			name:   "missing service account is denied",
			pod:    `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"ghost","containers":[{"name":"a","image":"i"}]}}`,
			sas:    []*corev1.ServiceAccount{app},
			denied: `service account "ghost" of the pod was not found`,
		},
		{
			name: "a pod mutated before is not mutated again",
			pod: `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app",
				"containers":[{"name":"a","image":"i","env":[{"name":"AZURE_CLIENT_ID","value":"` + testClient + `"},{"name":"AZURE_TENANT_ID","value":"` + testTenant + `"},{"name":"AZURE_FEDERATED_TOKEN_FILE","value":"` + TokenFile + `"},{"name":"AZURE_AUTHORITY_HOST","value":"` + testAuthority + `"}],
				"volumeMounts":[{"name":"azure-identity-token","mountPath":"` + TokenMountPath + `","readOnly":true}]}],
				"volumes":[{"name":"azure-identity-token","projected":{"sources":[{"serviceAccountToken":{"audience":"api://AzureADTokenExchange","expirationSeconds":3600,"path":"azure-identity-token"}}]}}]}}`,
			sas:     []*corev1.ServiceAccount{app},
			noPatch: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.op
			if op == "" {
				op = "CREATE"
			}
			h := &Handler{Config: testConfig, ServiceAccounts: serviceAccounts(tt.sas...)}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, MutatePath, strings.NewReader(review(op, tt.pod))))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("not an AdmissionReview response (%v): %s", err, rec.Body)
			}
			r := out.Response
			if r.UID != "0d4b5a1e-8c3f-4e7a-9b2d-1f0e3c4a5b6c" || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Errorf("response does not echo the review: %s", rec.Body)
			}
			if tt.denied != "" {
				if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, tt.denied) || r.Result.Code != http.StatusForbidden {
					t.Fatalf("want denied with %q, got %s", tt.denied, rec.Body)
				}
				return
			}
			if !r.Allowed {
				t.Fatalf("denied: %s", rec.Body)
			}
			if tt.noPatch {
				if len(r.Patch) != 0 || r.PatchType != nil {
					t.Fatalf("want no patch, got %s", r.Patch)
				}
				return
			}
			if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("want a JSONPatch, got %s", rec.Body)
			}
			var req admissionv1.AdmissionReview
			_ = json.Unmarshal([]byte(review(op, tt.pod)), &req)
			p := applyPatch(t, string(req.Request.Object.Raw), r.Patch)
			tt.check(t, p)
			// Reinvocation on the mutated pod changes nothing.
			again, err := Mutate(&p, tt.sas[0], testConfig)
			if err != nil {
				t.Fatal(err)
			}
			if ops, _ := Patch(&p, again); len(ops) != 0 {
				t.Errorf("second mutation patches again: %+v", ops)
			}
		})
	}
}

func TestServeHTTPRejectsBadRequests(t *testing.T) {
	h := &Handler{Config: testConfig, ServiceAccounts: serviceAccounts()}
	for _, tt := range []struct {
		name, method, body string
		want               int
	}{
		{"GET", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"not JSON", http.MethodPost, "{", http.StatusBadRequest},
		{"no request", http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, MutatePath, bytes.NewBufferString(tt.body)))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func TestServiceAccountLookupUsesRequestNamespace(t *testing.T) {
	var gotNS, gotName string
	h := &Handler{Config: testConfig, ServiceAccounts: func(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
		gotNS, gotName = ns, name
		return sa(name, nil), nil
	}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, MutatePath, strings.NewReader(review("CREATE", `{"metadata":{"generateName":"web-",`+labelled+`},"spec":{"containers":[{"name":"a","image":"i"}]}}`))))
	if gotNS != "apps" || gotName != "default" {
		t.Errorf("looked up %s/%s, want apps/default", gotNS, gotName)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{testConfig, ""},
		{Config{AuthorityHost: testAuthority}, "--tenant-id"},
		{Config{TenantID: testTenant, AuthorityHost: "http://x/"}, "--authority-host"},
	} {
		err := tt.cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: err %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
