package wiwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MutatePath is where the webhook serves admission reviews.
const MutatePath = "/mutate-v1-pod"

// maxReviewBytes bounds an AdmissionReview; the API server sends at most
// a few MiB (an object is limited to ~1.5 MiB).
const maxReviewBytes = 8 << 20

// ServiceAccountGetter returns a service account, or (nil, nil) when it
// does not exist.
type ServiceAccountGetter func(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)

// Handler serves AdmissionReview (admission.k8s.io/v1) requests for pods
// on MutatePath.
type Handler struct {
	Config          Config
	ServiceAccounts ServiceAccountGetter
	Log             *slog.Logger
}

// ServeHTTP answers one AdmissionReview. Malformed reviews get a 400;
// everything about the pod is answered in the review's response, so the
// API server shows the reason to the user.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	serveReview(w, req, h.Review)
}

// serveReview decodes an AdmissionReview, has review decide on its
// request and writes the response review: the protocol every webhook path
// of this package speaks.
func serveReview(w http.ResponseWriter, req *http.Request, review func(context.Context, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
		http.Error(w, "want an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	resp := review(req.Context(), in.Request)
	resp.UID = in.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Review decides on one admission request: allowed with a JSON patch,
// allowed unchanged, or denied with the reason.
func (h *Handler) Review(ctx context.Context, ar *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	if ar.Kind.Kind != "Pod" || ar.Operation != admissionv1.Create {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(ar.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, fmt.Sprintf("decode pod: %v", err))
	}
	if !Wants(&pod) {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	// Pods created by controllers have no namespace in the object yet.
	ns := ar.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	saName := serviceAccountName(&pod)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sa, err := h.ServiceAccounts(ctx, ns, saName)
	if err != nil {
		log.Error("get service account", "namespace", ns, "name", saName, "err", err)
		return deny(http.StatusInternalServerError, fmt.Sprintf("workload identity webhook: get service account %s/%s: %v", ns, saName, err))
	}
	mutated, err := Mutate(&pod, sa, h.Config)
	var denied *DeniedError
	if errors.As(err, &denied) {
		log.Info("denied", "namespace", ns, "pod", podName(&pod), "reason", denied.Reason)
		return deny(http.StatusForbidden, "workload identity webhook: "+denied.Reason)
	}
	if err != nil {
		return deny(http.StatusInternalServerError, "workload identity webhook: "+err.Error())
	}
	patch, err := Patch(&pod, mutated)
	if err != nil {
		return deny(http.StatusInternalServerError, "workload identity webhook: "+err.Error())
	}
	log.Info("mutated", "namespace", ns, "pod", podName(&pod), "serviceAccount", saName, "operations", len(patch))
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	if len(patch) > 0 {
		b, err := json.Marshal(patch)
		if err != nil {
			return deny(http.StatusInternalServerError, "workload identity webhook: encode patch: "+err.Error())
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = b, &pt
	}
	return resp
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}

// PatchOp is one JSON patch (RFC 6902) operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch returns the JSON patch that turns from into to. The webhook only
// changes the containers, init containers and volumes, so the patch sets
// those lists whole where they differ: "add" of an object member replaces
// it when present, and a list-level patch cannot misplace an element if
// another webhook changed the list first.
func Patch(from, to *corev1.Pod) ([]PatchOp, error) {
	var ops []PatchOp
	for _, f := range []struct {
		path     string
		from, to any
	}{
		{"/spec/initContainers", from.Spec.InitContainers, to.Spec.InitContainers},
		{"/spec/containers", from.Spec.Containers, to.Spec.Containers},
		{"/spec/volumes", from.Spec.Volumes, to.Spec.Volumes},
	} {
		a, err := json.Marshal(f.from)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.path, err)
		}
		b, err := json.Marshal(f.to)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.path, err)
		}
		if string(a) != string(b) {
			ops = append(ops, PatchOp{Op: "add", Path: f.path, Value: json.RawMessage(b)})
		}
	}
	return ops, nil
}
