// Command wiwebhook is idharness's reference workload identity webhook
// (package internal/wiwebhook) and its helper for the fake authority:
//
//	wiwebhook serve --tls-cert=FILE --tls-key=FILE --tenant-id=GUID --authority-host=https://HOST/ [--test-paths]
//	wiwebhook issuer-keys --out=FILE [--issuer=URL] [--config-in=FILE --config-out=FILE]
//	wiwebhook proxy [--link-local=169.254.169.254] [--health-addr=:8001]
//
// serve answers the API server's admission reviews for pods over HTTPS
// (and /healthz for probes), reading service accounts with the pod's own
// credentials. issuer-keys runs as an init container of the fake
// authority: it reads the cluster's service account issuer and its JSON
// Web Key Set from the API server, with the pod's own token (Kubernetes
// lets every service account read them), writes the key set, and, given
// a fakeimds configuration, writes it again with that issuer trusted
// through the key set file. The authority then needs no access to the API
// server, and works whatever issuer the cluster has. proxy is the
// IMDS-emulating sidecar the webhook injects on request: it puts the
// metadata address on the pod's loopback, answers IMDS token requests
// there on port 80 with tokens from the authority, and serves /healthz
// on --health-addr once it does.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/internal/linklocal"
	"github.com/idharness/idharness/internal/wiwebhook"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		fmt.Fprintln(os.Stderr, "wiwebhook:", err)
		os.Exit(1)
	}
}

const usage = "usage: wiwebhook serve|issuer-keys|proxy [flags]; wiwebhook COMMAND -h lists a command's flags"

func run(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], log)
	case "issuer-keys":
		return issuerKeys(ctx, args[1:], log)
	case "proxy":
		return proxy(ctx, args[1:], log)
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}

func serve(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		addr     = fs.String("addr", ":9443", "HTTPS listen address")
		certFile = fs.String("tls-cert", "", "PEM certificate chain the API server's caBundle trusts")
		keyFile  = fs.String("tls-key", "", "PEM private key of --tls-cert")
		cfg      wiwebhook.Config
	)
	fs.StringVar(&cfg.TenantID, "tenant-id", "", "AZURE_TENANT_ID for service accounts without the tenant-id annotation")
	fs.StringVar(&cfg.AuthorityHost, "authority-host", "", "AZURE_AUTHORITY_HOST, an https:// URL")
	fs.StringVar(&cfg.ProxyImage, "proxy-image", "", "image of the proxy sidecar (this program) for pods annotated "+workloadidentity.ProxyAnnotation+"=true")
	proxyCA := fs.String("proxy-ca-file", "", "PEM bundle the proxy sidecar trusts for the authority besides the system roots")
	testPaths := fs.Bool("test-paths", false, "also serve the chaos suite's paths: "+wiwebhook.SlowPrefix+"DURATION"+wiwebhook.MutatePath+" (the mutation, late) and "+wiwebhook.AddContainerPath+" (a second webhook that adds a container)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *proxyCA != "" {
		b, err := os.ReadFile(*proxyCA)
		if err != nil {
			return fmt.Errorf("read --proxy-ca-file: %w", err)
		}
		cfg.ProxyCAPEM = string(b)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("load the serving certificate (--tls-cert, --tls-key): %w", err)
	}
	kube, err := inCluster()
	if err != nil {
		return err
	}
	h := &wiwebhook.Handler{Config: cfg, Log: log, ServiceAccounts: func(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
		sa, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return sa, err
	}}
	mux := http.NewServeMux()
	mux.Handle(wiwebhook.MutatePath, h)
	if *testPaths {
		mux.Handle(wiwebhook.SlowPrefix, wiwebhook.Slow(h))
		mux.Handle(wiwebhook.AddContainerPath, wiwebhook.AddContainer())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{
		Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServeTLS("", "") }()
	log.Info("serving", "addr", *addr, "tenant", cfg.TenantID, "authorityHost", cfg.AuthorityHost)
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", *addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func inCluster() (*kubernetes.Clientset, error) {
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("wiwebhook runs in a pod with a service account token: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	return kube, nil
}

func issuerKeys(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("issuer-keys", flag.ContinueOnError)
	out := fs.String("out", "", "write the JSON Web Key Set here")
	want := fs.String("issuer", "", "refuse to go on if the cluster's issuer is not this one")
	cfgIn := fs.String("config-in", "", "fakeimds configuration to trust the issuer in")
	cfgOut := fs.String("config-out", "", "write --config-in here, trusting the cluster's issuer with the key set of --out")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*cfgIn == "") != (*cfgOut == "") {
		return errors.New("issuer-keys: set --out, and --config-in with --config-out or neither")
	}
	kube, err := inCluster()
	if err != nil {
		return err
	}
	rc := kube.CoreV1().RESTClient()
	// The API server may still be settling when a cluster is new; a few
	// spaced tries cover that without hiding a real refusal for long.
	var disc, jwks []byte
	for try := 1; ; try++ {
		disc, err = rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
		if err == nil {
			jwks, err = rc.Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
		}
		if err == nil || try == 5 {
			break
		}
		log.Warn("read the service account issuer", "try", try, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("read the service account issuer's discovery document and keys from the API server (the ClusterRole system:service-account-issuer-discovery must be bound to service accounts, as Kubernetes does by default): %w", err)
	}
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(disc, &d); err != nil {
		return fmt.Errorf("parse the issuer's discovery document: %w", err)
	}
	if *want != "" && strings.TrimSuffix(d.Issuer, "/") != strings.TrimSuffix(*want, "/") {
		return fmt.Errorf("the cluster's service account issuer is %q, but the authority is configured for %q: configure the authority's issuer as the cluster's (kube-apiserver --service-account-issuer)", d.Issuer, *want)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) == 0 {
		return fmt.Errorf("the API server's /openid/v1/jwks holds no keys (parse error: %v)", err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("create the directory of %s: %w", *out, err)
	}
	if err := os.WriteFile(*out, jwks, 0o644); err != nil {
		return fmt.Errorf("write the key set: %w", err)
	}
	log.Info("wrote the issuer's keys", "issuer", d.Issuer, "keys", len(set.Keys), "file", *out)
	if *cfgIn == "" {
		return nil
	}
	if err := trustIssuer(*cfgIn, *cfgOut, config.Issuer{URL: d.Issuer, JWKSFile: *out}); err != nil {
		return err
	}
	log.Info("wrote the authority's configuration", "file", *cfgOut)
	return nil
}

// trustIssuer copies the fakeimds configuration in to out with is as its
// only trusted issuer.
func trustIssuer(in, out string, is config.Issuer) error {
	c := config.Default()
	if err := config.LoadFile(&c, in); err != nil {
		return fmt.Errorf("fakeimds configuration: %w", err)
	}
	c.Faces.Authority.Issuers = []config.Issuer{is}
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode the fakeimds configuration: %w", err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("write the fakeimds configuration: %w", err)
	}
	return nil
}

func proxy(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	ip := fs.String("link-local", "169.254.169.254", "the metadata address to answer on, put on the pod's loopback (needs NET_ADMIN)")
	health := fs.String("health-addr", fmt.Sprintf(":%d", wiwebhook.ProxyHealthPort), "serve /healthz here once the proxy answers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if pem := os.Getenv(wiwebhook.ProxyCAEnv); pem != "" && !pool.AppendCertsFromPEM([]byte(pem)) {
		return fmt.Errorf("%s holds no PEM certificate", wiwebhook.ProxyCAEnv)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	p, err := wiwebhook.ProxyFromEnv(&http.Client{Transport: tr, Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	cleanup, err := linklocal.Ensure(*ip, linklocal.DefaultDevice)
	if err != nil {
		return fmt.Errorf("put %s on the pod's loopback (the sidecar needs NET_ADMIN): %w", *ip, err)
	}
	defer func() { _ = cleanup() }()
	ln, err := net.Listen("tcp", net.JoinHostPort(*ip, "80"))
	if err != nil {
		return fmt.Errorf("listen on %s:80 (the sidecar needs NET_BIND_SERVICE): %w", *ip, err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
	hmux := http.NewServeMux()
	hmux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	hsrv := &http.Server{Addr: *health, Handler: hmux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- hsrv.ListenAndServe() }()
	log.Info("proxy serving", "addr", ln.Addr().String(), "authority", p.AuthorityHost, "clientId", p.ClientID)
	select {
	case err = <-errc:
		err = fmt.Errorf("proxy: %w", err)
	case <-ctx.Done():
		err = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = hsrv.Shutdown(sctx)
	_ = srv.Shutdown(sctx)
	return err
}
