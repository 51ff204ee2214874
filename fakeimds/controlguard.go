package fakeimds

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/idharness/idharness/fakeimds/api"
)

// controlGuard protects the control API, which can change every verdict
// (identities, faults, the journal) and holds the App Service secret:
//
//   - Without a token, Host must be an IP address or localhost. A web page
//     can make a browser send requests to a local fakeimds under a DNS
//     name it controls (DNS rebinding); such requests carry that name as
//     Host. (With a token a page cannot forge requests anyway, and a proxy
//     such as the API server's may pass its own DNS name as Host.)
//   - With a token (listen.controlTokenFile), every request but the
//     readiness check must carry it in HeaderControlToken, compared in
//     constant time. In a cluster the control API is on the node's
//     network, where every pod can reach it; the token is in a Secret
//     that workloads cannot read.
//   - Request bodies must be JSON: a cross-site form post can send only
//     form or plain-text bodies, and the control API takes neither.
type controlGuard struct {
	token []byte
	next  http.Handler
}

// loadControlToken reads the control API's shared secret from path; an
// empty path means no token (a control API on loopback only, which the
// configuration checks).
func loadControlToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("listen.controlTokenFile: %w (write a random secret there, e.g. openssl rand -hex 32)", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	if len(tok) < 16 {
		return nil, fmt.Errorf("listen.controlTokenFile %s: the token has %d characters, want at least 16 (e.g. openssl rand -hex 32)", path, len(tok))
	}
	return tok, nil
}

func (g controlGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.token == nil && !hostIsAddress(r.Host) {
		controlError(w, http.StatusForbidden, "Host", "control API: Host %q refused: only IP addresses and localhost are accepted (a DNS name may be a rebinding attack); use the address, e.g. http://127.0.0.1:8079", r.Host)
		return
	}
	if g.token != nil && !(r.Method == http.MethodGet && r.URL.Path == api.PathHealth) {
		got := []byte(r.Header.Get(api.HeaderControlToken))
		if subtle.ConstantTimeCompare(got, g.token) != 1 {
			controlError(w, http.StatusUnauthorized, api.HeaderControlToken, "control API: missing or wrong %s header: send the token from listen.controlTokenFile (idharness reads it from the fakeimds-control-token Secret)", api.HeaderControlToken)
			return
		}
	}
	if r.ContentLength != 0 && r.Method != http.MethodGet && r.Method != http.MethodHead {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			controlError(w, http.StatusUnsupportedMediaType, "Content-Type", "control API: request bodies must be JSON (Content-Type: application/json), got %q", r.Header.Get("Content-Type"))
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// hostIsAddress reports whether a Host header names an IP address or
// localhost (with or without a port).
func hostIsAddress(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return h == "localhost" || net.ParseIP(h) != nil
}
