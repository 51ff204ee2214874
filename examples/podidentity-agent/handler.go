package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// TokenPath is IMDS's token endpoint, the only path the agent answers
// (besides HealthPath). Everything else, instance metadata included, is
// 404: a pod identity agent has no need to forward it, and every path it
// forwards is one more way around its checks.
const (
	TokenPath  = "/metadata/identity/oauth2/token"
	HealthPath = "/healthz"
)

// userAgent marks the agent's own requests upstream.
const userAgent = "podidentity-agent-example/0.1"

// Handler answers the token requests that the redirect sends to the
// agent. Every answer is decided from the request's source address: the
// pod is found by its IP, never by anything it says about itself.
type Handler struct {
	Cluster Cluster
	// Upstream is the node's metadata endpoint, http://169.254.169.254.
	// The agent runs on the host network, where the redirect does not
	// apply, so its own requests reach the node's IMDS.
	Upstream *url.URL
	// Client sends the upstream requests; NewUpstreamClient makes one
	// that never follows redirects.
	Client *http.Client
	// Retries and Interval: how often, and how far apart, the agent asks
	// again when no binding covers the pod. A pod's first request may
	// come before the API server shows its address or its binding.
	Retries  int
	Interval time.Duration
	Log      *slog.Logger
}

// NewUpstreamClient returns the client for upstream calls: no proxy from
// the environment, no kept-alive connections (so that one pod request is
// one upstream request), a timeout, and redirects returned, not followed:
// following one would fetch a URL the agent never checked.
func NewUpstreamClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The path as sent: "//", dot segments, %-escapes and other case are
	// not the token path, whatever IMDS might make of them.
	path, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	ip := remoteIP(r)
	log := h.Log.With("ip", ip, "method", r.Method, "path", path)
	if path == HealthPath {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	if path != TokenPath && path != TokenPath+"/" {
		h.refuse(w, log, http.StatusNotFound, "not_found", "the pod identity agent serves only "+TokenPath)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.refuse(w, log, http.StatusMethodNotAllowed, "method_not_allowed", "the token endpoint takes GET only")
		return
	}
	if name := forwardingHeader(r.Header); name != "" {
		h.refuse(w, log, http.StatusBadRequest, "invalid_request", "header "+name+" is refused: the agent knows pods by their address only")
		return
	}
	if !metadataTrue(r.Header) {
		// IMDS's own answer to a request without the header.
		h.refuse(w, log, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified")
		return
	}
	params, sel, err := tokenParams(rawQuery)
	if err != nil {
		h.refuse(w, log, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	d, pod, err := h.decide(r.Context(), ip, sel)
	if err != nil {
		h.refuse(w, log, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	if pod != "" {
		log = log.With("pod", pod)
	}
	switch d.Verdict {
	case NoBinding:
		h.refuse(w, log, http.StatusNotFound, "not_found", d.Reason)
	case Forbidden:
		h.refuse(w, log, http.StatusForbidden, "forbidden", d.Reason)
	case PassThrough:
		if sel.Param != "" {
			params.Set(sel.Param, sel.Value)
		}
		h.forward(w, r, log.With("reason", d.Reason), params)
	case Serve:
		params.Set("client_id", d.Identity.ClientID)
		h.forward(w, r, log.With("identity", d.Identity.Name), params)
	}
}

// decide finds the pod with address ip and decides on its request,
// asking again while nothing binds it. It returns the pod's
// namespace/name ("" when there is no such pod).
func (h *Handler) decide(ctx context.Context, ip string, sel Selector) (Decision, string, error) {
	for attempt := 0; ; attempt++ {
		pod, err := h.Cluster.PodByIP(ctx, ip)
		if err != nil {
			return Decision{}, "", err
		}
		d, name := Decision{Verdict: NoBinding, Reason: "no pod with address " + ip + " on this node"}, ""
		if pod != nil {
			name = pod.Namespace + "/" + pod.Name
			objs, err := h.Cluster.Objects(ctx, pod.Namespace)
			if err != nil {
				return Decision{}, name, err
			}
			d = Decide(pod.Labels, objs, sel)
		}
		if d.Verdict != NoBinding || attempt >= h.Retries {
			return d, name, nil
		}
		select {
		case <-ctx.Done():
			return d, name, nil
		case <-time.After(h.Interval):
		}
	}
}

// forward asks upstream for a token with params, in a request of the
// agent's own (nothing of the pod's request but its User-Agent goes
// along), and relays the answer.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, log *slog.Logger, params url.Values) {
	u := *h.Upstream
	u.Path, u.RawQuery = TokenPath, params.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		h.refuse(w, log, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	req.Header.Set("Metadata", "true")
	req.Header.Set("User-Agent", podUserAgent(r.UserAgent()))
	resp, err := h.Client.Do(req)
	if err != nil {
		h.refuse(w, log, http.StatusBadGateway, "upstream_error", fmt.Sprintf("token request to %s: %v", h.Upstream.Host, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		h.refuse(w, log, http.StatusBadGateway, "upstream_error", fmt.Sprintf("%s answered %d, a redirect, which the agent does not follow", h.Upstream.Host, resp.StatusCode))
		return
	}
	for _, k := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	log.Info("forwarded", "upstream", u.String(), "status", resp.StatusCode, "bytes", n)
}

// refuse answers with IMDS's error shape and logs why.
func (h *Handler) refuse(w http.ResponseWriter, log *slog.Logger, status int, code, desc string) {
	log.Info("refused", "status", status, "reason", desc)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// selectorParams are the query parameters that name an identity.
var selectorParams = map[string]bool{"client_id": true, "msi_res_id": true, "mi_res_id": true, "object_id": true}

// tokenParams reads a token request's query: api-version and resource,
// which are forwarded, and the identity selector, which the decision
// uses. Names are compared in lower case; anything else is dropped. It
// refuses what could be read two ways: a parameter given twice, two
// selectors, an empty selector, a malformed query.
func tokenParams(raw string) (url.Values, Selector, error) {
	var sel Selector
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, sel, fmt.Errorf("malformed query: %v", err)
	}
	out := url.Values{}
	seen := map[string]bool{}
	for k, vs := range q {
		name := strings.ToLower(k)
		if name != "api-version" && name != "resource" && !selectorParams[name] {
			continue
		}
		if len(vs) > 1 || seen[name] {
			return nil, sel, fmt.Errorf("query parameter %s is given more than once", name)
		}
		seen[name] = true
		if !selectorParams[name] {
			out.Set(name, vs[0])
			continue
		}
		if vs[0] == "" {
			return nil, sel, fmt.Errorf("query parameter %s is empty: name the identity, or leave the parameter out", name)
		}
		if sel.Param != "" {
			return nil, sel, fmt.Errorf("query parameters %s and %s both select an identity: give one", sel.Param, name)
		}
		sel = Selector{Param: name, Value: vs[0]}
	}
	return out, sel, nil
}

// forwardingHeader returns the name of a header by which a request
// speaks for another client or URL (X-Forwarded-*, Forwarded,
// X-Real-Ip, X-Original-*, X-Rewrite-Url), or "".
func forwardingHeader(hdr http.Header) string {
	for k := range hdr {
		l := strings.ToLower(k)
		if l == "forwarded" || l == "x-real-ip" || l == "x-rewrite-url" ||
			strings.HasPrefix(l, "x-forwarded") || strings.HasPrefix(l, "x-original") {
			return k
		}
	}
	return ""
}

// metadataTrue reports whether every Metadata header line, and at least
// one, says true (in any case, as IMDS takes it).
func metadataTrue(hdr http.Header) bool {
	vs := hdr.Values("Metadata")
	for _, v := range vs {
		if !strings.EqualFold(strings.TrimSpace(v), "true") {
			return false
		}
	}
	return len(vs) > 0
}

// podUserAgent keeps the pod's User-Agent (IMDS logs it; the harness
// tells its clients apart by it) when it is plain short ASCII, followed
// by the agent's own.
func podUserAgent(ua string) string {
	if ua == "" || len(ua) > 256 || strings.ContainsFunc(ua, func(c rune) bool { return c < ' ' || c > '~' }) {
		return userAgent
	}
	return ua + " " + userAgent
}

// remoteIP is the request's source address: the pod's, since DNAT
// rewrites only the destination.
func remoteIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ap.Addr().Unmap().String()
}
