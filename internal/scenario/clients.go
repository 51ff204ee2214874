package scenario

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all" // the Go clients, run in process
)

// clientTag marks an in-cluster probe's requests in their User-Agent so
// that the fake's journal can attribute them when they all come through
// one node agent; locally, requests are attributed by source address.
const clientTag = "idharness-client/"

var clientTagPattern = regexp.MustCompile(regexp.QuoteMeta(clientTag) + `([a-z0-9-]+)`)

// clientOf returns the client named in a journal entry's User-Agent.
func clientOf(userAgent string) string {
	if m := clientTagPattern.FindStringSubmatch(userAgent); m != nil {
		return m[1]
	}
	return ""
}

// registry returns the client registry.
func registry() (*clients.Registry, error) { return clients.Builtin() }

// CheckEnv returns an error naming the environment variables that would
// steer in-process SDK clients away from the fake IMDS (programs get an
// environment of their own).
func CheckEnv() error {
	var set []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if clients.IdentityEnv(k) {
			set = append(set, k)
		}
	}
	if len(set) > 0 {
		return fmt.Errorf("unset %s before running a scenario: they make the SDK clients use another managed identity source or credential than the fake IMDS", strings.Join(set, ", "))
	}
	return nil
}

// goHTTPClient returns the HTTP client of one in-process Go client: its
// own connection pool (as a separate process would have) whose dialer
// connects to the fake whatever host a request names, from a loopback
// address of its own, by which the journal attributes its requests.
func goHTTPClient(fake string) (*http.Client, *http.Transport, net.IP) {
	src := clients.NextLoopback()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, fake)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr}, tr, src
}

// localEnv is the environment of a client program in a local run: the
// harness's own minus identity variables, the mode and identity, and the
// fake's URL (its relay's) in each variable the program's SDKs honour.
func localEnv(spec clients.Spec, id clients.Identity, relay string) []string {
	env := append(clients.BaseEnv(),
		"IDHARNESS_MODE="+clients.ModeIMDS,
		"IDHARNESS_IDENTITY="+id.String())
	for _, k := range spec.LocalIMDSEnv() {
		env = append(env, k+"=http://"+relay)
	}
	return env
}

// tokenClaims are the claims the expectations check.
type tokenClaims struct {
	AppID string `json:"appid"`
	Exp   int64  `json:"exp"`
}

// readClaims decodes a JWT's payload without verifying it: the run only
// needs to know whose token a client was handed.
func readClaims(tok string) (tokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tokenClaims{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
