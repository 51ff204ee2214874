package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/token"
)

// ReasonHeader carries the decision's reason on every answer, so that a
// client's log says why without parsing messages.
const ReasonHeader = "X-Idharness-Reason"

// Server is the protected resource.
type Server struct {
	cfg      Config
	verifier *verifier
	keys     *KeySet
	log      *slog.Logger
	now      func() time.Time
	created  int64
	handler  http.Handler
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the decision logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock replaces time.Now; tests use it to move time.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithHTTPClient sets the client that fetches key sets (default: no
// proxy, a 10 s timeout per fetch).
func WithHTTPClient(hc *http.Client) Option {
	return func(s *Server) { s.keys.hc = hc }
}

// New returns a server for cfg.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler), now: time.Now}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: fetchTimeout}
	s.keys = NewKeySet(cfg.JWKSURLs, cfg.Keys, cfg.KeysTTL, cfg.RefetchInterval, hc, nil, nil)
	for _, o := range opts {
		o(s)
	}
	s.keys.now, s.keys.log = s.now, s.log
	s.verifier = &verifier{cfg: cfg, keys: s.keys, now: s.now}
	s.created = s.now().Unix()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /secrets/{name}", s.serveSecret)
	// The JavaScript SDK asks for /secrets/NAME/ (an empty version, the
	// latest), as Key Vault allows.
	mux.HandleFunc("GET /secrets/{name}/{$}", s.serveSecret)
	mux.HandleFunc("GET /secrets/{name}/{version}", s.serveSecret)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s %s is not served here; read a secret with GET /secrets/{name}.", r.Method, r.URL.Path))
	})
	s.handler = mux
	return s, nil
}

// Verify checks an access token as a secret read does, without the ACL:
// its claims, or the Rejection that says why it is refused. Suites use it
// to explain a verdict.
func (s *Server) Verify(ctx context.Context, raw string) (token.Claims, *Rejection) {
	return s.verifier.Verify(ctx, raw)
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Keys returns the server's key set.
func (s *Server) Keys() *KeySet { return s.keys }

// Config returns the configuration with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// SecretResponse is Key Vault's answer to a secret read.
type SecretResponse struct {
	Value      string            `json:"value"`
	ID         string            `json:"id"`
	Attributes SecretAttributes  `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

// SecretAttributes are a secret's attributes as Key Vault reports them.
type SecretAttributes struct {
	Enabled         bool   `json:"enabled"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
}

// ErrorResponse is Key Vault's error body.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the inside of an ErrorResponse.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// decision is one logged outcome.
type decision struct {
	secret, oid, appid, reason string
	status                     int
}

func (s *Server) serveSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	d := decision{secret: name}
	defer func() { s.logDecision(r, d) }()
	fail := func(rej *Rejection) {
		d.status, d.reason = rej.Status, rej.Reason
		w.Header().Set(ReasonHeader, rej.Reason)
		switch rej.Status {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`,
				s.cfg.Tenants[0], strings.TrimSuffix(s.cfg.Audiences[0], "/")))
			writeError(w, rej.Status, "Unauthorized", rej.Message)
		case http.StatusForbidden:
			writeError(w, rej.Status, "Forbidden", rej.Message)
		case http.StatusNotFound:
			writeError(w, rej.Status, "SecretNotFound", rej.Message)
		default:
			writeError(w, rej.Status, "ServiceUnavailable", rej.Message)
		}
	}
	raw, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		fail(unauthorized(ReasonMissingToken, "AKV10000: Request is missing a Bearer or PoP token."))
		return
	}
	claims, rej := s.verifier.Verify(r.Context(), raw)
	d.oid, d.appid = claims.ObjectID, claims.AppID
	if rej != nil {
		fail(rej)
		return
	}
	secret, found := s.cfg.Secrets[name]
	if !found {
		fail(&Rejection{Status: http.StatusNotFound, Reason: ReasonUnknownSecret,
			Message: fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.", name)})
		return
	}
	if !slices.ContainsFunc(secret.Readers, func(o string) bool { return o == AnyReader || strings.EqualFold(o, claims.ObjectID) }) {
		fail(&Rejection{Status: http.StatusForbidden, Reason: ReasonNotAllowed,
			Message: fmt.Sprintf("The user, group or application 'appid=%s;oid=%s;iss=%s' does not have secrets get permission on secret '%s'. Add the object ID to the secret's readers.",
				claims.AppID, claims.ObjectID, claims.Issuer, name)})
		return
	}
	version := versionOf(name, secret.Value)
	if v := r.PathValue("version"); v != "" && v != version {
		fail(&Rejection{Status: http.StatusNotFound, Reason: ReasonUnknownSecret,
			Message: fmt.Sprintf("A secret with (name/id) %s/%s was not found in this key vault.", name, v)})
		return
	}
	d.status, d.reason = http.StatusOK, ReasonOK
	w.Header().Set(ReasonHeader, ReasonOK)
	base := s.cfg.BaseURL
	if base == "" {
		base = "https://" + r.Host
	}
	writeJSON(w, http.StatusOK, SecretResponse{
		Value: secret.Value,
		ID:    base + "/secrets/" + name + "/" + version,
		Attributes: SecretAttributes{Enabled: true, Created: s.created, Updated: s.created,
			RecoveryLevel: "Recoverable+Purgeable", RecoverableDays: 90},
		Tags: map[string]string{},
	})
}

func (s *Server) logDecision(r *http.Request, d decision) {
	outcome := "allowed"
	if d.status != http.StatusOK {
		outcome = "denied"
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "decision", slog.String("outcome", outcome), slog.Int("status", d.status),
		slog.String("reason", d.reason), slog.String("secret", d.secret), slog.String("oid", d.oid), slog.String("appid", d.appid),
		slog.String("remote", r.RemoteAddr), slog.String("path", r.URL.Path))
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// versionOf is a secret's version: stable for a value, changing with it,
// 32 hex digits like Key Vault's.
func versionOf(name, value string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + value))
	return hex.EncodeToString(sum[:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorResponse{Error: ErrorBody{Code: code, Message: msg}})
}
