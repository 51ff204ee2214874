package nodeagent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/pkg/api/podidentity"
)

const (
	clientA = fakeimdstest.UserAClientID
	clientB = fakeimdstest.UserBClientID
	resA    = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/idharness-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a"
	node    = "node-1"
)

// upstream is a real fakeimds on loopback that records the identities
// asked for, so tests can tell that a refused identity was never fetched.
type upstream struct {
	url  string
	mu   sync.Mutex
	asks []url.Values
}

func (u *upstream) requests() []url.Values {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]url.Values(nil), u.asks...)
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	// The host's id-a and id-b; id-a's resource ID is resA.
	s := fakeimdstest.New(t, nil)
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.asks = append(u.asks, r.URL.Query())
		u.mu.Unlock()
		s.IMDSHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

var listKinds = map[schema.GroupVersionResource]string{
	podidentity.AzureIdentityGVR:             "AzureIdentityList",
	podidentity.AzureIdentityBindingGVR:      "AzureIdentityBindingList",
	podidentity.AzurePodIdentityExceptionGVR: "AzurePodIdentityExceptionList",
}

func pod(ns, name, ip string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
}

func namespace(name string, optIn bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if optIn {
		ns.Labels = map[string]string{"idharness.io/pod-identity": "true"}
	}
	return ns
}

// cluster is the fake cluster every handler test starts from.
func cluster() ([]runtime.Object, []runtime.Object) {
	kube := []runtime.Object{
		namespace("app", true), namespace("other", true), namespace("plain", false),
		pod("app", "web", "10.244.1.10", map[string]string{podidentity.BindingLabel: "web"}),
		pod("app", "nolabel", "10.244.1.11", nil),
		pod("app", "api", "10.244.1.12", map[string]string{podidentity.BindingLabel: "api"}),
		pod("app", "dns", "10.244.1.13", map[string]string{"app": "dns"}),
		pod("other", "web", "10.244.1.14", map[string]string{podidentity.BindingLabel: "web"}),
		pod("plain", "web", "10.244.1.15", map[string]string{podidentity.BindingLabel: "web"}),
		pod("app", "late", "10.244.1.16", map[string]string{podidentity.BindingLabel: "late"}),
		// A finished pod whose IP now belongs to web: never matched.
		func() *corev1.Pod {
			p := pod("app", "done", "10.244.1.10", nil)
			p.Status.Phase = corev1.PodSucceeded
			return p
		}(),
	}
	dyn := []runtime.Object{
		podidentity.Object(podidentity.KindAzureIdentity, "app", "id-a", map[string]any{"type": int64(0), "clientID": clientA, "resourceID": resA}),
		podidentity.Object(podidentity.KindAzureIdentity, "app", "id-b", map[string]any{"type": int64(0), "clientID": clientB}),
		podidentity.Object(podidentity.KindAzureIdentityBinding, "app", "web-a", map[string]any{"azureIdentity": "id-a", "selector": "web"}),
		podidentity.Object(podidentity.KindAzureIdentity, "other", "id-b", map[string]any{"type": int64(0), "clientID": clientB}),
		podidentity.Object(podidentity.KindAzurePodIdentityException, "app", "dns", map[string]any{"podLabels": map[string]any{"app": "dns"}}),
	}
	return kube, dyn
}

// startCluster starts informers on cluster()'s objects, in fake clients
// the test may change, until the test ends.
func startCluster(t *testing.T, optIn labels.Selector) (context.Context, *kubefake.Clientset, *dynamicfake.FakeDynamicClient, *Informers) {
	t.Helper()
	kube, dynObjs := cluster()
	kc := kubefake.NewClientset(kube...)
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf, err := StartInformers(ctx, kc, dc, node, optIn, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, kc, dc, inf
}

func TestHandler(t *testing.T) {
	up := startUpstream(t)
	_, _, _, inf := startCluster(t, labels.SelectorFromSet(labels.Set{"idharness.io/pod-identity": "true"}))
	const attempts, interval = 3, 20 * time.Millisecond
	handler := func(mut func(*Config)) *Handler {
		cfg := Config{Upstream: up.url, Attempts: attempts, Interval: interval, Log: slog.New(slog.DiscardHandler)}
		if mut != nil {
			mut(&cfg)
		}
		h, err := NewHandler(cfg, inf)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	const token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	tests := []struct {
		name       string
		ip, target string
		noMetadata bool
		cfg        func(*Config)
		wantStatus int
		// wantClient is the client_id of the token's identity ("system":
		// the host's system-assigned identity).
		wantClient string
		// wantBody is in the body.
		wantBody string
		// wantHeader is "Name: value" on the response.
		wantHeader string
		// neverAsked is a client_id upstream must not see.
		neverAsked string
		// minTime is how long the refusal must take (the retries).
		minTime time.Duration
		// upstreamAnswers: an error status comes from upstream, not the agent.
		upstreamAnswers bool
	}{
		{name: "bound pod, default identity", ip: "10.244.1.10", target: token, wantStatus: 200, wantClient: clientA},
		{name: "bound pod by client_id", ip: "10.244.1.10", target: token + "&client_id=" + clientA, wantStatus: 200, wantClient: clientA},
		{name: "bound pod by msi_res_id", ip: "10.244.1.10", target: token + "&msi_res_id=" + url.QueryEscape(resA), wantStatus: 200, wantClient: clientA},
		{name: "bound pod asking for another identity", ip: "10.244.1.10", target: token + "&client_id=" + clientB, wantStatus: 403, wantBody: "not bound", neverAsked: clientB},
		{name: "unbound pod", ip: "10.244.1.11", target: token, wantStatus: 404, wantBody: "no AzureIdentityBinding", minTime: (attempts - 1) * interval},
		{name: "unbound pod, 503 and Retry-After", ip: "10.244.1.11", target: token, cfg: func(c *Config) { c.RetryAfter = 2 * time.Second }, wantStatus: 503, wantHeader: "Retry-After: 2"},
		{name: "selector without a binding", ip: "10.244.1.12", target: token + "&client_id=" + clientB, wantStatus: 404, neverAsked: clientB},
		{name: "binding in another namespace does not apply", ip: "10.244.1.14", target: token, wantStatus: 404, neverAsked: clientA},
		{name: "no Metadata header", ip: "10.244.1.10", target: token + "&client_id=" + clientA, noMetadata: true, wantStatus: 400, wantBody: "Required metadata header not specified"},
		{name: "unknown source IP", ip: "10.244.9.9", target: token, wantStatus: 404, wantBody: "no pod with IP"},
		{name: "exception: node identity", ip: "10.244.1.13", target: token, wantStatus: 200, wantClient: "system"},
		{name: "namespace not opted in: passed through", ip: "10.244.1.15", target: token, wantStatus: 200, wantClient: "system"},
		{name: "no Metadata header, namespace not opted in: IMDS's answer", ip: "10.244.1.15", target: token, noMetadata: true, wantStatus: 400, wantBody: "bad_request_102"},
		{name: "no Metadata header, unknown pod: answered at once", ip: "10.244.9.9", target: token, noMetadata: true, wantStatus: 400, wantBody: "bad_request_102"},
		{name: "passed through unchanged: IMDS's own checks apply", ip: "10.244.1.15", target: token + "&client_id=99999999-9999-4999-8999-999999999999", wantStatus: 400, wantBody: "Identity not found", upstreamAnswers: true},
		{name: "instance metadata passed through", ip: "10.244.1.10", target: "/metadata/instance?api-version=2021-02-01", wantStatus: 200, wantBody: "compute"},
		{name: "instance metadata blocked", ip: "10.244.1.10", target: "/metadata/instance?api-version=2021-02-01", cfg: func(c *Config) { c.BlockInstanceMetadata = true }, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.RemoteAddr = tt.ip + ":40000"
			if !tt.noMetadata {
				r.Header.Set("Metadata", "true")
			}
			w := httptest.NewRecorder()
			start := time.Now()
			handler(tt.cfg).ServeHTTP(w, r)
			took := time.Since(start)
			body := w.Body.String()
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantStatus, body)
			}
			if tt.wantClient != "" {
				var tok map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil {
					t.Fatalf("token body: %v: %s", err, body)
				}
				for k, v := range tok {
					if _, ok := v.(string); !ok {
						t.Errorf("field %s is %T, want a string", k, v)
					}
				}
				want := tt.wantClient
				if want == "system" {
					want = config.Default().SystemAssigned.ClientID
				}
				if tok["client_id"] != want {
					t.Errorf("token for client_id %v, want %s", tok["client_id"], want)
				}
			}
			if tt.wantBody != "" && !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %s lacks %q", body, tt.wantBody)
			}
			if tt.wantHeader != "" {
				k, v, _ := strings.Cut(tt.wantHeader, ": ")
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if n := len(up.requests()) - before; tt.wantStatus >= 400 && !tt.upstreamAnswers && n != 0 {
				t.Errorf("%d requests went upstream for a request the agent refused", n)
			}
			for _, q := range up.requests()[before:] {
				if tt.neverAsked != "" && strings.EqualFold(q.Get("client_id"), tt.neverAsked) {
					t.Errorf("upstream was asked for %s", tt.neverAsked)
				}
			}
			if took < tt.minTime {
				t.Errorf("refused after %s, want the retries (≥ %s)", took, tt.minTime)
			}
		})
	}
}

// TestHandlerBindingArrivesDuringRetries is the startup race: a pod asks
// before its binding exists and gets the token once it does, within the
// retries.
func TestHandlerBindingArrivesDuringRetries(t *testing.T) {
	up := startUpstream(t)
	ctx, _, dc, inf := startCluster(t, nil)
	h, err := NewHandler(Config{Upstream: up.url, Attempts: 40, Interval: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}, inf)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		b := podidentity.Object(podidentity.KindAzureIdentityBinding, "app", "late-b", map[string]any{"azureIdentity": "id-b", "selector": "late"})
		if _, err := dc.Resource(podidentity.AzureIdentityBindingGVR).Namespace("app").Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Errorf("create binding: %v", err)
		}
	}()
	r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com", nil)
	r.RemoteAddr = "10.244.1.16:40000"
	r.Header.Set("Metadata", "true")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), clientB) {
		t.Fatalf("status %d, want 200 with %s's token: %s", w.Code, clientB, w.Body.String())
	}
}

func TestNewHandlerRejectsBadUpstream(t *testing.T) {
	for _, u := range []string{"", "169.254.169.254", "://x"} {
		if _, err := NewHandler(Config{Upstream: u}, nil); err == nil {
			t.Errorf("upstream %q accepted", u)
		}
	}
}

// TestPassThroughSendsOnce: a pod's request reaches upstream once per
// attempt even when upstream resets the connection. With kept-alive
// upstream connections, net/http sent the GET again on its own (a
// reused connection reset before the answer), so IMDS saw requests the
// pod never sent.
func TestPassThroughSendsOnce(t *testing.T) {
	var mu sync.Mutex
	requests, reset := 0, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		rst := reset
		mu.Unlock()
		if !rst {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"x"}`))
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
			_ = tc.SetLinger(0) // close with RST, as IMDS's reset fault does
		}
		_ = conn.Close()
	}))
	t.Cleanup(srv.Close)
	kube, dynObjs := cluster()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf, err := StartInformers(ctx, kubefake.NewClientset(kube...), dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...), node, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Upstream: srv.URL, Log: slog.New(slog.DiscardHandler)}, inf)
	if err != nil {
		t.Fatal(err)
	}
	call := func() int {
		r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com", nil)
		r.RemoteAddr = "10.244.1.13:40000" // app/dns: excepted, so passed through
		r.Header.Set("Metadata", "true")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i := range 3 {
		if code := call(); code != 200 {
			t.Fatalf("call %d: status %d, want 200 before the resets", i, code)
		}
	}
	mu.Lock()
	requests, reset = 0, true
	mu.Unlock()
	for i := range 3 {
		if code := call(); code == 200 {
			t.Fatalf("reset call %d: status 200", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 3 {
		t.Errorf("3 pod requests while upstream resets connections reached it %d times, want 3 (one each)", requests)
	}
}

// TestHandlerWakesWhenThePodShowsUp: a request from a pod the informers do
// not know yet is answered once the pod's event arrives, not at the next
// poll. The poll interval here is an hour, so only the informers' signal
// can answer the request within the test's bound.
func TestHandlerWakesWhenThePodShowsUp(t *testing.T) {
	up := startUpstream(t)
	ctx, kc, _, inf := startCluster(t, nil)
	h, err := NewHandler(Config{Upstream: up.url, Attempts: 1, Interval: time.Hour, PodWait: time.Hour, Log: slog.New(slog.DiscardHandler)}, inf)
	if err != nil {
		t.Fatal(err)
	}
	const newIP = "10.244.1.40"
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", nil)
		r.RemoteAddr = newIP + ":40000"
		r.Header.Set("Metadata", "true")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		done <- w
	}()
	// Unrelated pod events wake the wait too; the request must go on
	// waiting through them.
	other := pod("app", "unrelated", "10.244.1.41", nil)
	if _, err := kc.CoreV1().Pods("app").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-done:
		t.Fatalf("answered %d before the pod existed: %s", w.Code, w.Body)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := kc.CoreV1().Pods("app").Create(ctx, pod("app", "new-web", newIP, map[string]string{podidentity.BindingLabel: "web"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-done:
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), clientA) {
			t.Fatalf("status %d, want 200 with %s's token: %s", w.Code, clientA, w.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not answered within 10 s of its pod's creation: the agent waits for its poll (an hour here) instead of the informers' event")
	}
}
