package fakeimds

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/idharness/idharness/fakeimds/token"
)

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// OAuthError is the error body of the IMDS, Arc and authority endpoints.
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	// NewestVersions lists supported API versions when the version was wrong.
	NewestVersions []string `json:"newest-versions,omitempty"`
}

// writeOAuthError answers with the {"error","error_description"} body real
// IMDS uses, and records the code in the journal.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	note(w).Error = code
	writeJSON(w, status, OAuthError{Error: code, Description: desc})
}

// unixString formats t as IMDS does: decimal seconds since the epoch, as a JSON string.
func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// newCorrelationID returns a random GUID for error bodies that carry one.
func newCorrelationID() string { return uuid.NewString() }

// jsonContentType is writeJSON's Content-Type, shared: net/http only
// reads header values.
var jsonContentType = []string{"application/json; charset=utf-8"}

// encodedIMDS is a cached token's IMDS body, encoded once per token. Only
// expires_in and ext_expires_in change with the clock, so a new second's
// body is the last one with those digits replaced: one body per cached
// token is kept, no more (the cache holds at most
// token.DefaultCacheCapacity tokens, so these stay bounded too).
type encodedIMDS struct {
	resource, clientID string // what the body says, checked on use
	cur                atomic.Pointer[secondBody]
}

// secondBody is the body as it reads during one second of the clock.
type secondBody struct {
	sec      int64 // now.Unix()
	body     []byte
	length   []string // Content-Length
	in, ext  int      // offsets of the expires_in and ext_expires_in digits
	digits   int      // how many digits each has
	expireIn int64
}

// newEncodedIMDS encodes imdsBody's JSON for tok at now with json.Marshal
// itself, so that the bytes are exactly what writeJSON(imdsBody(…))
// writes, escaping included (TestIMDSBodyBytes checks it), and finds the
// two expires_in values in it.
func newEncodedIMDS(tok token.Token, resource, clientID string, now time.Time) (*encodedIMDS, error) {
	in := tok.ExpiresIn(now)
	digits := strconv.FormatInt(in, 10)
	b, err := json.Marshal(IMDSToken{AccessToken: tok.Raw, ExpiresIn: digits, ExpiresOn: unixString(tok.ExpiresOn),
		ExtExpiresIn: digits, NotBefore: unixString(tok.NotBefore), Resource: resource, TokenType: "Bearer", ClientID: clientID})
	if err != nil {
		return nil, err
	}
	// `,"` never occurs inside an encoded string (its quotes are
	// escaped), so each key is found only where the encoder wrote it.
	inKey, extKey := []byte(`,"expires_in":"`), []byte(`,"ext_expires_in":"`)
	i := bytes.Index(b, inKey)
	x := bytes.Index(b, extKey)
	if i < 0 || x < i {
		return nil, errors.New("encode token body: expires_in not found")
	}
	e := &encodedIMDS{resource: resource, clientID: clientID}
	e.cur.Store(&secondBody{sec: now.Unix(), body: b, length: []string{strconv.Itoa(len(b))},
		in: i + len(inKey), ext: x + len(extKey), digits: len(digits), expireIn: in})
	return e, nil
}

// at returns the body at now.
func (e *encodedIMDS) at(tok token.Token, now time.Time) *secondBody {
	sec := now.Unix()
	c := e.cur.Load()
	if c.sec == sec {
		return c
	}
	n := tok.ExpiresIn(now)
	if n == c.expireIn {
		// Expired (0 either way): the same bytes, for the new second.
		next := *c
		next.sec = sec
		e.cur.Store(&next)
		return &next
	}
	in := strconv.AppendInt(make([]byte, 0, 20), n, 10)
	d := len(in) - c.digits
	body := make([]byte, 0, len(c.body)+2*d)
	body = append(body, c.body[:c.in]...)
	body = append(body, in...)
	body = append(body, c.body[c.in+c.digits:c.ext]...)
	body = append(body, in...)
	body = append(body, c.body[c.ext+c.digits:]...)
	next := &secondBody{sec: sec, body: body, length: c.length, in: c.in, ext: c.ext + d, digits: len(in), expireIn: n}
	if d != 0 {
		next.length = []string{strconv.Itoa(len(body))}
	}
	e.cur.Store(next)
	return next
}

// writeIMDSBody answers 200 with the IMDS body for tok, exactly as
// writeJSON(w, 200, s.imdsBody(tok, resource, clientID)) does. A token
// served from the cache has its body encoded once (and its expires_in
// once a second) and kept in the token's memo: JSON-encoding the 1.3 KB
// token per request was the largest single cost of the cached path. A
// token just minted is encoded as before: most are asked for again, but
// one asked for once (a resource never repeated) keeps no body.
func (s *Server) writeIMDSBody(w http.ResponseWriter, tok token.Token, resource, clientID string) {
	s.writeIMDSBodyAt(w, tok, resource, clientID, s.minter.Now())
}

// writeIMDSBodyAt is writeIMDSBody with the minter's clock read by the
// caller, who read it for the token already.
func (s *Server) writeIMDSBodyAt(w http.ResponseWriter, tok token.Token, resource, clientID string, now time.Time) {
	memo := tok.Memo()
	if memo == nil || !tok.Cached {
		writeJSON(w, http.StatusOK, s.imdsBodyAt(tok, resource, clientID, now))
		return
	}
	var c *secondBody
	if e, _ := memo.Load().(*encodedIMDS); e != nil && e.resource == resource && e.clientID == clientID {
		c = e.at(tok, now)
	} else {
		e, err := newEncodedIMDS(tok, resource, clientID, now)
		if err != nil {
			http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
			return
		}
		memo.Store(e)
		c = e.cur.Load()
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = c.length
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.body)
}
