package dnsfault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a resolver's control API.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the control API at addr (host:port, as
// Server.Start or Forward returns it).
func NewClient(addr string) *Client {
	return &Client{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
}

// Health checks that the resolver answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, pathHealth, nil, nil)
}

// Resolv returns the resolver pod's own resolv.conf: the search list and
// options the cluster gives pods of its namespace.
func (c *Client) Resolv(ctx context.Context) (Resolv, error) {
	var r Resolv
	err := c.do(ctx, http.MethodGet, pathResolv, nil, &r)
	return r, err
}

// SetFault sets (or replaces) fault id.
func (c *Client) SetFault(ctx context.Context, id string, f Fault) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, pathFaults+url.PathEscape(id), b, nil)
}

// RemoveFault removes fault id and returns how many queries it hit.
func (c *Client) RemoveFault(ctx context.Context, id string) (Removed, error) {
	var r Removed
	err := c.do(ctx, http.MethodDelete, pathFaults+url.PathEscape(id), nil, &r)
	return r, err
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("DNS resolver's control API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("DNS resolver's control API, %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DNS resolver's control API, %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("DNS resolver's control API, %s %s: %w", method, path, err)
	}
	return nil
}
