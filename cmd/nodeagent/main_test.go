package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNewServer: the limits that keep pods from holding the agent's
// connections, and the header limit enforced on the wire.
func TestNewServer(t *testing.T) {
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") }))
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout > 0 && srv.ReadHeaderTimeout <= 30*time.Second},
		{"IdleTimeout", srv.IdleTimeout > 0 && srv.IdleTimeout <= 2*time.Minute},
		{"MaxHeaderBytes", srv.MaxHeaderBytes > 0 && srv.MaxHeaderBytes <= 64<<10},
	} {
		if !c.ok {
			t.Errorf("%s not set within bounds: %+v", c.name, srv)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, tc := range []struct {
		name   string
		header int
		want   int
	}{
		{"small headers", 512, http.StatusOK},
		{"headers over the limit", 128 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", tc.header))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
