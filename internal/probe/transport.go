package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// IMDSHostPort is where the instance metadata service listens on every
// Azure VM, and where the SDKs send managed identity requests.
const IMDSHostPort = "169.254.169.254:80"

// userAgentTag marks the probe's requests in the fake's journal; the
// client's name follows it.
const userAgentTag = "idharness-probe/"

// Counter is an http.RoundTripper that counts the requests passing
// through it and remembers the status of the last response. Every client
// sends its requests through its own Counter, so that a call's request
// count (and whether its cache answered) is measured.
type Counter struct {
	base http.RoundTripper
	tag  string

	mu         sync.Mutex
	requests   int
	lastStatus int
}

// NewCounter wraps base; tag, if not empty, is appended to each request's
// User-Agent so that the fake's journal can tell clients apart.
func NewCounter(base http.RoundTripper, tag string) *Counter {
	return &Counter{base: base, tag: tag}
}

// RoundTrip counts the request and passes it on.
func (c *Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.tag != "" {
		r = r.Clone(r.Context())
		ua := r.Header.Get("User-Agent")
		if ua != "" {
			ua += " "
		}
		r.Header.Set("User-Agent", ua+c.tag)
	}
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.lastStatus = resp.StatusCode
		c.mu.Unlock()
	}
	return resp, err
}

// Snapshot returns the requests counted so far and the last status seen.
func (c *Counter) Snapshot() (requests, lastStatus int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, c.lastStatus
}

// BaseTransport returns the transport under every client's Counter: a
// clone of http.DefaultTransport, with a dialer that sends connections for
// 169.254.169.254:80 to imdsAddr when it is set (and no proxy then, since
// the redirect is the point), and caFile's certificates trusted besides
// the system roots when it is set.
func BaseTransport(imdsAddr, caFile string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if imdsAddr != "" {
		if _, _, err := net.SplitHostPort(imdsAddr); err != nil {
			return nil, fmt.Errorf("imds address %q: want HOST:PORT: %w", imdsAddr, err)
		}
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		t.Proxy = nil
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == IMDSHostPort {
				addr = imdsAddr
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate; give the fake authority's ca.crt", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t, nil
}
