package clients

import (
	"context"
	"net"
	"net/http"
	"time"
)

// ProgramEnv is the environment of a client program (PROTOCOL.md): base,
// the mode and identity, caFile (when set) in every variable a runtime
// reads a CA bundle from, and the fake's relay address (when set: local
// runs; in a cluster nothing) in each variable of the client's
// local.imdsEnv.
func ProgramEnv(base []string, spec Spec, mode string, id Identity, caFile, relay string) []string {
	env := append(append([]string(nil), base...), "IDHARNESS_MODE="+mode, "IDHARNESS_IDENTITY="+id.String())
	if caFile != "" {
		env = append(env, "IDHARNESS_CA_FILE="+caFile, "SSL_CERT_FILE="+caFile, "REQUESTS_CA_BUNDLE="+caFile, "NODE_EXTRA_CA_CERTS="+caFile)
	}
	if relay != "" {
		for _, k := range spec.LocalIMDSEnv() {
			env = append(env, k+"=http://"+relay)
		}
	}
	return env
}

// LoopbackHTTPClient returns the HTTP client of one in-process Go client
// in a local run: its own connection pool (as a separate process would
// have) whose dialer connects to fake whatever host a request names, from
// a loopback address of its own (returned), by which the fake's journal
// attributes its requests.
func LoopbackHTTPClient(fake string) (*http.Client, *http.Transport, net.IP) {
	src := NextLoopback()
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
