package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Lookup is the agent's view of the cluster (Informers in production,
// anything in tests).
type Lookup interface {
	// PodByIP returns the running pod with ip on this node.
	PodByIP(ip string) (Pod, bool)
	// OptedIn reports whether pods of namespace get pod identity; the
	// others are passed through unchanged.
	OptedIn(namespace string) bool
	// Identities, Bindings and Exceptions return the pod identity objects
	// of namespace.
	Identities(namespace string) []Identity
	Bindings(namespace string) []Binding
	Exceptions(namespace string) []Exception
}

// Config configures the handler.
type Config struct {
	// Upstream is the node's metadata endpoint, e.g. http://169.254.169.254.
	Upstream string
	// Attempts and Interval bound the wait for a pod's binding (or the pod
	// itself) to show up: a pod may ask before its binding is created or
	// before the informers saw it. Attempts ≤ 1 decides at once.
	Attempts int
	Interval time.Duration
	// RetryAfter, when positive, turns the "no binding" refusal from 404
	// into 503 with this Retry-After, as NMI's --set-retry-after-header.
	RetryAfter time.Duration
	// BlockInstanceMetadata refuses /metadata/instance with 403.
	BlockInstanceMetadata bool
	// Client calls upstream; nil uses one without proxies.
	Client *http.Client
	// Log receives one line per refusal and per token served.
	Log *slog.Logger
}

// Handler answers pods' metadata requests.
type Handler struct {
	cfg    Config
	lookup Lookup
	up     *url.URL
}

// NewHandler returns the handler for cfg.
func NewHandler(cfg Config, l Lookup) (*Handler, error) {
	up, err := url.Parse(cfg.Upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return nil, fmt.Errorf("upstream %q: want an absolute URL such as http://169.254.169.254", cfg.Upstream)
	}
	if cfg.Attempts < 1 {
		cfg.Attempts = 1
	}
	if cfg.Client == nil {
		// No proxy from the environment: upstream is on the node.
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Handler{cfg: cfg, lookup: l, up: up}, nil
}

const tokenPath = "/metadata/identity/oauth2/token"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	ip := podIP(r)
	isToken := strings.TrimSuffix(r.URL.Path, "/") == tokenPath
	if isToken && r.Header.Get("Metadata") != "true" {
		// Answered before the pod lookup: the answer is the same for every
		// pod (IMDS gives the same 400), no request without the header is
		// ever forwarded (it is IMDS's SSRF defence), and clients that probe
		// IMDS with a header-less request and a short deadline (azidentity's
		// DefaultAzureCredential: 1 s) get it before the informers may have
		// seen a pod that has just started.
		h.cfg.Log.Info("refused", "ip", ip, "path", r.URL.Path, "status", http.StatusBadRequest, "reason", "no Metadata header")
		writeError(w, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified")
		return
	}
	pod, ok := h.podByIP(r.Context(), ip)
	if !ok {
		// Without the pod, neither its namespace's opt-in nor its bindings
		// are known: refusing is the only safe answer.
		h.refuse(w, r, ip, Pod{}, "no pod with IP "+ip+" on this node")
		return
	}
	log := h.cfg.Log.With("pod", pod.Namespace+"/"+pod.Name, "ip", ip, "path", r.URL.Path)
	if !h.lookup.OptedIn(pod.Namespace) {
		h.passThrough(w, r, log, "namespace not opted in")
		return
	}
	if Excepted(pod, h.lookup.Exceptions(pod.Namespace)) {
		h.passThrough(w, r, log, "AzurePodIdentityException")
		return
	}
	switch {
	case isToken:
		h.token(w, r, log, pod)
	case strings.HasPrefix(r.URL.Path, "/metadata/instance") && h.cfg.BlockInstanceMetadata:
		log.Info("refused", "status", http.StatusForbidden, "reason", "instance metadata blocked")
		writeError(w, http.StatusForbidden, "forbidden", "instance metadata is blocked for pods by the node agent")
	default:
		h.passThrough(w, r, log, "not a token request")
	}
}

// podByIP waits up to the configured attempts for the informers to know
// the pod: a pod's first request can beat the watch event carrying its IP.
func (h *Handler) podByIP(ctx context.Context, ip string) (Pod, bool) {
	for i := 0; ; i++ {
		if p, ok := h.lookup.PodByIP(ip); ok {
			return p, true
		}
		if i+1 >= h.cfg.Attempts || !sleep(ctx, h.cfg.Interval) {
			return Pod{}, false
		}
	}
}

func (h *Handler) token(w http.ResponseWriter, r *http.Request, log *slog.Logger, pod Pod) {
	q := r.URL.Query()
	sel := Selector{ClientID: q.Get("client_id"), ResourceID: firstOf(q.Get("msi_res_id"), q.Get("mi_res_id")), ObjectID: q.Get("object_id")}
	var d Decision
	for i := 0; ; i++ {
		// Re-read pod and bindings each time: both may change while the
		// pod waits (label edited, binding created or deleted).
		if p, ok := h.lookup.PodByIP(podIP(r)); ok {
			pod = p
		}
		d = Decide(pod, h.lookup.Identities(pod.Namespace), h.lookup.Bindings(pod.Namespace), sel)
		if d.Verdict != Refuse || i+1 >= h.cfg.Attempts || !sleep(r.Context(), h.cfg.Interval) {
			break
		}
	}
	switch d.Verdict {
	case Refuse:
		h.refuse(w, r, podIP(r), pod, d.Reason)
	case Forbid:
		log.Info("refused", "status", http.StatusForbidden, "reason", d.Reason)
		writeError(w, http.StatusForbidden, "forbidden", d.Reason)
	case Token:
		h.fetch(w, r, log, d.Identity)
	}
}

// refuse answers a request no binding covers: 404, or 503 with
// Retry-After when configured, as NMI does.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, ip string, pod Pod, reason string) {
	status := http.StatusNotFound
	if h.cfg.RetryAfter > 0 {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int((h.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	h.cfg.Log.Info("refused", "ip", ip, "pod", pod.Namespace+"/"+pod.Name, "path", r.URL.Path, "status", status, "reason", reason)
	writeError(w, status, "not_found", reason)
}

// fetch gets id's token upstream, naming the identity the way its
// AzureIdentity does, and relays the answer as is: IMDS's body (every
// field a string) or its error.
func (h *Handler) fetch(w http.ResponseWriter, r *http.Request, log *slog.Logger, id Identity) {
	q := r.URL.Query()
	for _, k := range []string{"client_id", "object_id", "msi_res_id", "mi_res_id"} {
		q.Del(k)
	}
	if id.ClientID != "" {
		q.Set("client_id", id.ClientID)
	} else {
		q.Set("msi_res_id", id.ResourceID)
	}
	u := *h.up
	u.Path, u.RawQuery = tokenPath, q.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	req.Header.Set("Metadata", "true")
	if ua := r.Header.Get("User-Agent"); ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		log.Warn("upstream failed", "identity", id.Name, "err", err)
		writeError(w, http.StatusForbidden, "upstream_error", fmt.Sprintf("token for identity %s from %s: %v", id.Name, h.up.Host, err))
		return
	}
	defer resp.Body.Close()
	log.Info("token", "identity", id.Name, "clientID", id.ClientID, "status", resp.StatusCode)
	copyResponse(w, resp)
}

// passThrough forwards the request unchanged (headers included, so that
// IMDS's own checks such as X-Forwarded-For still apply) and relays the
// answer: the pod sees the node's metadata endpoint as if the agent were
// not there.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, log *slog.Logger, why string) {
	u := *h.up
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	req.ContentLength = r.ContentLength
	for k, vs := range r.Header {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			req.Header[k] = vs
		}
	}
	req.Host = r.Host
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		log.Warn("pass-through failed", "why", why, "err", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	log.Debug("passed through", "why", why, "status", resp.StatusCode)
	copyResponse(w, resp)
}

var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func copyResponse(w http.ResponseWriter, resp *http.Response) {
	for k, vs := range resp.Header {
		if !hopByHop[k] {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// writeError writes IMDS's error shape.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func podIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
