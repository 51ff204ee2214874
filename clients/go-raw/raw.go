package goraw

import (
	"github.com/idharness/idharness/clients"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// Raw token endpoints and API versions: the oldest each service supports,
// which is what most hand-written clients send.
const (
	IMDSTokenURL         = "http://169.254.169.254/metadata/identity/oauth2/token"
	IMDSAPIVersion       = "2018-02-01"
	AppServiceAPIVersion = "2019-08-01"
)

// maxBody bounds what the raw client reads and records of a response.
const maxBody = 4 << 10

// raw is a hand-written client on plain net/http, for wire checks: it
// sends exactly the documented request (or a deliberately wrong one, for
// negative checks), reports the HTTP status and error body unedited, and
// the JSON type of each field of a 200 answer. It has no cache.
type raw struct {
	o  clients.Options
	hc *http.Client
}

func newRaw(o clients.Options, hc *http.Client) (clients.Client, error) {
	if o.Mode == clients.ModeWorkloadIdentity {
		return nil, errors.New("the raw client speaks IMDS and App Service only; in workload identity mode use azidentity-wi or msal-wi")
	}
	return &raw{o: o, hc: hc}, nil
}

// request builds the token request of the mode.
func (r *raw) request(ctx context.Context, resource string) (*http.Request, error) {
	q := url.Values{}
	q.Set("resource", resource)
	var endpoint string
	hdr := http.Header{}
	if r.o.Mode == clients.ModeAppService {
		endpoint = os.Getenv("IDENTITY_ENDPOINT")
		q.Set("api-version", AppServiceAPIVersion)
		hdr.Set("X-IDENTITY-HEADER", os.Getenv("IDENTITY_HEADER"))
		switch r.o.Identity.Kind {
		case clients.ByClientID:
			q.Set("client_id", r.o.Identity.Value)
		case clients.ByObjectID:
			q.Set("principal_id", r.o.Identity.Value)
		case clients.ByResourceID:
			q.Set("mi_res_id", r.o.Identity.Value)
		}
	} else {
		endpoint = IMDSTokenURL
		q.Set("api-version", IMDSAPIVersion)
		if !r.o.RawNoMetadata {
			hdr.Set("Metadata", "true")
		}
		switch r.o.Identity.Kind {
		case clients.ByClientID:
			q.Set("client_id", r.o.Identity.Value)
		case clients.ByObjectID:
			q.Set("object_id", r.o.Identity.Value)
		case clients.ByResourceID:
			q.Set("msi_res_id", r.o.Identity.Value)
		}
	}
	if r.o.RawForwardedFor != "" {
		hdr.Set("X-Forwarded-For", r.o.RawForwardedFor)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("token endpoint %q is not a URL; check IDENTITY_ENDPOINT", endpoint)
	}
	// Keep any query the endpoint already has, as the SDKs do.
	uq := u.Query()
	for k, v := range q {
		uq[k] = v
	}
	u.RawQuery = uq.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build token request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return req, nil
}

func (r *raw) GetToken(ctx context.Context, resource string) (clients.Token, error) {
	req, err := r.request(ctx, resource)
	if err != nil {
		return clients.Token{}, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return clients.Token{}, fmt.Errorf("token request: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return clients.Token{}, fmt.Errorf("read token response (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return clients.Token{}, &clients.HTTPError{Status: resp.StatusCode, Body: truncate(string(body), maxBody)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return clients.Token{}, &clients.HTTPError{Status: resp.StatusCode, Body: "200 body is not a JSON object: " + truncate(string(body), 256)}
	}
	w := &clients.Wire{FieldTypes: map[string]string{}}
	for k, v := range fields {
		w.FieldTypes[k] = jsonType(v)
	}
	_ = json.Unmarshal(fields["resource"], &w.ResourceEcho)
	var tok string
	if err := json.Unmarshal(fields["access_token"], &tok); err != nil || tok == "" {
		return clients.Token{Wire: w}, errors.New("200 body has no access_token string")
	}
	exp, err := expiresOn(fields["expires_on"])
	if err != nil {
		return clients.Token{Wire: w}, err
	}
	return clients.Token{Value: tok, ExpiresOn: exp, Wire: w}, nil
}

// expiresOn reads expires_on as IMDS writes it (a string of Unix seconds)
// or as other implementations do (a number, or an RFC 3339 date), since
// wire checks report the difference rather than fail on it.
func expiresOn(v json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return time.Time{}, fmt.Errorf("expires_on %s is neither a string nor a number", string(v))
		}
		s = n.String()
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, "1/2/2006 3:04:05 PM -07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expires_on %q is not Unix seconds or a date", s)
}

// jsonType names the JSON type of a raw value.
func jsonType(v json.RawMessage) string {
	if len(v) == 0 {
		return "null"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
