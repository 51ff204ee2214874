package fakeimds

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/routes"
)

// The faces, as named in the journal, metrics and rules: the route
// table's names (fakeimds/routes), which the fault engine matches too.
const (
	FaceIMDS       = routes.FaceIMDS
	FaceInstance   = routes.FaceInstance
	FaceAppService = routes.FaceAppService
	FaceArc        = routes.FaceArc
	FaceAuthority  = routes.FaceAuthority
)

// recorder wraps a face's ResponseWriter to capture the status and what
// the handler learnt (identity, resource, error code) for the journal.
type recorder struct {
	http.ResponseWriter
	status  int
	entry   journal.Entry
	written bool
	aborted bool
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

// entryHolder is a ResponseWriter that carries the request's journal entry.
type entryHolder interface {
	journalEntry() *journal.Entry
}

func (r *recorder) journalEntry() *journal.Entry { return &r.entry }

// note returns the journal entry a face fills in for w, or a throwaway one
// when w was not wrapped (handlers called directly in tests).
func note(w http.ResponseWriter) *journal.Entry {
	if h, ok := w.(entryHolder); ok {
		return h.journalEntry()
	}
	return &journal.Entry{}
}

func noteIdentity(w http.ResponseWriter, sel identity.Selector, id identity.Identity) {
	e := note(w)
	e.Selector = sel.String()
	e.Identity = id.ClientID
	e.IdentityName = id.Name
}

// maxBodyBytes bounds the request body any face reads. Only the
// authority reads one, a token request form of a few KiB.
const maxBodyBytes = maxFormBytes

// record wraps a face's handler so each request passes throttling and the
// fault rules, and is journaled and counted.
func (s *Server) record(face string, h http.Handler) http.Handler {
	fm := s.metrics.forFace(face)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Bound the body here, before anything reads it: the fault rules'
		// matcher parses the authority's form before the authority does,
		// and ParseForm alone allows 10 MB. w is net/http's own writer,
		// so an overlong body also closes the connection.
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(w, req.Body, maxBodyBytes)
		}
		start := time.Now()
		rec := s.recorders.Get().(*recorder)
		rec.ResponseWriter = w
		rec.entry.Face = face
		defer func() {
			// A fault that aborts the connection panics with
			// ErrAbortHandler; record the request before net/http
			// handles the panic. The recorder is not reused then.
			if p := recover(); p != nil {
				s.finish(fm, rec, req, start)
				panic(p)
			}
		}()
		s.serveFaulty(face, h, rec, req)
		s.finish(fm, rec, req, start)
		// Reused: a handler must not use its ResponseWriter once it has
		// returned (net/http's rule too), and finish has copied the entry
		// into the journal. The recorder with its entry was the cached
		// token path's largest allocation.
		*rec = recorder{}
		s.recorders.Put(rec)
	})
}

// finish records a served request in the journal and metrics.
// A request whose connection a fault aborted (or whose client gave up
// first) is recorded with status 0.
func (s *Server) finish(fm *faceMetrics, rec *recorder, req *http.Request, start time.Time) {
	if !rec.written && !rec.aborted {
		rec.status = http.StatusOK
	}
	elapsed := time.Since(start)
	// Filled in place and appended without a copy: the recorder is
	// reset or dropped after.
	e := &rec.entry
	e.Time = start
	e.Remote = req.RemoteAddr
	e.Method = req.Method
	e.Path = req.URL.Path
	e.Query = req.URL.RawQuery
	e.Headers = s.headers.of(req)
	e.Status = rec.status
	// Set by the fake itself (a throttle rule or the limiter), so short.
	// Indexed with the canonical key, as Get would after canonicalising
	// it, which it does on every call.
	e.RetryAfter = first(rec.Header()["Retry-After"])
	e.LatencyMS = float64(elapsed.Microseconds()) / 1000
	s.journal.Append(e)
	fm.observe(rec.status, e.IdentityName, elapsed)
}

// markAborted records that w's request got no response, and why.
func markAborted(w http.ResponseWriter, why string) {
	if r, ok := w.(*recorder); ok {
		r.aborted = true
	}
	note(w).Error = why
}

// headerKey is what interestingHeaders records of a request, as a
// comparable value.
type headerKey struct {
	metadata, userAgent, forwardedFor                           string
	hasMetadata, hasForwardedFor, identityHeader, authorization bool
}

func headerKeyOf(req *http.Request) headerKey {
	if len(req.Header) <= smallHeader {
		return headerKeyOfSmall(req.Header)
	}
	return headerKeyOfLookup(req.Header)
}

// headerKeyOfLookup is headerKeyOf by looking up each header it records.
func headerKeyOfLookup(h http.Header) headerKey {
	var k headerKey
	if v, ok := h["Metadata"]; ok && len(v) > 0 {
		k.metadata, k.hasMetadata = v[0], true
	}
	// Indexed with the canonical keys rather than through Get, which
	// canonicalises its argument on every call: the same values.
	k.userAgent = first(h["User-Agent"])
	k.forwardedFor, k.hasForwardedFor = forwardedKey(h["X-Forwarded-For"])
	k.identityHeader = first(h["X-Identity-Header"]) != ""
	k.authorization = first(h["Authorization"]) != ""
	return k
}

// smallHeader is how many header lines a request may have for
// headerKeyOf to range over them rather than look up each of the five it
// records: clients send two or three (Host is not among them), and
// ranging over those cost less than five lookups.
const smallHeader = 5

// headerKeyOfSmall is headerKeyOfLookup by ranging over h: the same key,
// since each name occurs once in h.
func headerKeyOfSmall(h http.Header) headerKey {
	var k headerKey
	for name, v := range h {
		switch name {
		case "Metadata":
			if len(v) > 0 {
				k.metadata, k.hasMetadata = v[0], true
			}
		case "User-Agent":
			k.userAgent = first(v)
		case "X-Forwarded-For":
			k.forwardedFor, k.hasForwardedFor = forwardedKey(v)
		case "X-Identity-Header":
			k.identityHeader = first(v) != ""
		case "Authorization":
			k.authorization = first(v) != ""
		}
	}
	return k
}

// forwardedKey is what the journal records of X-Forwarded-For's lines:
// all of them, joined, and whether there were any.
func forwardedKey(v []string) (string, bool) {
	switch len(v) {
	case 0:
		return "", false
	case 1:
		return v[0], true
	}
	return strings.Join(v, ", "), true
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// Bounds of the header interner: a client that varies its headers gets a
// map per request, as before, once the table is full.
const (
	maxInternedHeaders = 256
	maxInternedBytes   = 512 // of header values per map
)

// headerInterner hands out the journal's header maps. A client sends the
// same headers on every request, so its entries share one map instead of
// allocating one each: the map and its strings were a good part of the
// garbage a cached token made. Journal entries' maps are read-only (the
// journal clones one before truncating it), so sharing is safe.
type headerInterner struct {
	maps sync.Map // headerKey → *internedHeaders
	n    atomic.Int32
	// last is the map handed out last: compared before the table is
	// hashed, since one client's requests tend to come in runs.
	last atomic.Pointer[internedHeaders]
}

type internedHeaders struct {
	key headerKey
	m   map[string]string
}

// of returns interestingHeaders(req), shared with earlier requests that
// sent the same headers.
func (hi *headerInterner) of(req *http.Request) map[string]string {
	k := headerKeyOf(req)
	if l := hi.last.Load(); l != nil && l.key == k {
		return l.m
	}
	if v, ok := hi.maps.Load(k); ok {
		l := v.(*internedHeaders)
		hi.last.Store(l)
		return l.m
	}
	m := interestingHeaders(req)
	if len(k.metadata)+len(k.userAgent)+len(k.forwardedFor) <= maxInternedBytes && hi.n.Load() < maxInternedHeaders {
		if _, loaded := hi.maps.LoadOrStore(k, &internedHeaders{k, m}); !loaded {
			hi.n.Add(1)
		}
	}
	return m
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
	// Every line, empty ones too: the faces refuse the header's mere
	// presence, and the journal shows what they refused.
	if v := req.Header.Values("X-Forwarded-For"); len(v) > 0 {
		set("X-Forwarded-For", strings.Join(v, ", "))
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
