// Package client is the Go client of the fakeimds control API: attach and
// detach identities, change token settings, read and stream the request
// journal, reset. Tests and suites drive the fake through it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
)

// Client talks to one fakeimds control listener.
type Client struct {
	base string
	hc   *http.Client
}

// DefaultTimeout bounds each call of a Client made without
// WithHTTPClient: the control API answers at once, so a call that takes
// longer means the fake is stuck or unreachable, and a caller should
// hear so rather than wait forever.
const DefaultTimeout = 30 * time.Second

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client, used as given: its Timeout bounds
// each call except StreamJournal's (default: a client with no proxy and
// DefaultTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client for the control API at base, e.g.
// "http://127.0.0.1:8079".
func New(base string, opts ...Option) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("control API address %q: want http://HOST:PORT", base)
	}
	// The control API is reached directly; a proxy from the environment
	// would send test traffic elsewhere.
	c := &Client{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: DefaultTimeout}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// APIError is an error answer from the control API.
type APIError struct {
	Status  int
	Message string
	// Field names the request field at fault, if one is.
	Field string
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("fakeimds control API: %d: %s: %s", e.Status, e.Field, e.Message)
	}
	return fmt.Sprintf("fakeimds control API: %d: %s", e.Status, e.Message)
}

// Selector names one identity for the calls that change or remove one.
// Set exactly one field.
type Selector struct {
	ClientID   string
	ObjectID   string
	ResourceID string
}

func (s Selector) query() string {
	v := url.Values{}
	if s.ClientID != "" {
		v.Set("client_id", s.ClientID)
	}
	if s.ObjectID != "" {
		v.Set("object_id", s.ObjectID)
	}
	if s.ResourceID != "" {
		v.Set("resource_id", s.ResourceID)
	}
	return v.Encode()
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w%s", method, path, err, c.timeoutHint(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w%s", method, path, err, c.timeoutHint(ctx, err))
	}
	return nil
}

// timeoutHint says what to do when err is the HTTP client's timeout
// rather than the caller's context ending.
func (c *Client) timeoutHint(ctx context.Context, err error) string {
	var ne net.Error
	if c.hc.Timeout <= 0 || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
		return ""
	}
	return fmt.Sprintf(" (the fakeimds control API at %s did not answer within %v: check that fakeimds runs and its control port is reachable, or pass a client with a longer timeout: client.WithHTTPClient)", c.base, c.hc.Timeout)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return &APIError{Status: resp.StatusCode, Message: e.Error, Field: e.Field}
	}
	return &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
}

// Health returns nil once the server answers its health check.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, api.PathHealth, nil, nil)
}

// WaitReady polls Health until it succeeds or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := c.Health(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fakeimds at %s not ready: %w (last error: %v)", c.base, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Config returns the configuration the server started with.
func (c *Client) Config(ctx context.Context) (config.Config, error) {
	var out config.Config
	return out, c.do(ctx, http.MethodGet, api.PathConfig, nil, &out)
}

// Identities lists the attached identities, system-assigned first.
func (c *Client) Identities(ctx context.Context) ([]identity.Identity, error) {
	var out []identity.Identity
	return out, c.do(ctx, http.MethodGet, api.PathIdentities, nil, &out)
}

// Attach attaches a user-assigned identity; an empty resourceId is derived
// from the host's subscription, resource group and the identity's name.
func (c *Client) Attach(ctx context.Context, id config.Identity) (identity.Identity, error) {
	var out identity.Identity
	return out, c.do(ctx, http.MethodPost, api.PathIdentities, id, &out)
}

// Detach removes the user-assigned identity sel names.
func (c *Client) Detach(ctx context.Context, sel Selector) (identity.Identity, error) {
	var out identity.Identity
	return out, c.do(ctx, http.MethodDelete, api.PathIdentities+"?"+sel.query(), nil, &out)
}

// SetIdentityLifetime sets the token lifetime of one identity; zero
// restores the server default.
func (c *Client) SetIdentityLifetime(ctx context.Context, sel Selector, d time.Duration) (identity.Identity, error) {
	var out identity.Identity
	p := api.IdentityPatch{TokenLifetime: &config.Duration{Duration: d}}
	return out, c.do(ctx, http.MethodPatch, api.PathIdentities+"?"+sel.query(), p, &out)
}

// SetSystem gives the host a system-assigned identity, replacing any.
func (c *Client) SetSystem(ctx context.Context, id config.Identity) (identity.Identity, error) {
	var out identity.Identity
	return out, c.do(ctx, http.MethodPut, api.PathSystem, id, &out)
}

// RemoveSystem removes the host's system-assigned identity.
func (c *Client) RemoveSystem(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, api.PathSystem, nil, nil)
}

// Tokens returns the token settings in force.
func (c *Client) Tokens(ctx context.Context) (api.TokenSettings, error) {
	var out api.TokenSettings
	return out, c.do(ctx, http.MethodGet, api.PathTokens, nil, &out)
}

// SetTokens changes the token settings; nil fields keep their value.
func (c *Client) SetTokens(ctx context.Context, s api.TokenSettings) (api.TokenSettings, error) {
	var out api.TokenSettings
	return out, c.do(ctx, http.MethodPut, api.PathTokens, s, &out)
}

// FlushTokens empties the server's token cache.
func (c *Client) FlushTokens(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, api.PathTokensFlush, nil, nil)
}

// Journal returns the journal entries after sequence number since.
func (c *Client) Journal(ctx context.Context, since uint64) ([]journal.Entry, error) {
	return c.JournalFrom(ctx, since)
}

// JournalFrom returns the journal entries after sequence number since
// that came from one of hosts (IP addresses); every entry when hosts is
// empty. The server filters, so only those entries travel.
func (c *Client) JournalFrom(ctx context.Context, since uint64, hosts ...string) ([]journal.Entry, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if len(hosts) > 0 {
		q["remote"] = hosts
	}
	var out []journal.Entry
	return out, c.do(ctx, http.MethodGet, api.PathJournal+"?"+q.Encode(), nil, &out)
}

// ResetJournal forgets the journal's entries (sequence numbers go on).
func (c *Client) ResetJournal(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, api.PathJournal, nil, nil)
}

// Reset restores the identities and token settings the server started
// with and empties the token cache and journal.
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, api.PathReset, nil, nil)
}

// Chaos returns the fault seed, throttling limits and rules.
func (c *Client) Chaos(ctx context.Context) (api.ChaosState, error) {
	var out api.ChaosState
	return out, c.do(ctx, http.MethodGet, api.PathChaos, nil, &out)
}

// Faults lists the fault rules with their state and counters.
func (c *Client) Faults(ctx context.Context) ([]chaos.RuleStatus, error) {
	var out []chaos.RuleStatus
	return out, c.do(ctx, http.MethodGet, api.PathFaults, nil, &out)
}

// AddFaults adds rules, all or none; their schedules start now.
func (c *Client) AddFaults(ctx context.Context, rules ...chaos.Rule) ([]chaos.RuleStatus, error) {
	var out []chaos.RuleStatus
	return out, c.do(ctx, http.MethodPost, api.PathFaults, rules, &out)
}

// RemoveFault removes the named rule.
func (c *Client) RemoveFault(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, api.PathFaults+"?name="+url.QueryEscape(name), nil, nil)
}

// ResetFaults removes every rule.
func (c *Client) ResetFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, api.PathFaults, nil, nil)
}

// Throttle returns the throttling limits in force.
func (c *Client) Throttle(ctx context.Context) (chaos.Limits, error) {
	var out chaos.Limits
	return out, c.do(ctx, http.MethodGet, api.PathThrottle, nil, &out)
}

// SetThrottle replaces the throttling limits; zero limits take IMDS's.
func (c *Client) SetThrottle(ctx context.Context, l chaos.Limits) (chaos.Limits, error) {
	var out chaos.Limits
	return out, c.do(ctx, http.MethodPut, api.PathThrottle, l, &out)
}

// ErrStop, returned by a StreamJournal callback, ends the stream without error.
var ErrStop = errors.New("stop streaming")

// StreamJournal calls fn for each entry after since, then for each new
// entry as it is served, until fn returns an error, ctx ends or the
// server closes the stream. The HTTP client's Timeout does not apply: the
// stream lasts as long as ctx.
func (c *Client) StreamJournal(ctx context.Context, since uint64, fn func(journal.Entry) error) error {
	path := api.PathJournalWatch + "?since=" + strconv.FormatUint(since, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("stream journal: %w", err)
	}
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("stream journal: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue // keep-alive
		}
		var e journal.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("stream journal: decode entry: %w", err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("stream journal: %w", err)
	}
	return ctx.Err()
}
