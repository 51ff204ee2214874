package fakeimds

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/token"
)

// Server is a fake metadata service with its faces, identities, token
// minter, journal and control API.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	store   *identity.Store
	minter  *token.Minter
	journal *journal.Journal
	metrics *metrics
	headers headerInterner
	arc     *arcChallenges
	auth    *authority
	engine  *chaos.Engine
	limiter *chaos.Limiter

	imdsHandler     http.Handler
	servicesHandler http.Handler
	controlHandler  http.Handler
	arcHandler      http.Handler

	now        func() time.Time
	signingKey *rsa.PrivateKey
	journalCap int

	// recorders are record's ResponseWriters, reused across requests.
	recorders sync.Pool
	// unescaped keeps the token requests' unescaped resources (query.go).
	unescaped *unescapeCache
	// headerTimeout and idleTimeout are every listener's
	// http.Server ReadHeaderTimeout and IdleTimeout; tests shorten them.
	headerTimeout, idleTimeout time.Duration
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock replaces time.Now for token times; tests use it.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithSigningKey signs tokens with key instead of the configured or a
// generated one.
func WithSigningKey(key *rsa.PrivateKey) Option { return func(s *Server) { s.signingKey = key } }

// WithJournalCapacity sets how many requests the journal keeps.
func WithJournalCapacity(n int) Option { return func(s *Server) { s.journalCap = n } }

// New validates cfg and builds a server ready to serve; it opens no
// listener (Run does).
func New(cfg config.Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	s := &Server{cfg: cfg, log: slog.Default(), now: time.Now, journalCap: journal.DefaultCapacity, unescaped: newUnescapeCache(),
		headerTimeout: headerTimeout, idleTimeout: idleTimeout}
	s.recorders.New = func() any { return new(recorder) }
	for _, o := range opts {
		o(s)
	}
	key := s.signingKey
	var err error
	if key == nil && cfg.Tokens.SigningKeyFile != "" {
		if key, err = token.LoadKeyFile(cfg.Tokens.SigningKeyFile); err != nil {
			return nil, err
		}
	}
	if key == nil {
		if key, err = token.GenerateKey(); err != nil {
			return nil, err
		}
	}
	signer, err := token.NewSigner(key)
	if err != nil {
		return nil, err
	}
	s.minter = token.NewMinter(signer, cfg.TenantID, token.WithClock(s.now))
	sys, users := cfg.Identities()
	if s.store, err = identity.NewStore(sys, users); err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	s.applyTokenSettings()
	seed := cfg.Chaos.Seed
	if seed == 0 {
		seed = rand.Int64N(1<<53) + 1
	}
	s.engine = chaos.NewEngine(seed, s.now)
	if err := s.engine.Add(cfg.Chaos.Faults...); err != nil {
		return nil, fmt.Errorf("chaos.faults: %w", err)
	}
	s.limiter = chaos.NewLimiter(cfg.Chaos.Throttle, s.now)
	s.journal = journal.New(s.journalCap)
	s.metrics = newMetrics()
	s.arc = newArcChallenges(cfg.Faces.Arc.SecretDir)
	if cfg.Faces.Authority.On() {
		if s.auth, err = newAuthority(cfg.Faces.Authority, s.log); err != nil {
			return nil, err
		}
	}
	tok, err := loadControlToken(cfg.Listen.ControlTokenFile)
	if err != nil {
		return nil, err
	}
	// canonicalPaths answers "//", "/./" and "/../" paths with IMDS's 404
	// before the mux can redirect them to a cleaned path that a client
	// following redirects would then get a token from.
	mux, tokenHandler := s.buildIMDSMux(cfg.Listen.Services == "")
	s.imdsHandler = tokenFirst(tokenHandler, s.canonicalPaths(FaceIMDS, mux))
	s.servicesHandler = s.canonicalPaths(FaceAppService, s.buildServicesMux())
	s.controlHandler = controlGuard{token: tok, next: s.buildControlMux()}
	s.arcHandler = s.record(FaceArc, http.HandlerFunc(s.serveArc))
	return s, nil
}

func (s *Server) applyTokenSettings() {
	s.minter.SetLifetime(s.cfg.Tokens.Lifetime.Duration)
	s.minter.SetCache(s.cfg.Tokens.CacheOn(), s.cfg.Tokens.RefreshBefore.Duration)
}

// buildIMDSMux serves the metadata faces, and with services the App
// Service and authority faces too (one listener, as for local use). It
// returns the mux and the token endpoint's handler (nil when the IMDS
// face is off).
func (s *Server) buildIMDSMux(services bool) (mux *http.ServeMux, tokenHandler http.Handler) {
	mux = http.NewServeMux()
	f := s.cfg.Faces
	if f.IMDS.On() {
		h := s.record(FaceIMDS, http.HandlerFunc(s.serveIMDSToken))
		tokenHandler = h
		mux.Handle(IMDSTokenPath, h)
		// The JS SDK, redirected with AZURE_POD_IDENTITY_AUTHORITY_HOST, adds a trailing slash.
		mux.Handle(IMDSTokenPath+"/", h)
	}
	if f.Instance.On() {
		h := s.record(FaceInstance, http.HandlerFunc(s.serveInstance))
		mux.Handle(InstancePath, h)
		mux.Handle(InstancePath+"/", h)
		mux.Handle(VersionsPath, s.record(FaceInstance, http.HandlerFunc(s.serveVersions)))
	}
	if services {
		s.mountServices(mux)
	}
	mux.Handle("/", s.record(FaceIMDS, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeInstanceError(w, http.StatusNotFound, "Not found", false)
	})))
	return mux, tokenHandler
}

// tokenFirst sends a GET of exactly the token path, sent unescaped, to
// token (when not nil) before anything else, and every other request to
// next. ServeMux's matching allocated twice per request and was a tenth
// of the cached token path's handler time, and each handler passed on the
// way cost a dispatch. The mux would choose the same handler: its patterns
// are all host-less, and this one is a literal path, which canonicalPaths
// passes unchanged.
func tokenFirst(token, next http.Handler) http.Handler {
	if token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && isTokenPath(req.URL) {
			token.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// buildServicesMux serves the App Service and authority faces alone: the
// services listener and the authority's HTTPS listener, which any pod may
// reach, must never hand out the metadata faces' tokens.
func (s *Server) buildServicesMux() http.Handler {
	mux := http.NewServeMux()
	s.mountServices(mux)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	}))
	return mux
}

// mountServices mounts the App Service and authority faces.
func (s *Server) mountServices(mux *http.ServeMux) {
	if s.cfg.Faces.AppService.On() {
		mux.Handle(s.cfg.Faces.AppService.Path, s.record(FaceAppService, http.HandlerFunc(s.serveAppService)))
	}
	if s.auth != nil {
		s.mountAuthority(mux)
	}
}

// IMDSHandler serves the metadata faces, and the App Service and
// authority faces unless listen.services is set.
func (s *Server) IMDSHandler() http.Handler { return s.imdsHandler }

// ServicesHandler serves the App Service and authority faces only.
func (s *Server) ServicesHandler() http.Handler { return s.servicesHandler }

// ControlHandler serves the control API and /metrics.
func (s *Server) ControlHandler() http.Handler { return s.controlHandler }

// ArcHandler serves the Azure Arc endpoint.
func (s *Server) ArcHandler() http.Handler { return s.arcHandler }

// Store returns the identity store.
func (s *Server) Store() *identity.Store { return s.store }

// Minter returns the token minter.
func (s *Server) Minter() *token.Minter { return s.minter }

// Journal returns the request journal.
func (s *Server) Journal() *journal.Journal { return s.journal }

// Config returns the configuration the server started with.
func (s *Server) Config() config.Config { return s.cfg }

// Addrs are the addresses the server listens on once running; empty for
// a listener that is off.
type Addrs struct {
	IMDS, Services, Control, Arc, AuthorityTLS string
}

// shutdownGrace is how long in-flight requests get at shutdown. It must
// stay well inside the DaemonSet's terminationGracePeriodSeconds, so that
// fakeimds removes the metadata address itself before the kubelet kills it.
const shutdownGrace = 3 * time.Second

// Server limits on every listener: a workload must not hold connections or
// memory without bound. The listeners with faces enforce the two timeouts
// with a timer of their own (deadline.go).
const (
	headerTimeout  = 10 * time.Second
	idleTimeout    = 90 * time.Second
	maxHeaderBytes = 64 << 10
)

// Run opens the listeners, serves until ctx ends, then shuts down
// gracefully: in-flight requests get up to shutdownGrace. ready, if not nil,
// is called with the bound addresses once all listeners are open.
func (s *Server) Run(ctx context.Context, ready func(Addrs)) error {
	type srv struct {
		name string
		ln   net.Listener
		hs   *http.Server
	}
	var srvs []srv
	closeAll := func() {
		for _, x := range srvs {
			_ = x.ln.Close()
		}
	}
	add := func(name, addr string, h http.Handler, tlsCfg *tls.Config, faces ...string) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("listen for %s on %s: %w (is another process using the port? set a different address)", name, addr, err)
		}
		if len(faces) > 0 {
			ln = newFaultListener(s, ln, faces, tlsCfg != nil)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: s.headerTimeout, IdleTimeout: s.idleTimeout, MaxHeaderBytes: maxHeaderBytes,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		srvs = append(srvs, srv{name, ln, hs})
		return ln.Addr().String(), nil
	}
	var a Addrs
	var err error
	if s.cfg.Listen.IMDS != "" {
		faces := []string{FaceIMDS, FaceInstance}
		if s.cfg.Listen.Services == "" {
			faces = append(faces, FaceAppService, FaceAuthority)
		}
		if a.IMDS, err = add("imds", s.cfg.Listen.IMDS, s.imdsHandler, nil, faces...); err != nil {
			closeAll()
			return err
		}
	}
	if s.cfg.Listen.Services != "" {
		if a.Services, err = add("services", s.cfg.Listen.Services, s.servicesHandler, nil, FaceAppService, FaceAuthority); err != nil {
			closeAll()
			return err
		}
	}
	if a.Control, err = add("control", s.cfg.Listen.Control, s.controlHandler, nil); err != nil {
		closeAll()
		return err
	}
	if s.cfg.Faces.Arc.On() {
		if a.Arc, err = add("arc", s.cfg.Faces.Arc.Addr, s.arcHandler, nil, FaceArc); err != nil {
			closeAll()
			return err
		}
	}
	if s.auth != nil && s.cfg.Listen.AuthorityTLS != "" {
		tlsCfg, err := s.auth.serverTLS()
		if err != nil {
			closeAll()
			return err
		}
		if a.AuthorityTLS, err = add("authority-tls", s.cfg.Listen.AuthorityTLS, s.servicesHandler, s.withCertificateFaults(tlsCfg), FaceAuthority); err != nil {
			closeAll()
			return err
		}
	}
	errc := make(chan error, len(srvs))
	var wg sync.WaitGroup
	for _, x := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.log.Info("listening", "listener", x.name, "addr", x.ln.Addr().String())
			if err := x.hs.Serve(x.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", x.name, err)
			}
		}()
	}
	if ready != nil {
		ready(a)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, x := range srvs {
		if err := x.hs.Shutdown(sctx); err != nil {
			s.log.Warn("shutdown", "listener", x.name, "err", err)
		}
	}
	wg.Wait()
	s.arc.cleanup()
	s.log.Info("stopped")
	return runErr
}
