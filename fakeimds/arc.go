package fakeimds

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/idharness/idharness/fakeimds/identity"
)

// minArcAPIVersion is the oldest API version the Arc endpoint accepts.
const minArcAPIVersion = "2019-11-01"

// arcChallenges keeps the secrets of outstanding Arc challenges. The real
// agent writes a fresh key file per challenge; a client proves it can read
// files only root (or the himds group) can, by sending the contents back.
type arcChallenges struct {
	dir string
	mu  sync.Mutex
	// secrets by file path, oldest first, bounded so a client that never
	// answers cannot fill the disk.
	paths   []string
	secrets map[string]string
}

const maxArcChallenges = 64

func newArcChallenges(dir string) *arcChallenges {
	return &arcChallenges{dir: dir, secrets: map[string]string{}}
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
		return "", fmt.Errorf("arc secret dir: %w", err)
	}
	path := filepath.Join(a.dir, hex.EncodeToString(n[:])+".key")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", fmt.Errorf("write arc challenge: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paths = append(a.paths, path)
	a.secrets[path] = secret
	for len(a.paths) > maxArcChallenges {
		old := a.paths[0]
		a.paths = a.paths[1:]
		delete(a.secrets, old)
		_ = os.Remove(old)
	}
	return path, nil
}

// valid reports whether secret answers an outstanding challenge.
func (a *arcChallenges) valid(secret string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.secrets {
		if s == secret {
			return true
		}
	}
	return false
}

// cleanup removes every challenge file.
func (a *arcChallenges) cleanup() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.paths {
		_ = os.Remove(p)
	}
	a.paths, a.secrets = nil, map[string]string{}
}

// serveArc implements the Azure Arc agent's token endpoint.
func (s *Server) serveArc(w http.ResponseWriter, req *http.Request) {
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
	if v := q.Get("api-version"); !versionAtLeast(v, minArcAPIVersion) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", apiVersionProblem(v)+"; supported versions are "+minArcAPIVersion+" and later")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required audience parameter not specified")
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
	tok, ok := s.issue(w, id, resource)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.imdsBody(tok, resource, id.ClientID))
}
