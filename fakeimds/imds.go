package fakeimds

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/token"
)

// IMDSTokenPath is where IMDS serves managed identity tokens.
const IMDSTokenPath = "/metadata/identity/oauth2/token"

// minTokenAPIVersion is the oldest API version the token endpoint accepts.
const minTokenAPIVersion = "2018-02-01"

// maxResourceBytes bounds the resource a token is asked for. Resources are
// URIs (https://vault.azure.net) or GUIDs, well under this; the bound
// keeps a caller from filling the token cache and journal with megabytes.
const maxResourceBytes = 2 << 10

// IMDSToken is the 200 body of the IMDS token endpoint. Every value is a
// JSON string, as the real service sends them; clients depend on it.
type IMDSToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
	ClientID     string `json:"client_id"`
}

// selectorParams maps each query parameter that names an identity to its kind.
var selectorParams = []struct {
	name string
	kind identity.Kind
}{
	{"client_id", identity.ByClientID},
	{"object_id", identity.ByObjectID},
	{"msi_res_id", identity.ByResourceID},
	{"mi_res_id", identity.ByResourceID},
}

// parseSelector reads the identity selector from q using params. A
// selector parameter sent twice, or two different ones, is refused rather
// than one of them picked: which identity the client meant is a guess, and
// a fake that guesses hides the client's bug. Presence counts, so an empty
// selector beside another is refused too; an empty one alone means none.
func parseSelector(q url.Values, params []struct {
	name string
	kind identity.Kind
}) (identity.Selector, error) {
	return parseSelectorFrom(&query{full: q}, params)
}

// parseSelectorFrom is parseSelector for a query.
func parseSelectorFrom(q *query, params []struct {
	name string
	kind identity.Kind
}) (identity.Selector, error) {
	var sel identity.Selector
	var names []string
	for _, p := range params {
		v, n := q.lookup(p.name)
		if n == 0 {
			continue
		}
		if n > 1 {
			return identity.Selector{}, fmt.Errorf("The parameter %s is specified %d times in the token request; specify it once", p.name, n)
		}
		names = append(names, p.name)
		if v != "" {
			sel = identity.Selector{Kind: p.kind, Value: v}
		}
	}
	if len(names) > 1 {
		return identity.Selector{}, errors.New("Only one of " + strings.Join(names, ", ") + " may be specified in the token request")
	}
	return sel, nil
}

// metadataHeaderOK reports whether the SSRF guard header is right.
func metadataHeaderOK(req *http.Request) bool {
	v := req.Header["Metadata"]
	return len(v) > 0 && strings.EqualFold(v[0], "true")
}

// forwardedFor reports whether req carries X-Forwarded-For at all, with
// any value, empty included, on any of its lines: real IMDS refuses every
// such request, and checking only the first value let an empty line
// before a real one through.
func forwardedFor(req *http.Request) bool {
	// Indexed with the canonical key rather than through Values, which
	// canonicalises its argument on every call: the same lines.
	return len(req.Header["X-Forwarded-For"]) > 0
}

// resourceTooLong returns the refusal of a resource over maxResourceBytes,
// or "" for one within it.
func resourceTooLong(resource string) string {
	if len(resource) <= maxResourceBytes {
		return ""
	}
	return fmt.Sprintf("The resource parameter is %d bytes long; send the resource's URI, at most %d bytes", len(resource), maxResourceBytes)
}

// exactPath reports whether req's path, as sent (escapes and all), is
// endpoint or endpoint + "/" (the JS SDK adds the slash). Real IMDS serves
// its token endpoint at exactly that spelling; sub-paths, escaped letters
// or slashes, dot segments and doubled slashes get 404, and so must they
// here, or a client that sends them would pass against the fake and fail
// against Azure.
func exactPath(req *http.Request, endpoint string) bool {
	if endpoint == IMDSTokenPath && isTokenPath(req.URL) {
		return true
	}
	p := req.URL.EscapedPath()
	if endpoint == IMDSTokenPath {
		// The token endpoint's spelling needs no escaping: compare
		// without building it per request.
		return p == IMDSTokenPath || len(p) == len(IMDSTokenPath)+1 && p[len(p)-1] == '/' && p[:len(IMDSTokenPath)] == IMDSTokenPath
	}
	want := (&url.URL{Path: endpoint}).EscapedPath()
	return p == want || p == want+"/"
}

// writeNotFound answers as the IMDS endpoint does for a path it does not
// serve.
func writeNotFound(w http.ResponseWriter, _ *http.Request) {
	writeInstanceError(w, http.StatusNotFound, "Not found", false)
}

// canonicalPaths answers 404, as real IMDS does, to a request whose path is
// not in canonical form (doubled slashes, "." or ".." segments) instead of
// passing it to next. Go's ServeMux would redirect such a request to the
// cleaned path, and a client following the redirect would get a token
// for a spelling Azure refuses. face names the listener in the journal.
func (s *Server) canonicalPaths(face string, next http.Handler) http.Handler {
	notFound := s.record(face, http.HandlerFunc(writeNotFound))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if isTokenPath(req.URL) {
			// Canonical, and the commonest path by far: cleanPath
			// and EscapedPath were a tenth of the cached token
			// path's handler time.
			next.ServeHTTP(w, req)
			return
		}
		if p := req.URL.EscapedPath(); p != cleanPath(p) {
			notFound.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// isTokenPath reports whether u's path, as sent, is exactly
// IMDSTokenPath: sent unescaped (RawPath is set only when the escapes
// sent differ from Path's default encoding) and spelling the constant,
// which is canonical and needs no escaping, so that u.EscapedPath() is
// IMDSTokenPath too. It is a string comparison, not the escaping and
// cleaning that any other path needs.
func isTokenPath(u *url.URL) bool { return u.RawPath == "" && u.Path == IMDSTokenPath }

// cleanPath is ServeMux's canonical form of p: rooted, without empty, "."
// or ".." segments, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// serveIMDSToken implements GET /metadata/identity/oauth2/token.
func (s *Server) serveIMDSToken(w http.ResponseWriter, req *http.Request) {
	if !exactPath(req, IMDSTokenPath) {
		writeNotFound(w, req)
		return
	}
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeOAuthError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The requested resource does not support http method '"+req.Method+"'.")
		return
	}
	if forwardedFor(req) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Request contains the X-Forwarded-For header; requests through a proxy are refused")
		return
	}
	if !metadataHeaderOK(req) {
		writeOAuthError(w, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified")
		return
	}
	iq, err := s.unescaped.imdsQueryOf(req.URL.RawQuery)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed query string")
		return
	}
	if v := iq.version; !iq.versionOK {
		note(w).Error = "invalid_request"
		writeJSON(w, http.StatusBadRequest, OAuthError{
			Error:          "invalid_request",
			Description:    apiVersionProblem(v) + "; supported versions are " + minTokenAPIVersion + " and later, e.g. " + strings.Join(newestVersions(), ", "),
			NewestVersions: newestVersions(),
		})
		return
	}
	resource := iq.resource
	if resource == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required audience parameter not specified")
		return
	}
	if msg := resourceTooLong(resource); msg != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	note(w).Resource = resource
	if iq.selErr != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", iq.selErr.Error())
		return
	}
	sel := iq.sel
	fx := effectsOf(w)
	if a := iq.answer.Load(); a != nil && fx == nil && a.identities == s.store.Generation() && a.cache == s.minter.CacheGeneration() {
		// One reading of the clock for the token and its expires_in.
		now := s.minter.Now()
		if s.minter.Fresh(a.tok, now) {
			e := note(w)
			e.Selector, e.Identity, e.IdentityName, e.Cached = a.selector, a.id.ClientID, a.id.Name, true
			s.writeIMDSBodyAt(w, a.tok, resource, a.id.ClientID, now)
			return
		}
	}
	// Read before resolving and issuing: a change while they run leaves
	// the answer kept below out of date, never one kept as current.
	identities, cache := s.store.Generation(), s.minter.CacheGeneration()
	id, ok := s.resolve(w, sel)
	if !ok {
		return
	}
	now := s.minter.Now()
	tok, ok := s.issue(w, id, resource, now)
	if !ok {
		return
	}
	if tok.Cached && fx == nil && iq.kept {
		iq.answer.Store(&imdsAnswer{identities: identities, cache: cache, selector: sel.String(), id: id, tok: tok})
	}
	s.writeIMDSBodyAt(w, tok, resource, id.ClientID, now)
}

// imdsAnswer is the identity and cached token a kept query was answered
// with, and the generations of the identities and the token cache then.
// While both are the same and the token is fresh, resolve and issue
// would give the same identity and token again, and the cache's order
// would not change (token.Minter.CacheGeneration): the token endpoint
// answers with them and journals the request as it would have. Resolving
// the selector and looking the token up were about 1,000 instructions of
// a cached token request (docs/performance.md). Faults that change the
// token (clock skew, wrong identity) never use or keep one.
type imdsAnswer struct {
	identities, cache uint64
	selector          string // sel.String()
	id                identity.Identity
	tok               token.Token
}

// imdsQuery is what the IMDS token endpoint reads from its query; it
// checks it in the order of the fields.
type imdsQuery struct {
	version   string
	versionOK bool // version is supported
	resource  string
	sel       identity.Selector
	selErr    error // the selector parameters are refused
	// kept: in the query cache, where answer is kept for the next
	// request with the same query.
	kept   bool
	answer atomic.Pointer[imdsAnswer]
}

// readIMDSQuery reads q for the IMDS token endpoint.
func readIMDSQuery(q *query) *imdsQuery {
	iq := &imdsQuery{version: q.Get("api-version"), resource: q.Get("resource")}
	iq.versionOK = supportedVersion(iq.version, minTokenAPIVersion)
	iq.sel, iq.selErr = parseSelectorFrom(q, selectorParams)
	return iq
}

// imdsBody is the 200 body of the IMDS and Arc token endpoints.
func (s *Server) imdsBody(tok token.Token, resource, clientID string) IMDSToken {
	return s.imdsBodyAt(tok, resource, clientID, s.minter.Now())
}

// imdsBodyAt is imdsBody at now, the minter's clock read by the caller.
func (s *Server) imdsBodyAt(tok token.Token, resource, clientID string, now time.Time) IMDSToken {
	in := strconv.FormatInt(tok.ExpiresIn(now), 10)
	return IMDSToken{
		AccessToken:  tok.Raw,
		RefreshToken: "",
		ExpiresIn:    in,
		ExpiresOn:    unixString(tok.ExpiresOn),
		ExtExpiresIn: in,
		NotBefore:    unixString(tok.NotBefore),
		Resource:     resource,
		TokenType:    "Bearer",
		ClientID:     clientID,
	}
}

func apiVersionProblem(v string) string {
	if v == "" {
		return "Required query variable 'api-version' is missing"
	}
	return "Unsupported api-version '" + v + "'"
}

// resolve finds the identity sel names, answering the request itself with
// the real service's error when there is none.
func (s *Server) resolve(w http.ResponseWriter, sel identity.Selector) (identity.Identity, bool) {
	id, err := s.store.Resolve(sel)
	switch {
	case err == nil:
		noteIdentity(w, sel, id)
		return id, true
	case errors.Is(err, identity.ErrAmbiguous):
		note(w).Selector = sel.String()
		writeOAuthError(w, http.StatusBadRequest, "invalid_request",
			"Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request")
	default:
		note(w).Selector = sel.String()
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
	}
	return identity.Identity{}, false
}

// issue gets a token for id at now (the minter's clock), answering 500
// if signing fails.
func (s *Server) issue(w http.ResponseWriter, id identity.Identity, resource string, now time.Time) (token.Token, bool) {
	tok, err := s.tokenFor(w, id, resource, now)
	if err != nil {
		s.log.Error("mint token", "identity", id.Name, "err", err)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "Failed to mint a token")
		return token.Token{}, false
	}
	return tok, true
}

// tokenFor returns the token every face hands out for id and resource:
// from the cache, or newly minted, or — when a fault says so — minted
// skewed, expired or for another identity. It notes cache hits in the
// journal and counts signatures. now is the minter's clock, read by the
// caller.
func (s *Server) tokenFor(w http.ResponseWriter, id identity.Identity, resource string, now time.Time) (token.Token, error) {
	var tok token.Token
	var err error
	if fx := effectsOf(w); fx != nil && (fx.Shift != nil || fx.WrongIdentity) {
		tok, _, err = s.mintFor(fx, id, resource)
	} else {
		tok, err = s.minter.IssueAt(id, resource, now)
	}
	if err != nil {
		return token.Token{}, err
	}
	if tok.Cached {
		note(w).Cached = true
	} else {
		s.metrics.minted.Inc()
	}
	return tok, nil
}
