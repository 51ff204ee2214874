package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/token"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
	"github.com/idharness/idharness/pkg/proberesult"
)

// DefaultResource is the resource tokens are asked for when none is given.
const DefaultResource = "https://vault.azure.net"

// Config is what a probe run does.
type Config struct {
	Options
	// Clients names the clients to run, in order; empty means
	// DefaultClients for the mode and identity.
	Clients []string
	// Resource is the resource tokens are asked for.
	Resource string
	// Count is the number of rounds; with Duration, whichever ends first.
	// When both are zero the probe runs one round.
	Count int
	// Interval is the pause between the starts of two rounds (default 1s
	// when looping).
	Interval time.Duration
	// Duration bounds the whole run.
	Duration time.Duration
	// Timeout bounds each token call and each resource request (default
	// 90s: azidentity retries IMDS's 410 "updating" answers for 70s).
	Timeout time.Duration
	// VaultURL is the protected resource's base URL; with Secret, each
	// token is used to read that secret.
	VaultURL string
	// Secret is the secret to read at VaultURL.
	Secret string
	// VaultAPIVersion is the api-version sent to the resource.
	VaultAPIVersion string
	// Parallel is how many calls each client makes at once in a round
	// (default 1): N concurrent GetToken calls on the same client, as an
	// application's threads would make on one credential with a cold
	// cache. Each call is a Result of its own, numbered by Call.
	Parallel int
	// Tag, when set, is added to every request's User-Agent after the
	// probe's own idharness-probe/CLIENT, so that a fake's journal can
	// tell this probe from others running the same client (the scenario
	// runner gives each pod idharness-client/NAME).
	Tag string
}

// MaxParallel bounds Config.Parallel: enough for any fan-out an
// application makes on one credential, few enough that one pod cannot
// flood the node's IMDS by a typo.
const MaxParallel = 64

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 90 * time.Second

// Runner runs probe attempts and writes each Result as a JSON line.
type Runner struct {
	cfg     Config
	out     io.Writer
	now     func() time.Time
	clients []runClient
	vault   *http.Client
	// closers stop the client programs and relays the runner started.
	closers []func()

	mu sync.Mutex // serializes writes to out
}

type runClient struct {
	name    string
	client  Client // nil when construction failed
	err     error  // why construction failed
	counter *Counter
}

// NewRunner builds the clients of cfg and returns a runner writing to
// out. A client that cannot be built does not stop the run: each of its
// attempts reports the construction error, so that a spec sees why.
// Errors are for configuration no attempt can run with.
func NewRunner(cfg Config, out io.Writer) (*Runner, error) {
	if cfg.Resource == "" {
		cfg.Resource = DefaultResource
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeIMDS
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if !slices.Contains(Modes(), cfg.Mode) {
		return nil, fmt.Errorf("mode %q: want one of %s", cfg.Mode, strings.Join(Modes(), ", "))
	}
	if cfg.Count < 0 || cfg.Interval < 0 || cfg.Duration < 0 {
		return nil, errors.New("count, interval and duration must not be negative")
	}
	if cfg.Parallel < 0 || cfg.Parallel > MaxParallel {
		return nil, fmt.Errorf("parallel %d: want 1 to %d calls at once per client", cfg.Parallel, MaxParallel)
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 1
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		cfg.Count = 1
	}
	if cfg.Interval == 0 && (cfg.Count > 1 || cfg.Duration > 0) {
		cfg.Interval = time.Second
	}
	if (cfg.VaultURL == "") != (cfg.Secret == "") {
		return nil, errors.New("give both --vault-url and --secret to use tokens at the protected resource, or neither")
	}
	if cfg.VaultURL != "" {
		if u, err := url.Parse(cfg.VaultURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("vault URL %q: want http(s)://HOST[:PORT]", cfg.VaultURL)
		}
	}
	if cfg.VaultAPIVersion == "" {
		cfg.VaultAPIVersion = DefaultVaultAPIVersion
	}
	if len(cfg.Clients) == 0 {
		cfg.Clients = DefaultClients(cfg.Mode, cfg.Identity)
	}
	base, err := BaseTransport(cfg.IMDSAddr, cfg.CAFile)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, out: out, now: time.Now}
	vt, err := BaseTransport("", cfg.CAFile)
	if err != nil {
		return nil, err
	}
	r.vault = &http.Client{Transport: vt}
	seen := map[string]bool{}
	for _, name := range cfg.Clients {
		if seen[name] {
			return nil, fmt.Errorf("client %q named twice", name)
		}
		seen[name] = true
		// Each client gets its own transport so that idle connections,
		// and hence the requests counted, are its own.
		tag := userAgentTag + name
		if cfg.Tag != "" {
			tag += " " + cfg.Tag
		}
		spec, lerr := registry().Lookup(name)
		if lerr == nil && spec.New == nil {
			// A client program (Python, JavaScript, …): started as a child
			// process; its requests are not seen here, so the fake's journal
			// counts them (by the pod's address).
			c, err := r.startProgram(spec)
			r.clients = append(r.clients, runClient{name: name, client: c, err: err})
			continue
		}
		counter := NewCounter(base.Clone(), tag)
		c, err := NewClient(name, cfg.Options, &http.Client{Transport: counter})
		if errors.Is(err, ErrUnknownClient) {
			return nil, err
		}
		r.clients = append(r.clients, runClient{name: name, client: c, err: err, counter: counter})
	}
	return r, nil
}

// Config returns the configuration with defaults filled in.
func (r *Runner) Config() Config { return r.cfg }

// Run runs the rounds, writing one line per attempt and the summary line
// last, and returns the summary. It stops early, still writing the
// summary, when ctx ends.
func (r *Runner) Run(ctx context.Context) (proberesult.Summary, error) {
	start := r.now()
	sum := proberesult.Summary{Summary: true, Mode: r.cfg.Mode, Clients: map[string]proberesult.ClientSummary{}}
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = start.Add(r.cfg.Duration)
	}
	for round := 1; ; round++ {
		roundStart := r.now()
		for _, c := range r.clients {
			if ctx.Err() != nil {
				break
			}
			for _, res := range r.fanOut(ctx, c, round) {
				sum.Add(res)
				if err := r.write(res); err != nil {
					return sum, err
				}
			}
		}
		sum.Rounds = round
		if ctx.Err() != nil {
			sum.Interrupted = true
			break
		}
		if r.cfg.Count > 0 && round >= r.cfg.Count {
			break
		}
		next := roundStart.Add(r.cfg.Interval)
		if !deadline.IsZero() && !next.Before(deadline) {
			break
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			sum.Interrupted = true
		case <-t.C:
		}
		if sum.Interrupted {
			break
		}
	}
	sum.Time = r.now().UTC()
	sum.DurationMs = proberesult.Millis(r.now().Sub(start))
	return sum, r.write(sum)
}

func (r *Runner) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode probe line: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write probe line: %w", err)
	}
	return nil
}

// identityAsked is what Result.IdentityAsked reports for the runner's
// mode: in workload identity mode, the client ID actually used.
func (r *Runner) identityAsked() string {
	if r.cfg.Mode == ModeWorkloadIdentity && r.cfg.Identity.Kind != ByClientID {
		return string(ByClientID) + "=" + os.Getenv(workloadidentity.EnvClientID)
	}
	return r.cfg.Identity.String()
}

// fanOut runs the client's calls of one round: one attempt, or with
// Parallel N attempts at once, returned in call order when all ended.
func (r *Runner) fanOut(ctx context.Context, c runClient, round int) []proberesult.Result {
	n := r.cfg.Parallel
	if n <= 1 {
		return []proberesult.Result{r.attempt(ctx, c, round)}
	}
	out := make([]proberesult.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := r.attempt(ctx, c, round)
			res.Call = i + 1
			// The calls share the client's transport: its counter cannot
			// tell whose request is whose, so none is counted.
			if c.counter != nil {
				res.Requests, res.FromCache, res.HTTPStatus = proberesult.RequestsUnmeasured, false, 0
			}
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}

// attempt runs one client once: the token call, the claims, and the use
// of the token at the protected resource.
func (r *Runner) attempt(ctx context.Context, c runClient, round int) proberesult.Result {
	res := proberesult.Result{
		Time:          r.now().UTC(),
		Client:        c.name,
		Mode:          r.cfg.Mode,
		Attempt:       round,
		IdentityAsked: r.identityAsked(),
		Resource:      r.cfg.Resource,
		Status:        proberesult.StatusOK,
	}
	if c.client == nil {
		res.Status, res.Stage, res.Error = proberesult.StatusError, proberesult.StageToken, c.err.Error()
		return res
	}
	var before int
	if c.counter != nil {
		before, _ = c.counter.Snapshot()
	}
	tctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	t0 := r.now()
	// The attempt's time is its token call's start, the same instant its
	// latency counts from: a scenario counts the journal's requests
	// between the two as the attempt's, and a Time read earlier left a
	// request that came a few ms late on a busy node outside that window
	// (an in-cluster run attributed none to a client's only attempt).
	res.Time = t0.UTC()
	tok, err := c.client.GetToken(tctx, r.cfg.Resource)
	res.LatencyMs = proberesult.Millis(r.now().Sub(t0))
	cancel()
	if c.counter != nil {
		after, last := c.counter.Snapshot()
		res.Requests = after - before
		if res.Requests > 0 {
			res.HTTPStatus = last
		}
	} else {
		res.Requests = proberesult.RequestsUnmeasured
	}
	if tok.Wire != nil {
		res.FieldTypes = tok.Wire.FieldTypes
		res.ResourceEcho = tok.Wire.ResourceEcho
	}
	if err != nil {
		res.Status, res.Stage, res.Error = proberesult.StatusError, proberesult.StageToken, err.Error()
		var he *HTTPError
		if errors.As(err, &he) {
			res.Body = he.Body
		}
		return res
	}
	res.FromCache = c.counter != nil && res.Requests == 0
	if claims, err := readClaims(tok.Value); err != nil {
		res.ClaimsError = err.Error()
	} else {
		res.IdentityGot, res.ClientIDGot, res.Audience = claims.ObjectID, claims.AppID, claims.Audience
		res.TokenExp = time.Unix(claims.Expiry, 0).UTC()
	}
	if !tok.ExpiresOn.IsZero() {
		res.ExpiresOn = tok.ExpiresOn.UTC()
	}
	if r.cfg.VaultURL == "" {
		res.TokenExpired = !res.TokenExp.After(r.now())
		return res
	}
	r.useToken(ctx, tok.Value, &res)
	return res
}

// useToken reads the secret with the token and records the answer.
func (r *Runner) useToken(ctx context.Context, tok string, res *proberesult.Result) {
	res.TokenExpired = !res.TokenExp.IsZero() && !res.TokenExp.After(r.now())
	status, value, err := ReadSecret(ctx, r.vault, r.cfg.VaultURL, r.cfg.Secret, r.cfg.VaultAPIVersion, tok, r.cfg.Timeout)
	res.ResourceStatus = status
	if err != nil {
		res.Status, res.Stage, res.Error = proberesult.StatusError, proberesult.StageResource, err.Error()
		return
	}
	res.Secret = value
}

// DefaultVaultAPIVersion is the api-version sent to the protected resource.
const DefaultVaultAPIVersion = "7.4"

// ReadSecret presents tok at the protected resource: GET
// vaultURL/secrets/secret with the token as bearer, as a Key Vault
// client does, within timeout. It returns the resource's HTTP status (0
// when it could not be reached) and the secret's value; the error says
// why there is no value (no answer, not 200, not a secret). The probe and
// local scenario runs both use a token this way, so that they judge the
// same thing.
func ReadSecret(ctx context.Context, hc *http.Client, vaultURL, secret, apiVersion, tok string, timeout time.Duration) (int, string, error) {
	if apiVersion == "" {
		apiVersion = DefaultVaultAPIVersion
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := strings.TrimRight(vaultURL, "/") + "/secrets/" + url.PathEscape(secret) + "?api-version=" + url.QueryEscape(apiVersion)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", fmt.Errorf("build resource request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("protected resource: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", fmt.Errorf("protected resource answered %d: %s", resp.StatusCode, truncate(strings.TrimSpace(string(body)), maxBody))
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return resp.StatusCode, "", fmt.Errorf("protected resource's 200 body is not a secret: %v", err)
	}
	return resp.StatusCode, v.Value, nil
}

// readClaims reads a token's claims without verifying it: the probe
// reports what it was given; the protected resource verifies.
func readClaims(raw string) (token.Claims, error) {
	var c token.Claims
	t, err := jwt.ParseSigned(raw, allAlgs)
	if err != nil {
		return c, fmt.Errorf("token is not a signed JWT: %w", err)
	}
	if err := t.UnsafeClaimsWithoutVerification(&c); err != nil {
		return c, fmt.Errorf("token claims: %w", err)
	}
	return c, nil
}

// allAlgs are the algorithms a token read without verification may name;
// reading is not trusting, so any signed form is accepted.
var allAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// maxBody bounds what is recorded of a response body.
const maxBody = 4 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
