package fakeimds

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
)

// minArcAPIVersion is the oldest API version the Arc endpoint accepts.
const minArcAPIVersion = "2019-11-01"

// arcChallenges keeps the secrets of outstanding Arc challenges. The real
// agent writes a fresh key file per challenge; a client proves it can read
// files only root (or the himds group) can, by sending the contents back.
//
// A secret on disk is a credential, so each file lives briefly: it goes
// once its secret is answered or when it expires (ttl), and a new server
// sweeps its directory of expired files a killed predecessor, which never
// ran cleanup, left behind.
type arcChallenges struct {
	dir string
	ttl time.Duration
	mu  sync.Mutex
	// live holds the challenges by file path; order lists the paths oldest
	// first, bounded so a client that never answers cannot fill the disk.
	live  map[string]*arcChallenge
	order []string
}

// arcChallenge is one outstanding challenge.
type arcChallenge struct {
	secret  string
	expires time.Time
	timer   *time.Timer // removes the file at expiry
}

const maxArcChallenges = 64

// arcChallengeTTL is how long a challenge file and its secret live. A
// client reads the file and answers at once; a minute leaves room for a
// latency fault on the answer.
const arcChallengeTTL = time.Minute

// arcFilePrefix starts the name of every challenge file: the prefix, 16
// hex digits and ".key" (clients accept only .key files). Sweeping touches
// names of exactly that shape, so a directory shared with the real Arc
// agent keeps the agent's files.
const arcFilePrefix = "idharness-"

var arcFileName = regexp.MustCompile(`^` + arcFilePrefix + `[0-9a-f]{16}\.key$`)

func newArcChallenges(dir string) *arcChallenges {
	a := &arcChallenges{dir: dir, ttl: arcChallengeTTL, live: map[string]*arcChallenge{}}
	a.sweep(time.Now())
	return a
}

// sweep removes the challenge files in the directory older than the
// lifetime: a predecessor's, killed before its cleanup ran. Younger ones
// stay, as another server sharing the directory may have clients
// answering them.
func (a *arcChallenges) sweep(now time.Time) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return // no directory yet (the first challenge makes it), or not ours to read
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !arcFileName.MatchString(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) >= a.ttl {
			_ = os.Remove(filepath.Join(a.dir, e.Name()))
		}
	}
}

// issue writes a new secret file and returns its path.
func (a *arcChallenges) issue() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("arc challenge secret: %w", err)
	}
	secret := hex.EncodeToString(b[:])
	var n [8]byte
	_, _ = rand.Read(n[:])
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return "", fmt.Errorf("arc secret dir %s: %w (set faces.arc.secretDir to a directory the server can write)", a.dir, err)
	}
	// Each challenge sweeps too, for the files of a predecessor that were
	// not yet expired when this server started.
	a.sweep(time.Now())
	path := filepath.Join(a.dir, arcFilePrefix+hex.EncodeToString(n[:])+".key")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", fmt.Errorf("write arc challenge: %w (set faces.arc.secretDir to a directory the server can write)", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &arcChallenge{secret: secret, expires: time.Now().Add(a.ttl)}
	c.timer = time.AfterFunc(a.ttl, func() { a.expire(path) })
	a.live[path] = c
	a.order = append(a.order, path)
	for len(a.order) > maxArcChallenges {
		a.dropLocked(a.order[0])
	}
	return path, nil
}

// valid reports whether secret answers an outstanding challenge. The
// challenge's file goes at once, its job done; the secret stays good until
// it expires, so that a client retrying its answer is not refused.
func (a *arcChallenges) valid(secret string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for path, c := range a.live {
		if subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) == 1 && now.Before(c.expires) {
			_ = os.Remove(path)
			return true
		}
	}
	return false
}

// expire forgets the challenge at path and removes its file.
func (a *arcChallenges) expire(path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked(path)
}

// dropLocked forgets the challenge at path and removes its file; a.mu is held.
func (a *arcChallenges) dropLocked(path string) {
	if c, ok := a.live[path]; ok {
		c.timer.Stop()
		delete(a.live, path)
	}
	a.order = slices.DeleteFunc(a.order, func(p string) bool { return p == path })
	_ = os.Remove(path)
}

// cleanup removes every challenge file.
func (a *arcChallenges) cleanup() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for path := range a.live {
		a.dropLocked(path)
	}
}

// serveArc implements the Azure Arc agent's token endpoint.
func (s *Server) serveArc(w http.ResponseWriter, req *http.Request) {
	// The Arc listener has no mux: without this every path would be the
	// token endpoint.
	if !exactPath(req, s.cfg.Faces.Arc.Path) {
		writeNotFound(w, req)
		return
	}
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeOAuthError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The requested resource does not support http method '"+req.Method+"'.")
		return
	}
	if !metadataHeaderOK(req) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	q, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed query string")
		return
	}
	if v := q.Get("api-version"); !supportedVersion(v, minArcAPIVersion) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", apiVersionProblem(v)+"; supported versions are "+minArcAPIVersion+" and later")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required audience parameter not specified")
		return
	}
	if msg := resourceTooLong(resource); msg != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	note(w).Resource = resource
	auth := req.Header.Get("Authorization")
	if auth == "" {
		path, err := s.arc.issue()
		if err != nil {
			s.log.Error("arc challenge", "err", err)
			writeOAuthError(w, http.StatusInternalServerError, "server_error", "Could not create the challenge file")
			return
		}
		w.Header().Set("Www-Authenticate", "Basic realm="+path)
		writeOAuthError(w, http.StatusUnauthorized, "unauthorized", "Authorization header is missing; read the file named in WWW-Authenticate and send its contents as Basic credentials")
		return
	}
	secret, ok := strings.CutPrefix(auth, "Basic ")
	if !ok || !s.arc.valid(strings.TrimSpace(secret)) {
		writeOAuthError(w, http.StatusUnauthorized, "unauthorized", "The secret in the Authorization header does not match a challenge")
		return
	}
	sel, err := parseSelector(q, selectorParams)
	if err != nil || sel.Kind != identity.ByDefault {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Azure Arc supports only the system-assigned identity")
		return
	}
	id, ok := s.resolve(w, sel)
	if !ok {
		return
	}
	tok, ok := s.issue(w, id, resource, s.minter.Now())
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.imdsBody(tok, resource, id.ClientID))
}
