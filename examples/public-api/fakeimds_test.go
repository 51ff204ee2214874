package publicapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
)

// startFakeIMDS runs a fakeimds in this process on loopback ports of the
// system's choosing and returns its addresses; it stops when the test ends.
func startFakeIMDS(t *testing.T) fakeimds.Addrs {
	t.Helper()
	cfg := config.Default()
	// Loopback only: a control address that is not loopback would need
	// a token file (listen.controlTokenFile).
	cfg.Listen = config.Listen{IMDS: "127.0.0.1:0", Control: "127.0.0.1:0"}
	// The default is a system path; the authority writes its CA here.
	cfg.Faces.Authority.TLSDir = t.TempDir()
	srv, err := fakeimds.New(cfg, fakeimds.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan fakeimds.Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a fakeimds.Addrs) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fakeimds: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("fakeimds did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("fakeimds did not start in 10s")
	}
	return fakeimds.Addrs{}
}

// askToken asks the IMDS face for a system-assigned token, as every
// Azure SDK does, and returns the status and the decoded body.
func askToken(t *testing.T, imds string) (int, map[string]any) {
	t.Helper()
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://vault.azure.net"}}
	req, err := http.NewRequest(http.MethodGet, "http://"+imds+"/metadata/identity/oauth2/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// TestFakeIMDSWithAFault starts fakeimds, sets a fault through its control
// client and sees a client get the fault, then a token once it is gone.
func TestFakeIMDSWithAFault(t *testing.T) {
	ctx := context.Background()
	addrs := startFakeIMDS(t)
	c, err := client.New("http://" + addrs.Control)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	var rule chaos.Rule
	if err := json.Unmarshal([]byte(`{"name":"imds-503","match":{"faces":["imds"]},"action":{"type":"status","status":503}}`), &rule); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddFaults(ctx, rule); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		before func(t *testing.T)
		status int
	}{
		{"with the fault", nil, http.StatusServiceUnavailable},
		{"fault removed", func(t *testing.T) {
			if err := c.RemoveFault(ctx, rule.Name); err != nil {
				t.Fatal(err)
			}
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			status, body := askToken(t, addrs.IMDS)
			if status != tt.status {
				t.Fatalf("status %d (%v), want %d", status, body, tt.status)
			}
			if status == http.StatusOK && body["access_token"] == "" {
				t.Errorf("no access_token in %v", body)
			}
		})
	}

	// The server's side of the same requests, in its journal.
	entries, err := c.Journal(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, e := range entries {
		if e.Face == fakeimds.FaceIMDS {
			got = append(got, e.Status)
		}
	}
	if len(got) != 2 || got[0] != http.StatusServiceUnavailable || got[1] != http.StatusOK {
		t.Errorf("journaled IMDS statuses %v, want [503 200]", got)
	}
}

// TestConfigFileError: a bad configuration file is a *config.FileError,
// whose line another module can read.
func TestConfigFileError(t *testing.T) {
	path := t.TempDir() + "/fakeimds.yaml"
	if err := os.WriteFile(path, []byte("tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47\ntokens:\n  lifetim: 90s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	err := config.LoadFile(&cfg, path)
	var fe *config.FileError
	if !errors.As(err, &fe) || fe.Line != 3 {
		t.Fatalf("error %v, want a *config.FileError at line 3", err)
	}
}
