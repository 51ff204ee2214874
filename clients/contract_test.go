package clients_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/internal/nodeimage"
)

// shift is how far the contract test's fake moves the expiry it states
// from the token's exp: a client that reports the JWT's exp instead of
// its SDK's expiry is off by this much.
const shift = -2 * time.Hour

// refused is a resource the fake answers with 400, which no client
// retries.
const refused = "https://refused.idharness.test"

// contractFake starts the test host with the contract's two rules.
func contractFake(t *testing.T) (cfg config.Config, addrs string, ctl *client.Client) {
	t.Helper()
	var rules []chaos.Rule
	for _, js := range []string{
		fmt.Sprintf(`{"name":"shift","match":{"faces":["imds"]},"action":{"type":"shift-expiry","by":"%s"}}`, shift),
		`{"name":"refuse","match":{"faces":["imds"],"resource":"` + refused + `"},"action":{"type":"status","status":400,"error":"invalid_resource","description":"AADSTS500011: the contract test refuses this resource"}}`,
	} {
		var r chaos.Rule
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	srv, a := fakeimdstest.Start(t, func(c *config.Config) { c.Chaos.Faults = rules })
	_ = srv
	ctl, err := client.New("http://" + a.Control)
	if err != nil {
		t.Fatal(err)
	}
	return fakeimdstest.Config(), a.IMDS, ctl
}

// started is a client under test and the address its requests come from.
type started struct {
	p   *clients.Process
	src string
}

// start runs spec asking for id against the fake at fake: a Go client
// served in process behind a dialer of its own address, a program behind
// a relay.
func start(t *testing.T, ctx context.Context, spec clients.Spec, id clients.Identity, fake string) started {
	t.Helper()
	if spec.New != nil {
		hc, _, src := clients.LoopbackHTTPClient(fake)
		if spec.IdentityFromEnv && id.Kind == clients.ByClientID {
			t.Setenv("AZURE_CLIENT_ID", id.Value)
		}
		c, err := spec.New(clients.Options{Mode: clients.ModeIMDS, Identity: id}, hc)
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go func() {
			_ = clients.Serve(ctx, spec, c, err, inR, outW)
			_ = outW.Close()
		}()
		p, err := clients.Attach(ctx, spec.Name, outR, inW)
		if err != nil {
			t.Fatal(err)
		}
		return started{p, src.String()}
	}
	dir, err := spec.Program.Prepare(ctx, nodeimage.DefaultCacheDir(), testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	relay, err := clients.NewRelay(fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	env := clients.ProgramEnv(clients.BaseEnv(), spec, clients.ModeIMDS, id, "", relay.Addr())
	p, err := clients.Start(ctx, spec, clients.StartOptions{Dir: dir, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return started{p, relay.Source().String()}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// claims reads a JWT's payload.
func claims(t *testing.T, tok string) (appid string, exp time.Time) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %.40q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppID string `json:"appid"`
		Exp   int64  `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.AppID, time.Unix(c.Exp, 0)
}

// requestsFrom counts the fake's journal entries from src, waiting up to
// two seconds for the first: the fake records a request once its answer
// is written, which can be after the client has read it.
func requestsFrom(t *testing.T, ctx context.Context, ctl *client.Client, src string) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		entries, err := ctl.Journal(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if host, _, _ := net.SplitHostPort(e.Remote); host == src {
				n++
			}
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestContract runs every registered client through PROTOCOL.md against
// a fake IMDS whose stated expiry is two hours before the token's exp:
// hello first with the SDK versions; a token for the default identity
// whose reported expiry is the SDK's (the fake's expires_on), not the
// JWT's; a token for a user-assigned identity by each selector the client
// declares; concurrent requests answered by id; a refused request as
// ok:false; and exit 0 at the end of input. Programs are prepared into
// idharness's cache first (pip, npm, Maven; minutes the first time).
func TestContract(t *testing.T) {
	if testing.Short() {
		t.Skip("prepares and runs every client program")
	}
	for _, k := range []string{"IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range reg.Specs() {
		if !slices.Contains(spec.Modes, clients.ModeIMDS) {
			continue
		}
		t.Run(spec.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cfg, fake, ctl := contractFake(t)
			s := start(t, ctx, spec, clients.Identity{Kind: clients.System}, fake)

			h := s.p.Hello()
			if h.Language != spec.Language() || h.Runtime == "" {
				t.Errorf("hello: language %q runtime %q, want language %q and a runtime", h.Language, h.Runtime, spec.Language())
			}
			if len(h.SDKs) == 0 {
				t.Errorf("hello names no SDK versions: %+v", h)
			}
			for pkg, v := range h.SDKs {
				if v == "" {
					t.Errorf("hello: SDK %s has no version", pkg)
				}
			}

			callCtx, done := context.WithTimeout(ctx, 2*time.Minute)
			// A resource of the client's own: Go clients of one process share
			// MSAL Go's process-wide token cache.
			tok, err := s.p.GetToken(callCtx, "https://"+spec.Name+".idharness.test")
			done()
			if err != nil {
				t.Fatalf("token for the default identity: %v\nclient log: %s", err, s.p.Log())
			}
			appid, exp := claims(t, tok.Value)
			if appid != fakeimdstest.SystemClientID {
				t.Errorf("default identity: token for %s, want %s", appid, fakeimdstest.SystemClientID)
			}
			stated := exp.Add(shift)
			switch {
			case tok.ExpiresOn.IsZero():
				t.Errorf("no expiresOn reported; want the SDK's expiry, %s", stated)
			case math.Abs(tok.ExpiresOn.Sub(exp).Seconds()) < 2:
				t.Errorf("expiresOn %s is the JWT's exp; want the expiry the SDK read from the response, %s", tok.ExpiresOn, stated)
			case math.Abs(tok.ExpiresOn.Sub(stated).Seconds()) > 2:
				t.Errorf("expiresOn %s, want the response's expires_on %s (±2 s)", tok.ExpiresOn, stated)
			}
			if n := requestsFrom(t, ctx, ctl, s.src); n == 0 {
				t.Errorf("the fake saw no request from the client's address %s: attribution broken", s.src)
			}

			// Concurrent calls, answered by id.
			const parallel = 4
			errs := make(chan error, parallel)
			for i := range parallel {
				go func() {
					c, done := context.WithTimeout(ctx, 2*time.Minute)
					defer done()
					res := fmt.Sprintf("https://%s-parallel-%d.idharness.test", spec.Name, i)
					tok, err := s.p.GetToken(c, res)
					if err == nil {
						if a, _ := claims(t, tok.Value); a != fakeimdstest.SystemClientID {
							err = fmt.Errorf("%s: token for %s", res, a)
						}
					}
					errs <- err
				}()
			}
			for range parallel {
				if err := <-errs; err != nil {
					t.Errorf("concurrent call: %v", err)
				}
			}

			// A refused request is ok:false with the SDK's message.
			c, done := context.WithTimeout(ctx, 2*time.Minute)
			_, err = s.p.GetToken(c, refused)
			done()
			var ce *clients.ClientError
			if !errors.As(err, &ce) || ce.Message == "" {
				t.Errorf("refused resource: got %v (%T), want the client's ok:false with its SDK's message", err, err)
			}

			if err := s.p.Close(30 * time.Second); err != nil {
				t.Errorf("at the end of its input: %v; want exit 0", err)
			}

			// User-assigned identities, each selector in a process of its own.
			for _, kind := range spec.Selects {
				var id clients.Identity
				switch kind {
				case clients.ByClientID:
					id = clients.Identity{Kind: kind, Value: fakeimdstest.UserAClientID}
				case clients.ByObjectID:
					id = clients.Identity{Kind: kind, Value: fakeimdstest.UserAObjectID}
				case clients.ByResourceID:
					id = clients.Identity{Kind: kind, Value: cfg.UserAssignedResourceID(fakeimdstest.UserAName)}
				default:
					continue
				}
				t.Run(string(kind), func(t *testing.T) {
					u := start(t, ctx, spec, id, fake)
					defer func() { _ = u.p.Close(30 * time.Second) }()
					c, done := context.WithTimeout(ctx, 2*time.Minute)
					defer done()
					tok, err := u.p.GetToken(c, "https://"+spec.Name+"-"+string(kind)+".idharness.test")
					if err != nil {
						t.Fatalf("%s: %v\nclient log: %s", id, err, u.p.Log())
					}
					if a, _ := claims(t, tok.Value); a != fakeimdstest.UserAClientID {
						t.Errorf("%s: token for %s, want id-a %s", id, a, fakeimdstest.UserAClientID)
					}
				})
			}
		})
	}
}

// wiSubject is the service account the contract's projected token is for.
const wiSubject = "system:serviceaccount:default:contract"

// TestContractWorkloadIdentity runs every client that supports workload
// identity through the token exchange at the fake authority over HTTPS,
// with the variables the webhook sets and the fake's CA to trust: a token
// for the federated identity, with an expiry reported by the SDK.
func TestContractWorkloadIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("prepares and runs every client program")
	}
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	iss := fakeimdstest.NewIssuer(t)
	_, authority, ca := fakeimdstest.StartWorkload(t, iss, wiSubject)
	wiEnv := map[string]string{
		"AZURE_CLIENT_ID":            fakeimdstest.UserAClientID,
		"AZURE_TENANT_ID":            fakeimdstest.TenantID,
		"AZURE_FEDERATED_TOKEN_FILE": iss.ProjectedToken(t, wiSubject),
		"AZURE_AUTHORITY_HOST":       authority,
	}
	for _, spec := range reg.Specs() {
		if !slices.Contains(spec.Modes, clients.ModeWorkloadIdentity) {
			continue
		}
		t.Run(spec.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var p *clients.Process
			if spec.New != nil {
				for k, v := range wiEnv {
					t.Setenv(k, v)
				}
				hc, err := caClient(ca)
				if err != nil {
					t.Fatal(err)
				}
				c, err := spec.New(clients.Options{Mode: clients.ModeWorkloadIdentity, DisableInstanceDiscovery: true}, hc)
				inR, inW := io.Pipe()
				outR, outW := io.Pipe()
				go func() {
					_ = clients.Serve(ctx, spec, c, err, inR, outW)
					_ = outW.Close()
				}()
				if p, err = clients.Attach(ctx, spec.Name, outR, inW); err != nil {
					t.Fatal(err)
				}
			} else {
				dir, err := spec.Program.Prepare(ctx, nodeimage.DefaultCacheDir(), testWriter{t})
				if err != nil {
					t.Fatal(err)
				}
				env := clients.ProgramEnv(clients.BaseEnv(), spec, clients.ModeWorkloadIdentity, clients.Identity{Kind: clients.System}, ca, "")
				for k, v := range wiEnv {
					env = append(env, k+"="+v)
				}
				if p, err = clients.Start(ctx, spec, clients.StartOptions{Dir: dir, Env: env}); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				if err := p.Close(30 * time.Second); err != nil {
					t.Errorf("at the end of its input: %v", err)
				}
			}()
			c, done := context.WithTimeout(ctx, 2*time.Minute)
			defer done()
			tok, err := p.GetToken(c, "https://"+spec.Name+".idharness.test")
			if err != nil {
				t.Fatalf("token exchange: %v\nclient log: %s", err, p.Log())
			}
			appid, exp := claims(t, tok.Value)
			if appid != fakeimdstest.UserAClientID {
				t.Errorf("token for %s, want the federated identity id-a %s", appid, fakeimdstest.UserAClientID)
			}
			if tok.ExpiresOn.IsZero() || math.Abs(tok.ExpiresOn.Sub(exp).Seconds()) > 2 {
				t.Errorf("expiresOn %v, want the authority's expiry %v (±2 s)", tok.ExpiresOn, exp)
			}
		})
	}
}

// caClient returns an HTTP client trusting the system roots and ca.
func caClient(ca string) (*http.Client, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", ca)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}
