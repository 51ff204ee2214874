package wiwebhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/idharness/idharness/internal/hookpaths"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// admit sends a CREATE review of podJSON to h at path and returns the
// pod with the response's patch applied.
func admit(t *testing.T, h http.Handler, path, podJSON string) corev1.Pod {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(review("CREATE", podJSON))))
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
		t.Fatalf("%s: status %d, not an allowed review (%v): %s", path, rec.Code, err, rec.Body)
	}
	return applyPatch(t, podJSON, out.Response.Patch)
}

func podJSON(t *testing.T, p corev1.Pod) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMutationOfPodShapes runs the pod shapes of the chaos suite's wiPod
// step through the handler, as the API server does: the identity
// webhook, then (reinvoked) the add-container webhook and the identity
// webhook again.
func TestMutationOfPodShapes(t *testing.T) {
	app := sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient})
	h := &Handler{Config: testConfig, ServiceAccounts: serviceAccounts(app)}
	mux := http.NewServeMux()
	mux.Handle(MutatePath, h)
	mux.Handle(AddContainerPath, AddContainer())
	always := corev1.ContainerRestartPolicyAlways
	uid1, uid2, yes := int64(1234), int64(5678), true
	ca := corev1.VolumeMount{Name: "ca", MountPath: "/etc/ca", ReadOnly: true}
	tests := []struct {
		name   string
		pod    corev1.Pod
		second bool // the add-container webhook runs after, then the identity webhook again
		check  func(t *testing.T, p corev1.Pod)
	}{
		{
			name: "native sidecar and plain init container",
			pod: corev1.Pod{Spec: corev1.PodSpec{ServiceAccountName: "app",
				InitContainers: []corev1.Container{{Name: "init", Image: "i"}, {Name: "sidecar", Image: "i", RestartPolicy: &always}},
				Containers:     []corev1.Container{{Name: "app", Image: "i"}}}},
			check: func(t *testing.T, p corev1.Pod) {
				if rp := p.Spec.InitContainers[1].RestartPolicy; rp == nil || *rp != always {
					t.Errorf("the sidecar's restartPolicy was lost: %v", rp)
				}
				if p.Spec.InitContainers[0].RestartPolicy != nil {
					t.Errorf("the plain init container got a restartPolicy")
				}
			},
		},
		{
			name: "two non-root users with read-only roots",
			pod: corev1.Pod{Spec: corev1.PodSpec{ServiceAccountName: "app", SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes},
				Containers: []corev1.Container{
					{Name: "a", Image: "i", SecurityContext: &corev1.SecurityContext{RunAsUser: &uid1, ReadOnlyRootFilesystem: &yes}},
					{Name: "b", Image: "i", SecurityContext: &corev1.SecurityContext{RunAsUser: &uid2, ReadOnlyRootFilesystem: &yes}},
				}}},
			check: func(t *testing.T, p corev1.Pod) {
				// Without fsGroup and with two UIDs the kubelet cannot give
				// the file to one owner: its mode must let both read it.
				for _, v := range p.Spec.Volumes {
					if v.Name == TokenVolume && (v.Projected.DefaultMode == nil || *v.Projected.DefaultMode&0o044 != 0o044) {
						t.Errorf("token volume mode %v: other users cannot read it", v.Projected.DefaultMode)
					}
				}
				if p.Spec.SecurityContext.FSGroup != nil {
					t.Error("the webhook set an fsGroup")
				}
			},
		},
		{
			name:   "a container added by a later webhook",
			pod:    corev1.Pod{Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "i", VolumeMounts: []corev1.VolumeMount{ca}, Env: []corev1.EnvVar{{Name: "KEEP", Value: "1"}}}}}},
			second: true,
			check: func(t *testing.T, p corev1.Pod) {
				if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != AddedContainer {
					t.Fatalf("containers %+v", p.Spec.Containers)
				}
				added := p.Spec.Containers[1]
				if env(added)["KEEP"] != "1" || len(added.VolumeMounts) != 2 || added.VolumeMounts[0].Name != ca.Name {
					t.Errorf("the added container lost the first one's own settings: %+v", added)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pod.Labels = map[string]string{workloadidentity.UseLabel: "true"}
			p := admit(t, mux, MutatePath, podJSON(t, tt.pod))
			if tt.second {
				added := admit(t, mux, AddContainerPath, podJSON(t, p))
				if c := added.Spec.Containers[len(added.Spec.Containers)-1]; len(env(c)) != 1 || mounted(c) {
					t.Fatalf("the add-container webhook must add a container without workload identity, got %+v", c)
				}
				p = admit(t, mux, MutatePath, podJSON(t, added))
			}
			for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				got := env(c)
				for k, v := range injectedEnv {
					if got[k] != v {
						t.Errorf("container %s: %s=%q, want %q", c.Name, k, got[k], v)
					}
				}
				if !mounted(c) {
					t.Errorf("container %s has no token mount", c.Name)
				}
			}
			tt.check(t, p)
		})
	}
}

// TestWithAddedContainer: only labelled pods get the container, once.
func TestWithAddedContainer(t *testing.T) {
	labelled := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	labelled.Labels = map[string]string{workloadidentity.UseLabel: "true"}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want int
	}{
		{"labelled", labelled, 2},
		{"already added", WithAddedContainer(labelled), 2},
		{"not labelled", &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}, 1},
		{"no container", &corev1.Pod{ObjectMeta: labelled.ObjectMeta}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(WithAddedContainer(tc.pod).Spec.Containers); got != tc.want {
				t.Errorf("%d containers, want %d", got, tc.want)
			}
		})
	}
	if len(labelled.Spec.Containers) != 1 {
		t.Error("WithAddedContainer modified its argument")
	}
}

// TestSlow: the slow path answers as the mutation does, the delay
// later; bad paths are 404s; a client that gives up ends the wait.
func TestSlow(t *testing.T) {
	app := sa("app", map[string]string{workloadidentity.ClientIDAnnotation: testClient})
	slow := Slow(&Handler{Config: testConfig, ServiceAccounts: serviceAccounts(app)})
	pod := `{"metadata":{"name":"p",` + labelled + `},"spec":{"serviceAccountName":"app","containers":[{"name":"a","image":"i"}]}}`
	start := time.Now()
	p := admit(t, slow, SlowPath(200*time.Millisecond), pod)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("answered after %v, want at least 200ms", took)
	}
	if !mounted(p.Spec.Containers[0]) {
		t.Error("the slow path did not mutate")
	}
	for _, path := range []string{"/slow/", "/slow/1s", "/slow/1s/other", "/slow/x/mutate-v1-pod", "/slow/-1s/mutate-v1-pod", "/slow/31s/mutate-v1-pod"} {
		rec := httptest.NewRecorder()
		slow.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(review("CREATE", pod))))
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "/slow/10s/mutate-v1-pod") {
			t.Errorf("%s: status %d %s, want 404 with an example", path, rec.Code, rec.Body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	start = time.Now()
	slow.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, SlowPath(10*time.Second), strings.NewReader(review("CREATE", pod))).WithContext(ctx))
	if took := time.Since(start); took > 2*time.Second || rec.Body.Len() != 0 {
		t.Errorf("a client that gave up after 100ms held the handler %v (body %q)", took, rec.Body)
	}
}

// TestHookPathsMatch: the mutation path internal/hookpaths gives the
// scenario step is the one the webhook serves.
func TestHookPathsMatch(t *testing.T) {
	if hookpaths.Mutate != MutatePath {
		t.Fatalf("hookpaths.Mutate %q, the webhook serves %q", hookpaths.Mutate, MutatePath)
	}
}
