// Command vault is idharness's protected resource: a Key Vault-like
// secret service (GET /secrets/{name} with a Bearer token) that verifies
// tokens from the fake metadata service and logs every decision as a
// JSON line on stderr.
//
// Secrets come from an ACL file (--acl, YAML or JSON) and/or flags:
// --secret NAME=VALUE and --allow NAME=OID[,OID…] (OID "*" allows any
// valid token), both repeatable. Every flag has an environment variable:
// VAULT_ and the flag's name in upper case with - as _ (VAULT_JWKS_URL);
// flags win. Lists (--jwks-url, --audience, --tenant-id) are
// comma-separated or repeated.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/idharness/idharness/internal/flagenv"
	"github.com/idharness/idharness/internal/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, os.LookupEnv, nil)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "vault:", err)
		os.Exit(2)
	}
}

// list is a repeatable, comma-separated flag.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// pairs is a repeatable NAME=VALUE flag.
type pairs [][2]string

func (p *pairs) String() string { return fmt.Sprint(*p) }

func (p *pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	*p = append(*p, [2]string{k, val})
	return nil
}

// run serves until ctx ends; ready, if not nil, gets the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, lookup func(string) (string, bool), ready func(addr string)) error {
	fs := flag.NewFlagSet("vault", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var audiences, tenants, jwksURLs list
	var secrets, allows pairs
	addr := fs.String("addr", ":8080", "listen address")
	fs.Var(&audiences, "audience", "accepted aud, with or without trailing slash (default "+vault.DefaultAudience+"); the first is named in 401 challenges")
	fs.Var(&tenants, "tenant-id", "accepted tenant(s): issuer https://sts.windows.net/{tenant}/ (default fakeimds's default tenant)")
	fs.Var(&jwksURLs, "jwks-url", "JWKS URL(s) to trust, e.g. http://fakeimds/{tenant}/discovery/v2.0/keys")
	jwksFile := fs.String("jwks-file", "", "JWKS file of keys to trust besides the URLs")
	keysTTL := fs.Duration("keys-ttl", vault.DefaultKeysTTL, "refetch key sets after this long")
	refetch := fs.Duration("refetch-interval", vault.DefaultRefetchInterval, "least time between two key fetches (unknown kids refetch)")
	skew := fs.Duration("skew", vault.DefaultSkew, "clock skew allowed on exp and nbf")
	anyKey := fs.Bool("any-key", false, "accept a token whose kid is not published if a trusted key verifies it (nodes sharing one key under different kids)")
	aclFile := fs.String("acl", "", "ACL file (YAML or JSON): secrets: {NAME: {value: V, readers: [OID]}}")
	fs.Var(&secrets, "secret", "NAME=VALUE: a secret (repeatable)")
	fs.Var(&allows, "allow", "NAME=OID[,OID…]: who may read a secret; * for anyone with a valid token (repeatable)")
	baseURL := fs.String("base-url", "", "vault URL in secret ids (default https:// and the request's Host)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; every option is a flag (see -h)", fs.Arg(0))
	}
	if err := flagenv.Apply(fs, "VAULT_", lookup); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	cfg := vault.Config{Audiences: audiences, Tenants: tenants, JWKSURLs: jwksURLs, KeysTTL: *keysTTL,
		RefetchInterval: *refetch, Skew: *skew, AnyKey: *anyKey, BaseURL: *baseURL, Secrets: map[string]vault.Secret{}}
	if *jwksFile != "" {
		keys, err := vault.LoadJWKSFile(*jwksFile)
		if err != nil {
			return err
		}
		cfg.Keys = keys
	}
	if *aclFile != "" {
		acl, err := vault.LoadACL(*aclFile)
		if err != nil {
			return err
		}
		for k, v := range acl.Secrets {
			cfg.Secrets[k] = v
		}
	}
	for _, p := range secrets {
		s := cfg.Secrets[p[0]]
		s.Value = p[1]
		cfg.Secrets[p[0]] = s
	}
	for _, p := range allows {
		s, ok := cfg.Secrets[p[0]]
		if !ok {
			return fmt.Errorf("--allow %s=…: no secret %q; give it with --secret %s=VALUE or in the ACL file", p[0], p[0], p[0])
		}
		var readers list
		_ = readers.Set(p[1])
		s.Readers = append(s.Readers, readers...)
		cfg.Secrets[p[0]] = s
	}
	srv, err := vault.New(cfg, vault.WithLogger(log))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port in use? set --addr)", *addr, err)
	}
	// Bounded like every server of the harness: workloads must not hold
	// connections or memory without limit.
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
	c := srv.Config()
	log.Info("ready", "addr", ln.Addr().String(), "audiences", c.Audiences, "tenants", c.Tenants, "jwksUrls", c.JWKSURLs,
		"staticKeys", len(c.Keys), "secrets", len(c.Secrets))
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
