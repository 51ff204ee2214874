package wiwebhook

// Test paths: what the chaos suite needs from a webhook besides the
// mutation, served only with `wiwebhook serve --test-paths`. They are
// reached by MutatingWebhookConfigurations that a scenario step creates
// for its own namespace and removes after (creating one takes
// cluster-admin rights, which workloads do not have); the stack's own
// configuration only ever names MutatePath.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/idharness/idharness/internal/hookpaths"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// Where the test paths are served: internal/hookpaths names them for the
// scenario step that configures webhooks to reach them.
const (
	SlowPrefix       = hookpaths.SlowPrefix
	AddContainerPath = hookpaths.AddContainer
	AddedContainer   = hookpaths.AddedContainer
	MaxSlowDelay     = hookpaths.MaxSlowDelay
)

// SlowPath is hookpaths.SlowPath.
func SlowPath(d time.Duration) string { return hookpaths.SlowPath(d) }

// Slow serves SlowPath: it waits the delay the path names, then lets
// next answer. A client that hangs up ends the wait.
func Slow(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rest, ok := strings.CutPrefix(req.URL.Path, SlowPrefix)
		d, after, ok2 := strings.Cut(rest, "/")
		delay, err := time.ParseDuration(d)
		if !ok || !ok2 || "/"+after != MutatePath || err != nil || delay < 0 || delay > MaxSlowDelay {
			http.Error(w, fmt.Sprintf("want %sDURATION%s with a duration from 0 to %v, e.g. %s", SlowPrefix, MutatePath, MaxSlowDelay, SlowPath(10*time.Second)), http.StatusNotFound)
			return
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-req.Context().Done():
			return
		case <-t.C:
		}
		next.ServeHTTP(w, req)
	})
}

// AddContainer serves AddContainerPath.
func AddContainer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		serveReview(w, req, func(_ context.Context, ar *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			if ar.Kind.Kind != "Pod" || ar.Operation != admissionv1.Create {
				return &admissionv1.AdmissionResponse{Allowed: true}
			}
			var pod corev1.Pod
			if err := json.Unmarshal(ar.Object.Raw, &pod); err != nil {
				return deny(http.StatusBadRequest, fmt.Sprintf("decode pod: %v", err))
			}
			out := WithAddedContainer(&pod)
			ops, err := Patch(&pod, out)
			if err != nil || len(ops) == 0 {
				return &admissionv1.AdmissionResponse{Allowed: true}
			}
			b, err := json.Marshal(ops)
			if err != nil {
				return deny(http.StatusInternalServerError, "add-container: encode patch: "+err.Error())
			}
			pt := admissionv1.PatchTypeJSONPatch
			return &admissionv1.AdmissionResponse{Allowed: true, Patch: b, PatchType: &pt}
		})
	})
}

// WithAddedContainer returns pod with AddedContainer appended, a copy of
// its first container without anything workload identity put there
// (AZURE_ variables and the token mount), so that only a reinvocation of
// the identity webhook can give it the identity. Pods that are not
// labelled for workload identity, have no container or already have
// AddedContainer are returned unchanged.
func WithAddedContainer(pod *corev1.Pod) *corev1.Pod {
	if !Wants(pod) || len(pod.Spec.Containers) == 0 || hasContainer(pod.Spec.Containers, AddedContainer) {
		return pod
	}
	out := pod.DeepCopy()
	c := *pod.Spec.Containers[0].DeepCopy()
	c.Name = AddedContainer
	c.Env = nil
	for _, e := range pod.Spec.Containers[0].Env {
		if !strings.HasPrefix(e.Name, "AZURE_") {
			c.Env = append(c.Env, e)
		}
	}
	c.VolumeMounts = nil
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.Name != TokenVolume && m.MountPath != TokenMountPath {
			c.VolumeMounts = append(c.VolumeMounts, m)
		}
	}
	out.Spec.Containers = append(out.Spec.Containers, c)
	return out
}
