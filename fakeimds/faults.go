package fakeimds

import (
	"bytes"
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/token"
)

// serverHeader is what real IMDS sends in its Server header.
const serverHeader = "IMDS/150.870.65.1103"

var serverHeaderValue = []string{serverHeader}

// Chaos returns the fault engine.
func (s *Server) Chaos() *chaos.Engine { return s.engine }

// Limiter returns the IMDS throttling limiter.
func (s *Server) Limiter() *chaos.Limiter { return s.limiter }

// serveFaulty serves req with a face's handler h through throttling and
// the fault rules. record calls it, so what it does lands in the journal;
// a method called directly rather than a handler wrapping h, one
// dispatch less per request.
func (s *Server) serveFaulty(face string, h http.Handler, w http.ResponseWriter, req *http.Request) {
	if face == FaceIMDS || face == FaceInstance {
		// Assigned, not Set: the key is canonical and the value
		// shared (net/http only reads header values).
		w.Header()["Server"] = serverHeaderValue
	}
	release, ok := s.limiter.Admit(face)
	if !ok {
		note(w).Error = "throttled"
		writeResponse(w, chaos.ErrorResponse(http.StatusTooManyRequests, "", "", s.limiter.Limits().RetryAfter.Duration))
		return
	}
	defer release()
	var fx *chaos.Effects
	if s.engine.Len() > 0 {
		fx = s.engine.Evaluate(s.chaosRequest(face, req))
	}
	if fx == nil {
		h.ServeHTTP(w, req)
		return
	}
	rec := note(w)
	rec.Faults = fx.Faults
	if fx.Delay > 0 && !sleepCtx(req.Context(), fx.Delay) {
		markAborted(w, "client gave up during injected latency")
		return
	}
	switch fx.Conn {
	case chaos.ConnReset:
		markAborted(w, "connection reset")
		abortConn(w, true)
		return
	case chaos.ConnClose:
		markAborted(w, "connection closed")
		abortConn(w, false)
		return
	case chaos.ConnHang:
		// Hold until the client gives up; at the bound, drop the connection.
		if sleepCtx(req.Context(), fx.HangMax) {
			markAborted(w, "hang bound reached, connection closed")
			abortConn(w, false)
			return
		}
		markAborted(w, "client gave up while hung")
		return
	}
	if fx.Response != nil {
		rec.Error = errorCode(fx.Response.Body)
		writeResponse(w, fx.Response)
		return
	}
	if fx.Shift == nil && !fx.WrongIdentity && len(fx.BodyEdits) == 0 && fx.MidBodyDelay == 0 && fx.BytesPerSecond == 0 {
		h.ServeHTTP(w, req)
		return
	}
	// Buffer the face's answer so the body can be edited and paced.
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(&faultWriter{bufferedWriter: buf, entry: rec, fx: fx}, req)
	body := buf.body.Bytes()
	if buf.status == http.StatusOK {
		for _, edit := range fx.BodyEdits {
			body = edit(body)
		}
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(buf.status)
	writePaced(req.Context(), w, body, fx.MidBodyDelay, fx.BytesPerSecond)
}

// faultWriter is what a face writes to while faults apply: a buffer, the
// journal entry (see note) and the effects the face itself must apply.
type faultWriter struct {
	*bufferedWriter
	entry *journal.Entry
	fx    *chaos.Effects
}

func (f *faultWriter) journalEntry() *journal.Entry { return f.entry }

// effectsOf returns the fault effects a face must apply while answering
// on w, or nil.
func effectsOf(w http.ResponseWriter) *chaos.Effects {
	if f, ok := w.(*faultWriter); ok {
		return f.fx
	}
	return nil
}

// chaosRequest describes req for rule matching.
func (s *Server) chaosRequest(face string, req *http.Request) *chaos.Request {
	cr := &chaos.Request{Face: face, Method: req.Method, Path: req.URL.Path, Header: req.Header}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		cr.Source = ap.Addr()
	}
	q, _ := url.ParseQuery(req.URL.RawQuery)
	cr.Resource = q.Get("resource")
	var sel identity.Selector
	for _, p := range append(selectorParams, appServiceSelectors...) {
		if v := q.Get(p.name); v != "" {
			sel = identity.Selector{Kind: p.kind, Value: v}
			cr.IdentityKeys = append(cr.IdentityKeys, v)
			cr.Selector = v
			if p.name == "client_id" {
				cr.ClientID = v
			}
		}
	}
	if face == FaceAuthority {
		if err := req.ParseForm(); err == nil {
			if v := req.PostForm.Get("client_id"); v != "" {
				cr.IdentityKeys = append(cr.IdentityKeys, v)
				cr.Selector, cr.ClientID = v, v
				sel = identity.Selector{Kind: identity.ByClientID, Value: v}
			}
		}
	}
	if id, err := s.store.Resolve(sel); err == nil {
		cr.IdentityKeys = append(cr.IdentityKeys, id.ClientID, id.ObjectID, id.ResourceID)
		if id.System {
			cr.IdentityKeys = append(cr.IdentityKeys, "system")
		}
	}
	return cr
}

// mintFor applies the token-level fault effects (clock skew, expiry,
// wrong identity) when issuing a token for id.
func (s *Server) mintFor(fx *chaos.Effects, id identity.Identity, resource string) (token.Token, identity.Identity, error) {
	if fx.WrongIdentity {
		if other, ok := s.otherIdentity(id, fx.WrongIdentityID); ok {
			id = other
		}
	}
	shift := token.Shift{}
	if fx.Shift != nil {
		shift = *fx.Shift
	}
	tok, err := s.minter.Mint(id, resource, shift)
	return tok, id, err
}

// otherIdentity returns the identity named by clientID, or any attached
// identity other than id.
func (s *Server) otherIdentity(id identity.Identity, clientID string) (identity.Identity, bool) {
	if clientID != "" {
		return s.store.Lookup(clientID)
	}
	for _, o := range s.store.List() {
		if !strings.EqualFold(o.ClientID, id.ClientID) {
			return o, true
		}
	}
	return identity.Identity{}, false
}

func writeResponse(w http.ResponseWriter, r *chaos.Response) {
	for k, v := range r.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(r.Body)))
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}

// errorCode extracts "error" from a JSON error body for the journal.
func errorCode(body []byte) string {
	const key = `"error":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// abortConn takes over the connection and closes it; with rst the close
// sends a TCP RST instead of a FIN.
func abortConn(w http.ResponseWriter, rst bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2 or a test recorder): panicking with
		// ErrAbortHandler is net/http's way to abort a response.
		panic(http.ErrAbortHandler)
	}
	if l, ok := conn.(interface{ SetLinger(int) error }); ok && rst {
		_ = l.SetLinger(0)
	}
	_ = conn.Close()
}

// writePaced writes body, pausing midDelay after the first half and
// keeping to bps bytes per second when bps > 0.
func writePaced(ctx context.Context, w http.ResponseWriter, body []byte, midDelay time.Duration, bps int) {
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		if bps <= 0 {
			_, err := w.Write(b)
			_ = rc.Flush()
			return err == nil
		}
		// Send in chunks of a tenth of a second's worth of bytes.
		chunk := max(bps/10, 1)
		start := time.Now()
		sent := 0
		for len(b) > 0 {
			n := min(chunk, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return false
			}
			_ = rc.Flush()
			b, sent = b[n:], sent+n
			due := start.Add(time.Duration(float64(sent) / float64(bps) * float64(time.Second)))
			if !sleepCtx(ctx, time.Until(due)) {
				return false
			}
		}
		return true
	}
	if midDelay <= 0 {
		write(body)
		return
	}
	half := len(body) / 2
	if !write(body[:half]) || !sleepCtx(ctx, midDelay) {
		return
	}
	write(body[half:])
}

// bufferedWriter collects a face's answer for editing.
type bufferedWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
