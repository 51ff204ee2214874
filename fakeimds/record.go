package fakeimds

import (
	"net/http"
	"strconv"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
)

// The faces, as named in the journal and metrics.
const (
	FaceIMDS       = "imds"
	FaceInstance   = "instance"
	FaceAppService = "appservice"
	FaceArc        = "arc"
	FaceAuthority  = "authority"
)

// recorder wraps a face's ResponseWriter to capture the status and what
// the handler learnt (identity, resource, error code) for the journal.
type recorder struct {
	http.ResponseWriter
	status   int
	entry    journal.Entry
	written  bool
	hijacked bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.written {
		r.status, r.written = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers push bytes through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// note returns the journal entry a face fills in for w, or a throwaway one
// when w was not wrapped (handlers called directly in tests).
func note(w http.ResponseWriter) *journal.Entry {
	if r, ok := w.(*recorder); ok {
		return &r.entry
	}
	return &journal.Entry{}
}

func noteIdentity(w http.ResponseWriter, sel identity.Selector, id identity.Identity) {
	e := note(w)
	e.Selector = sel.String()
	e.Identity = id.ClientID
	e.IdentityName = id.Name
}

// record wraps a face's handler so each request is journaled and counted.
func (s *Server) record(face string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		rec.entry.Face = face
		h.ServeHTTP(rec, req)
		if !rec.written {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		e := rec.entry
		e.Time = start
		e.Remote = req.RemoteAddr
		e.Method = req.Method
		e.Path = req.URL.Path
		e.Query = req.URL.RawQuery
		e.Headers = interestingHeaders(req)
		e.Status = rec.status
		e.LatencyMS = float64(elapsed.Microseconds()) / 1000
		s.journal.Add(e)
		s.metrics.observe(face, rec.status, e.IdentityName, elapsed)
	})
}

func interestingHeaders(req *http.Request) map[string]string {
	var m map[string]string
	set := func(k, v string) {
		if m == nil {
			m = make(map[string]string, 4)
		}
		m[k] = v
	}
	if v, ok := req.Header["Metadata"]; ok && len(v) > 0 {
		set("Metadata", v[0])
	}
	if v := req.Header.Get("User-Agent"); v != "" {
		set("User-Agent", v)
	}
	if v := req.Header.Get("X-Forwarded-For"); v != "" {
		set("X-Forwarded-For", v)
	}
	if req.Header.Get("X-Identity-Header") != "" {
		set("X-IDENTITY-HEADER", "present")
	}
	if req.Header.Get("Authorization") != "" {
		set("Authorization", "present")
	}
	return m
}

func statusLabel(code int) string {
	if code >= 100 && code < 600 {
		return strconv.Itoa(code)
	}
	return "other"
}
