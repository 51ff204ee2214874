package client

import (
	"net/http"

	"github.com/idharness/idharness/fakeimds/api"
)

// TokenTransport returns a RoundTripper that adds the control API's shared
// secret to every request and then uses base (http.DefaultTransport when
// nil). Give it to WithHTTPClient for a fakeimds started with
// listen.controlTokenFile.
func TokenTransport(token string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return tokenTransport{token: token, base: base}
}

type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// RoundTrippers must not change the caller's request.
	r := req.Clone(req.Context())
	r.Header.Set(api.HeaderControlToken, t.token)
	return t.base.RoundTrip(r)
}
