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
	"slices"
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
	// Exceptions returns the AzurePodIdentityExceptions of namespace.
	Exceptions(namespace string) []Exception
	// Live reads the pod (by name), the identities and the bindings of
	// namespace from the API server itself, not from a cache: what the
	// agent decides a token request by. An error means the API server
	// could not be asked, and nothing is granted.
	Live(ctx context.Context, namespace, pod string) (Pod, []Identity, []Binding, error)
}

// PodNotifier is a Lookup that says when its pods change (Informers
// does), so that a request from a pod it does not know yet is answered as
// soon as the pod shows up rather than at the next poll: on a busy node
// the poll every Interval cost each new pod's first request up to 500 ms.
type PodNotifier interface {
	// PodsChanged returns a channel closed at the next change of the
	// pods PodByIP looks in.
	PodsChanged() <-chan struct{}
}

// Config configures the handler.
type Config struct {
	// Upstream is the node's metadata endpoint, e.g. http://169.254.169.254.
	Upstream string
	// Attempts and Interval bound the wait for a pod's binding to show
	// up: a pod may ask before its binding is created. Attempts ≤ 1
	// decides at once.
	Attempts int
	Interval time.Duration
	// PodWait bounds the wait for the pod itself, polled every Interval:
	// a pod's container runs, and may ask, before the kubelet has
	// written the pod's IP to the API server, which on a loaded node
	// takes seconds (measured: a probe pod's request refused after 2 s
	// on a 4-node cluster of 2 cores). Zero waits Attempts × Interval.
	PodWait time.Duration
	// RetryAfter, when positive, turns the "no binding" refusal from 404
	// into 503 with this Retry-After, as NMI's --set-retry-after-header.
	RetryAfter time.Duration
	// BlockInstanceMetadata refuses /metadata/instance with 403.
	BlockInstanceMetadata bool
	// Client calls upstream; nil uses one without proxies. Whatever it
	// is, the handler uses a copy that never follows redirects and, when
	// the client has no timeout, times out after UpstreamTimeout.
	Client *http.Client
	// UpstreamTimeout bounds each upstream call when Client has no timeout
	// of its own; zero means DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// ReadTimeout bounds the live read each decision is taken from
	// (Lookup.Live); zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// Log receives one line per refusal and per token served.
	Log *slog.Logger
}

// DefaultReadTimeout: the API server answers a read in milliseconds;
// longer means it is out of reach, and the pod is better told at once
// (503, and it retries) than held while its SDK's own timeout runs out.
const DefaultReadTimeout = 2 * time.Second

// DefaultUpstreamTimeout is longer than any client waits for IMDS (the
// SDKs give up within 30 s) so that the agent never cuts a slow answer a
// client would still take, yet a hung upstream does not hold the agent's
// connections forever.
const DefaultUpstreamTimeout = 60 * time.Second

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
	if cfg.PodWait <= 0 {
		cfg.PodWait = time.Duration(cfg.Attempts) * cfg.Interval
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		// No proxy from the environment: upstream is on the node. No
		// kept-alive connections either: net/http silently sends a GET
		// again on another idle connection when a reused one is reset or
		// closed before the answer, so a pod's one request could reach
		// IMDS several times (measured: 4 for one call while IMDS reset
		// connections), hiding the fault from the pod and inflating
		// every request count judged at IMDS. Attempts is the agent's
		// only retry; a new connection on the node costs well under a
		// millisecond.
		c.Transport = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableKeepAlives: true}
	}
	// Following a redirect would fetch whatever URL upstream names —
	// another identity's token, say — with no binding check; do refuses
	// the redirect instead.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Timeout <= 0 {
		c.Timeout = cfg.UpstreamTimeout
	}
	cfg.Client = &c
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Handler{cfg: cfg, lookup: l, up: up}, nil
}

// The paths the agent serves.
const (
	tokenPath    = "/metadata/identity/oauth2/token"
	instancePath = "/metadata/instance"
	versionsPath = "/metadata/versions"
	healthPath   = "/healthz"
)

// route is what the agent does with a request, by its path.
type route int

const (
	// routeNone: not served, 404 from the agent, never forwarded.
	routeNone route = iota
	routeHealth
	// routeToken: the token endpoint, binding-checked.
	routeToken
	// routeMetadata: instance metadata and its versions, which carry no
	// credential, passed through.
	routeMetadata
)

// routeOf matches a request target, as the pod sent it (neither decoded
// nor cleaned), against the allow-list, and splits it into path and
// query. The raw form is what counts: IMDS, or anything in front of it,
// may decode, clean or case-fold a path the agent did not take for the
// token path into the token path (/metadata//identity/…,
// /metadata/instance/../identity/…, %2F, …), so only the exact forms below
// are served. Absolute-form targets (a pod talking to the agent as to a
// proxy) start with a scheme and are refused too.
func routeOf(target string) (route, string, string) {
	p, q, _ := strings.Cut(target, "?")
	switch {
	case p == healthPath:
		return routeHealth, p, q
	case p == tokenPath || p == tokenPath+"/":
		// The trailing slash: the JS SDK adds one when redirected with
		// AZURE_POD_IDENTITY_AUTHORITY_HOST, and IMDS serves both.
		return routeToken, p, q
	case p == instancePath || p == versionsPath:
		return routeMetadata, p, q
	case strings.HasPrefix(p, instancePath+"/") && plainSegments(strings.TrimPrefix(p, instancePath+"/")):
		// Leaves of the instance document: /metadata/instance/compute/name.
		return routeMetadata, p, q
	}
	return routeNone, p, q
}

// plainSegments reports whether s is slash-separated names of letters,
// digits, '-' and '_', with at most a trailing slash: no empty, dot or
// percent-encoded segment, nothing IMDS could resolve elsewhere.
func plainSegments(s string) bool {
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return true
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			return false
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// requestTarget is the request-target as received; handlers called
// directly (tests) may leave RequestURI empty.
func requestTarget(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := podIP(r)
	rt, path, rawQuery := routeOf(requestTarget(r))
	// Everything up to the pod lookup is the same for every pod, so it is
	// answered at once and before the lookup: it never depends on the
	// informers having seen the pod, and what is refused here never
	// reaches upstream, whichever namespace the pod is in.
	if rt == routeNone {
		h.cfg.Log.Info("refused", "ip", ip, "target", requestTarget(r), "status", http.StatusNotFound, "reason", "path not served")
		writeAgentError(w, http.StatusNotFound, "not_found",
			"the node agent serves only "+tokenPath+", "+instancePath+"[/…] and "+versionsPath+", matched exactly (no //, dot segments or percent-encoding); this request was not forwarded")
		return
	}
	if r.Method != http.MethodGet {
		// IMDS's token and instance endpoints are GET only; forwarding
		// other methods would let pods reach whatever IMDS does with them.
		h.cfg.Log.Info("refused", "ip", ip, "path", path, "method", r.Method, "status", http.StatusMethodNotAllowed)
		w.Header().Set("Allow", http.MethodGet)
		writeAgentError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET; "+path+" does not support "+r.Method)
		return
	}
	if rt == routeHealth {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	if name, ok := proxyHeader(r.Header); ok {
		// IMDS refuses X-Forwarded-For itself, but the agent builds a new
		// request, so IMDS would no longer see it: refused here, every
		// form of it and of its kin, so that no pod can speak for another
		// address or ask for another URL.
		h.cfg.Log.Info("refused", "ip", ip, "path", path, "status", http.StatusBadRequest, "reason", "proxy header "+name)
		writeAgentError(w, http.StatusBadRequest, "invalid_request", "requests carrying "+name+" are refused; call 169.254.169.254 directly, without a proxy")
		return
	}
	var query url.Values
	var err error
	if rt == routeToken {
		if !metadataTrue(r.Header) {
			// IMDS gives the same 400 (its SSRF defence), and clients that
			// probe IMDS with a header-less request and a short deadline
			// (azidentity's DefaultAzureCredential: 1 s) get it before the
			// informers may have seen a pod that has just started.
			h.cfg.Log.Info("refused", "ip", ip, "path", path, "status", http.StatusBadRequest, "reason", "no Metadata header")
			writeError(w, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified")
			return
		}
		query, err = tokenQuery(rawQuery)
	} else {
		query, err = url.ParseQuery(rawQuery)
		if err != nil {
			err = fmt.Errorf("malformed query (%v): separate parameters with & and percent-encode their values", err)
		}
	}
	if err != nil {
		h.cfg.Log.Info("refused", "ip", ip, "path", path, "status", http.StatusBadRequest, "reason", err.Error())
		writeAgentError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	pod, ok := h.podByIP(r.Context(), ip)
	if !ok {
		// Without the pod, neither its namespace's opt-in nor its bindings
		// are known: refusing is the only safe answer.
		h.refuse(w, r, ip, Pod{}, "no pod with IP "+ip+" on this node")
		return
	}
	log := h.cfg.Log.With("pod", pod.Namespace+"/"+pod.Name, "ip", ip, "path", path)
	if !h.lookup.OptedIn(pod.Namespace) {
		h.passThrough(w, r, log, path, query, "namespace not opted in")
		return
	}
	if Excepted(pod, h.lookup.Exceptions(pod.Namespace)) {
		h.passThrough(w, r, log, path, query, "AzurePodIdentityException")
		return
	}
	switch {
	case rt == routeToken:
		h.token(w, r, log, pod, query)
	case strings.HasPrefix(path, instancePath) && h.cfg.BlockInstanceMetadata:
		log.Info("refused", "status", http.StatusForbidden, "reason", "instance metadata blocked")
		writeError(w, http.StatusForbidden, "forbidden", "instance metadata is blocked for pods by the node agent")
	default:
		h.passThrough(w, r, log, path, query, "instance metadata")
	}
}

// refusedHeaders are the headers, lower-cased, by which a client speaks
// for another address or asks a proxy for another URL; besides them,
// every X-Forwarded-* header.
var refusedHeaders = map[string]bool{
	"forwarded": true, "x-real-ip": true, "x-original-url": true, "x-rewrite-url": true,
}

// proxyHeader returns the first proxy header in h, whatever its case or
// value (an empty X-Forwarded-For counts).
func proxyHeader(h http.Header) (string, bool) {
	for k := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-forwarded-") || refusedHeaders[lk] {
			return http.CanonicalHeaderKey(k), true
		}
	}
	return "", false
}

// metadataTrue reports whether the request carries Metadata: true, in
// any case ("True", as IMDS accepts); every Metadata line must say so,
// so that conflicting lines cannot be read one way here and another way
// upstream.
func metadataTrue(h http.Header) bool {
	n := 0
	for k, vs := range h {
		if !strings.EqualFold(k, "Metadata") {
			continue
		}
		for _, v := range vs {
			if !strings.EqualFold(strings.TrimSpace(v), "true") {
				return false
			}
			n++
		}
	}
	return n > 0
}

// selectorParams name the identity of a token request, in IMDS's order.
var selectorParams = []string{"client_id", "object_id", "msi_res_id", "mi_res_id"}

// tokenQuery reads a token request's query into the parameters the
// agent forwards (api-version, resource and the identity selector), with
// lower-cased names; the others are dropped, never forwarded. It refuses
// what IMDS might read otherwise than the agent: a malformed query (a ';'
// separator), a parameter given twice (in any case), two selectors, an
// empty selector.
func tokenQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed query (%v): separate parameters with & and percent-encode their values", err)
	}
	out := url.Values{}
	for k, vs := range q {
		lk := strings.ToLower(k)
		if lk != "api-version" && lk != "resource" && !slices.Contains(selectorParams, lk) {
			continue
		}
		if len(vs) > 1 || out.Has(lk) {
			return nil, fmt.Errorf("query parameter %s is given more than once: give it once", lk)
		}
		out.Set(lk, vs[0])
	}
	var named []string
	for _, k := range selectorParams {
		if !out.Has(k) {
			continue
		}
		if out.Get(k) == "" {
			return nil, fmt.Errorf("query parameter %s is empty: give the identity's %s, or leave it out for the default identity", k, k)
		}
		named = append(named, k)
	}
	if len(named) > 1 {
		return nil, fmt.Errorf("query parameters %s all name an identity: name it with one of them", strings.Join(named, ", "))
	}
	return out, nil
}

// podByIP waits up to PodWait for the informers to know the pod: a pod's
// first request can beat the watch event carrying its IP. It looks again
// at every change of the pods when the lookup is a PodNotifier, and every
// Interval in any case.
func (h *Handler) podByIP(ctx context.Context, ip string) (Pod, bool) {
	deadline := time.Now().Add(h.cfg.PodWait)
	n, _ := h.lookup.(PodNotifier)
	for {
		var changed <-chan struct{} // nil, never ready, without a notifier
		if n != nil {
			// Taken before the look, so that a change between the two
			// still wakes the wait below.
			changed = n.PodsChanged()
		}
		if p, ok := h.lookup.PodByIP(ip); ok {
			return p, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Pod{}, false
		}
		t := time.NewTimer(min(h.cfg.Interval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return Pod{}, false
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// token answers a token request of an opted-in pod, decided on every
// attempt from a live read of the API server (Lookup.Live): the pod's
// labels, the identities and the bindings of its namespace. Not from the
// informers' stores, which lag the API server: a binding deleted there
// stays in them until its watch event arrives, milliseconds normally but
// as long as the agent cannot reach the API server (a partition, an
// overloaded control plane), and their watches take tens of seconds
// after such a partition to resume. Deciding from them would hand out an
// identity no longer bound, and refuse one bound meanwhile. When the
// read fails the agent fails closed: 503, no token. The stores only map
// the caller's address to its pod.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, log *slog.Logger, pod Pod, q url.Values) {
	sel := Selector{ClientID: q.Get("client_id"), ResourceID: firstOf(q.Get("msi_res_id"), q.Get("mi_res_id")), ObjectID: q.Get("object_id")}
	var d Decision
	for i := 0; ; i++ {
		// Re-read pod and bindings each time: both may change while the
		// pod waits (label edited, binding created or deleted).
		if p, ok := h.lookup.PodByIP(podIP(r)); ok {
			pod = p
		}
		var err error
		if d, err = h.decideLive(r.Context(), pod, sel); err != nil {
			reason := fmt.Sprintf("cannot read pod %s/%s's bindings from the API server (%v): no token until the agent can; retry", pod.Namespace, pod.Name, err)
			log.Warn("refused", "status", http.StatusServiceUnavailable, "reason", reason)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", reason)
			return
		}
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
		h.fetch(w, r, log, d.Identity, q)
	}
}

// decideLive decides pod's request from a live read of the API server;
// an error when the read fails.
func (h *Handler) decideLive(ctx context.Context, pod Pod, sel Selector) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	defer cancel()
	live, ids, binds, err := h.lookup.Live(ctx, pod.Namespace, pod.Name)
	if err != nil {
		return Decision{}, err
	}
	return Decide(live, ids, binds, sel), nil
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

// fetch gets id's token upstream, naming the identity by its
// AzureIdentity's client ID, and relays the answer as is: IMDS's body (every
// field a string) or its error. Of the pod's query only api-version and
// resource go upstream (tokenQuery).
func (h *Handler) fetch(w http.ResponseWriter, r *http.Request, log *slog.Logger, id Identity, q url.Values) {
	up := url.Values{}
	for _, k := range []string{"api-version", "resource"} {
		if q.Has(k) {
			up.Set(k, q.Get(k))
		}
	}
	// Decide never hands out an identity without a client ID.
	up.Set("client_id", id.ClientID)
	resp, err := h.do(r, tokenPath, up)
	if err != nil {
		log.Warn("upstream failed", "identity", id.Name, "err", err)
		writeError(w, http.StatusForbidden, "upstream_error", fmt.Sprintf("token for identity %s from %s: %v", id.Name, h.up.Host, err))
		return
	}
	defer resp.Body.Close()
	log.Info("token", "identity", id.Name, "clientID", id.ClientID, "status", resp.StatusCode)
	copyResponse(w, resp)
}

// passThrough forwards the request (an allowed path, its checked query)
// as the agent's own request and relays the answer: the pod sees the
// node's metadata endpoint as if the agent were not there, except that
// no header of its own but Metadata and User-Agent goes along.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, log *slog.Logger, path string, q url.Values, why string) {
	resp, err := h.do(r, path, q)
	if err != nil {
		log.Warn("pass-through failed", "why", why, "err", err)
		writeAgentError(w, http.StatusBadGateway, "upstream_error", fmt.Sprintf("%s from %s: %v", path, h.up.Host, err))
		return
	}
	defer resp.Body.Close()
	log.Debug("passed through", "why", why, "status", resp.StatusCode)
	copyResponse(w, resp)
}

// agentUserAgent is the agent's product token in the User-Agent it sends.
const agentUserAgent = "idharness-nodeagent"

// do sends the agent's own GET for path and q upstream. The request is
// built from scratch: no header, body, Host or method of the pod's goes
// along (hop-by-hop headers, Connection and what it names, included)
// except Metadata: true when the pod sent it, and the pod's User-Agent
// (userAgent). A redirect from upstream is refused, never followed (the
// client's CheckRedirect) nor relayed.
func (h *Handler) do(r *http.Request, path string, q url.Values) (*http.Response, error) {
	u := *h.up
	u.Path, u.RawPath, u.RawQuery = path, "", q.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if metadataTrue(r.Header) {
		req.Header.Set("Metadata", "true")
	}
	req.Header.Set("User-Agent", userAgent(r.Header.Get("User-Agent")))
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		resp.Body.Close()
		return nil, fmt.Errorf("upstream answered %d, a redirect, which the node agent never follows", resp.StatusCode)
	}
	return resp, nil
}

// userAgent is the User-Agent the agent sends upstream: the pod's when it
// is short printable ASCII, then the agent's own token. The pod's is kept
// because IMDS selects nothing by it while the harness attributes IMDS
// requests to clients by the tag the probe puts there (suites/chaos'
// storm, internal/scenario).
func userAgent(pod string) string {
	if pod == "" || len(pod) > 512 || strings.IndexFunc(pod, func(c rune) bool { return c < ' ' || c > '~' }) >= 0 {
		return agentUserAgent
	}
	return pod + " " + agentUserAgent
}

var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// copyResponse relays upstream's answer without its hop-by-hop headers
// and those its Connection header names.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	named := map[string]bool{}
	for _, v := range resp.Header.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			named[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range resp.Header {
		if !hopByHop[k] && !named[k] {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// writeAgentError writes IMDS's error shape for a refusal of the agent's
// own, saying so: the pod's owner must not look for it in IMDS.
func writeAgentError(w http.ResponseWriter, status int, code, desc string) {
	writeError(w, status, code, "refused by the idharness node agent: "+desc)
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
