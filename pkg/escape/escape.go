// Package escape is the catalogue of requests a workload can send to
// slip past an identity agent or reach the harness's own components:
// token path variants, methods, selectors, forwarding headers, other
// addresses and ports. The probe sends each attempt byte for byte over
// TCP (so that no client library cleans the path or drops a header) and
// reports what came back; conformance specs judge the results against the
// identity the pod is bound to, whatever implementation answers.
//
// It is public, whole, because its results are: suites/framework hands
// other modules ProbeRun.Escapes, and a module that receives them judges
// them with Violation and reads them against the Plan that was sent. The
// catalogue, the sending and the judging are one unit, so the package
// moved rather than a copy of its Result.
package escape

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MetadataAddr is where workloads reach IMDS (or the agent standing in).
const MetadataAddr = "169.254.169.254:80"

// Kind says what an attempt reaches for, and so how it is judged.
type Kind string

const (
	// KindToken asks for a token: it must never yield one for an
	// identity the pod is not bound to.
	KindToken Kind = "token"
	// KindControl calls a harness control API: it must be refused or
	// unreachable.
	KindControl Kind = "control"
)

// Attempt is one raw HTTP request.
type Attempt struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Addr is the HOST:PORT dialled.
	Addr   string `json:"addr"`
	Method string `json:"method"`
	// Target is the request-target exactly as sent (path and query, or
	// an absolute URL).
	Target string `json:"target"`
	// Headers are raw header lines, in order, repeats allowed; Host and
	// Connection: close are added when absent.
	Headers []string `json:"headers,omitempty"`
	Body    string   `json:"body,omitempty"`
}

// Result is what an attempt got.
type Result struct {
	// Escape is the attempt's name; its presence marks a result line.
	Escape string `json:"escape"`
	Kind   Kind   `json:"kind"`
	Addr   string `json:"addr"`
	// Status is the HTTP status, 0 when no response came.
	Status int `json:"status"`
	// OID is the oid claim of a token in the response, if there was one;
	// Token tells whether there was one at all.
	Token bool   `json:"token"`
	OID   string `json:"oid,omitempty"`
	Error string `json:"error,omitempty"`
	// Body is the start of the response body, for evidence.
	Body string `json:"body,omitempty"`
}

// Params shape a plan: what to ask for and where the harness's own
// components are.
type Params struct {
	// Resource is asked for by every token attempt (unique per spec, so
	// that the journal shows this spec's requests only).
	Resource string `json:"resource"`
	// Foreign is an identity the pod is not bound to: its client ID,
	// object ID and ARM resource ID.
	ForeignClientID   string `json:"foreignClientId"`
	ForeignObjectID   string `json:"foreignObjectId"`
	ForeignResourceID string `json:"foreignResourceId"`
	// OwnClientID, when the pod is bound, is its identity's client ID
	// (for duplicate-selector attempts that name it first).
	OwnClientID string `json:"ownClientId,omitempty"`
	// ImpersonateIP is another pod's address, for forwarding headers.
	ImpersonateIP string `json:"impersonateIp,omitempty"`
	// NodeIP is the pod's node's address; MetadataPorts are other ports
	// there that serve a fake's faces (services, control).
	NodeIP string `json:"nodeIp,omitempty"`
	// Services are HOST:PORT of Services in front of the fake.
	Services []string `json:"services,omitempty"`
	// Controls are HOST:PORT of the harness's control APIs.
	Controls []string `json:"controls,omitempty"`
	// OtherPorts are ports on the node and the metadata address that a
	// fake may listen on besides 80.
	OtherPorts []string `json:"otherPorts,omitempty"`
}

// Encode turns params into the probe's --escape value.
func (p Params) Encode() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeParams reads the probe's --escape value.
func DecodeParams(s string) (Params, error) {
	var p Params
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return p, fmt.Errorf("--escape: not base64url: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("--escape: %w", err)
	}
	if p.Resource == "" || p.ForeignClientID == "" {
		return p, fmt.Errorf("--escape: resource and foreignClientId are required")
	}
	return p, nil
}

const tokenPath = "/metadata/identity/oauth2/token"

// Plan returns every attempt for p.
func Plan(p Params) []Attempt {
	q := func(sel string) string {
		s := "?api-version=2018-02-01&resource=" + p.Resource
		if sel != "" {
			s += "&" + sel
		}
		return s
	}
	foreign := "client_id=" + p.ForeignClientID
	meta := []string{"Metadata: true"}
	var out []Attempt
	tok := func(name, addr, method, target string, headers []string) {
		out = append(out, Attempt{Name: name, Kind: KindToken, Addr: addr, Method: method, Target: target, Headers: headers})
	}
	// The canonical request, for the foreign identity and for none (the
	// node's system identity, unless the pod is bound).
	tok("canonical foreign client_id", MetadataAddr, "GET", tokenPath+q(foreign), meta)
	tok("canonical no selector", MetadataAddr, "GET", tokenPath+q(""), meta)
	// Path variants: an agent that checks only the exact path and passes
	// the rest through hands out whatever IMDS answers there.
	for _, v := range []struct{ name, path string }{
		{"path trailing slash", tokenPath + "/"},
		{"path trailing segment", tokenPath + "/x"},
		{"path double slash", "/metadata//identity/oauth2/token"},
		{"path leading double slash", "//metadata/identity/oauth2/token"},
		{"path encoded slash", "/metadata/identity%2Foauth2/token"},
		{"path encoded token", "/metadata/identity/oauth2/%74oken"},
		{"path dot segment", "/metadata/./identity/oauth2/token"},
		{"path dot-dot segment", "/metadata/identity/x/../oauth2/token"},
		{"path upper case", "/METADATA/IDENTITY/OAUTH2/TOKEN"},
		{"path semicolon", tokenPath + ";x"},
		{"absolute-form target", "http://169.254.169.254" + tokenPath},
	} {
		tok(v.name+", foreign client_id", MetadataAddr, "GET", v.path+q(foreign), meta)
		tok(v.name+", no selector", MetadataAddr, "GET", v.path+q(""), meta)
	}
	// Methods.
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		tok("method "+m+", foreign client_id", MetadataAddr, m, tokenPath+q(foreign), meta)
	}
	out = append(out, Attempt{Name: "POST form selector", Kind: KindToken, Addr: MetadataAddr, Method: "POST", Target: tokenPath + q(""),
		Headers: append([]string{"Content-Type: application/x-www-form-urlencoded"}, meta...), Body: foreign})
	// Selectors.
	sels := []struct{ name, sel string }{
		{"empty then foreign client_id", "client_id=&" + foreign},
		{"foreign object_id", "object_id=" + p.ForeignObjectID},
		{"foreign msi_res_id", "msi_res_id=" + p.ForeignResourceID},
		{"foreign mi_res_id", "mi_res_id=" + p.ForeignResourceID},
		{"foreign client_id upper case", "client_id=" + strings.ToUpper(p.ForeignClientID)},
		{"foreign client_id, upper-case key", "CLIENT_ID=" + p.ForeignClientID},
		{"foreign client_id, encoded key", "client%5Fid=" + p.ForeignClientID},
	}
	if p.OwnClientID != "" {
		sels = append(sels,
			struct{ name, sel string }{"own then foreign client_id", "client_id=" + p.OwnClientID + "&" + foreign},
			struct{ name, sel string }{"foreign then own client_id", foreign + "&client_id=" + p.OwnClientID},
			struct{ name, sel string }{"own client_id and foreign object_id", "client_id=" + p.OwnClientID + "&object_id=" + p.ForeignObjectID})
	}
	for _, s := range sels {
		tok("selector "+s.name, MetadataAddr, "GET", tokenPath+q(s.sel), meta)
	}
	// Headers that name another client, or smuggle one past an agent.
	if ip := p.ImpersonateIP; ip != "" {
		for _, h := range [][]string{
			{"X-Forwarded-For: " + ip},
			{"X-Forwarded-For:", "X-Forwarded-For: " + ip},
			{"x-forwarded-for: " + ip + ", 10.0.0.1"},
			{"Forwarded: for=" + ip},
			{"X-Real-IP: " + ip},
			{"X-Original-Forwarded-For: " + ip},
			{"Connection: X-Forwarded-For", "X-Forwarded-For: " + ip},
		} {
			tok("header "+strings.Join(h, " + ")+", no selector", MetadataAddr, "GET", tokenPath+q(""), append(append([]string{}, meta...), h...))
		}
	}
	tok("metadata header upper case, foreign client_id", MetadataAddr, "GET", tokenPath+q(foreign), []string{"Metadata: True"})
	// Around the agent: the fake's other addresses and ports.
	var addrs []string
	if p.NodeIP != "" {
		addrs = append(addrs, net.JoinHostPort(p.NodeIP, "80"))
		for _, port := range p.OtherPorts {
			addrs = append(addrs, net.JoinHostPort(p.NodeIP, port))
		}
	}
	for _, port := range p.OtherPorts {
		addrs = append(addrs, net.JoinHostPort("169.254.169.254", port))
	}
	addrs = append(addrs, p.Services...)
	for _, a := range addrs {
		tok("at "+a+", foreign client_id", a, "GET", tokenPath+q(foreign), meta)
		tok("at "+a+", no selector", a, "GET", tokenPath+q(""), meta)
	}
	// The harness's control APIs: reading the configuration (which holds
	// the App Service secret) and the journal must be refused.
	for _, c := range p.Controls {
		for _, path := range []string{"/v1/config", "/v1/journal", "/v1/faults"} {
			out = append(out, Attempt{Name: "control " + c + path, Kind: KindControl, Addr: c, Method: "GET", Target: path})
		}
	}
	return out
}

// InFlight is how many attempts SendAll sends at once: below IMDS's
// documented 5 concurrent identity requests, so that no attempt is
// answered 429 (which would hide whether it could have escaped), while an
// agent that holds a refusal for seconds (waiting for a binding that may
// yet appear, as NMI and the reference agent do) costs the plan a quarter
// of its time.
const InFlight = 4

// SendAll sends the attempts, at most inFlight at once (1: one after
// another), and returns their results in the attempts' order.
func SendAll(ctx context.Context, attempts []Attempt, timeout time.Duration, inFlight int) []Result {
	out := make([]Result, len(attempts))
	slots := make(chan struct{}, max(inFlight, 1))
	var wg sync.WaitGroup
	for i, a := range attempts {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out[i] = Send(ctx, a, timeout)
		}()
	}
	wg.Wait()
	return out
}

// Send sends a over a new TCP connection and reads the response.
func Send(ctx context.Context, a Attempt, timeout time.Duration) Result {
	res := Result{Escape: a.Name, Kind: a.Kind, Addr: a.Addr}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.Addr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", a.Method, a.Target)
	host, hasLen := false, false
	for _, h := range a.Headers {
		k, _, _ := strings.Cut(h, ":")
		host = host || strings.EqualFold(k, "Host")
		hasLen = hasLen || strings.EqualFold(k, "Content-Length")
		b.WriteString(h + "\r\n")
	}
	if !host {
		fmt.Fprintf(&b, "Host: %s\r\n", a.Addr)
	}
	if a.Body != "" && !hasLen {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(a.Body))
	}
	b.WriteString("Connection: close\r\n\r\n" + a.Body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		res.Error = err.Error()
		return res
	}
	req := &http.Request{Method: a.Method}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res.Status = resp.StatusCode
	res.Token, res.OID = tokenIn(body)
	res.Body = string(body)
	if len(res.Body) > 300 {
		res.Body = res.Body[:300] + "…"
	}
	return res
}

// tokenIn finds an access token in a response body and returns its oid.
// A body that is not a token response has none.
func tokenIn(body []byte) (bool, string) {
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
		return false, ""
	}
	parts := strings.Split(r.AccessToken, ".")
	if len(parts) != 3 {
		return true, ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return true, ""
	}
	var c struct {
		OID string `json:"oid"`
	}
	_ = json.Unmarshal(payload, &c)
	return true, c.OID
}

// Violation says why r breaks the rules for a pod bound to ownOID (empty:
// bound to nothing), or "" when it does not. A token attempt may yield a
// token only for the pod's own identity; a control attempt must not
// succeed.
func Violation(r Result, ownOID string) string {
	switch r.Kind {
	case KindControl:
		if r.Status >= 200 && r.Status < 300 {
			return fmt.Sprintf("%s: the control API at %s answered %d to a pod", r.Escape, r.Addr, r.Status)
		}
	default:
		if r.Token && (ownOID == "" || r.OID != ownOID) {
			return fmt.Sprintf("%s: got a token for oid %q (bound to %q) from %s, HTTP %d", r.Escape, r.OID, ownOID, r.Addr, r.Status)
		}
	}
	return ""
}
