package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine's writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) (string, bool) { return "", false }

// TestServe runs the command with an ACL file, flags and environment, and
// reads a secret with a token from a fakeimds.
func TestServe(t *testing.T) {
	_, fake := fakeimdstest.Start(t, nil)
	fakeURL := "http://" + fake.IMDS
	acl := filepath.Join(t.TempDir(), "acl.yaml")
	if err := os.WriteFile(acl, []byte("secrets:\n  db-password:\n    value: hunter2\n    readers: ["+fakeimdstest.UserAObjectID+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VAULT_JWKS_URL": fakeURL + "/" + fakeimdstest.TenantID + "/discovery/v2.0/keys"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--acl", acl, "--secret", "banner=hello", "--allow", "banner=*"}, &logs, lookup, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("vault did not start")
	}

	q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://vault.azure.net"}, "client_id": {fakeimdstest.UserAClientID}}
	req, _ := http.NewRequest(http.MethodGet, fakeURL+fakeimds.IMDSTokenPath+"?"+q.Encode(), nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()

	for _, tc := range []struct {
		secret string
		status int
		value  string
	}{{"db-password", 200, "hunter2"}, {"banner", 200, "hello"}, {"nope", 404, ""}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/secrets/"+tc.secret+"?api-version=7.4", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Value string `json:"value"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status || body.Value != tc.value {
			t.Errorf("%s: %d %q", tc.secret, resp.StatusCode, body.Value)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"decision","outcome":"allowed","status":200,"reason":"ok","secret":"db-password","oid":"`+fakeimdstest.UserAObjectID) {
		t.Errorf("no decision line in the log:\n%s", logs.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no keys", []string{"--addr", "127.0.0.1:0"}, "no signing keys"},
		{"allow unknown secret", []string{"--jwks-url", "http://x/keys", "--allow", "db=*"}, "no secret \"db\""},
		{"secret without readers", []string{"--jwks-url", "http://x/keys", "--secret", "db=v"}, "no readers"},
		{"bad pair", []string{"--secret", "novalue"}, "want NAME=VALUE"},
		{"argument", []string{"serve"}, "unexpected argument"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &syncBuffer{}, noEnv, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
