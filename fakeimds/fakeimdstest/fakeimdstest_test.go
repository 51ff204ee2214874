package fakeimdstest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// TestConstantsMatchDefault: the system identity and tenant constants are
// literals, so a change to config.Default must show up here rather than as
// puzzling GUID mismatches in other packages' tests.
func TestConstantsMatchDefault(t *testing.T) {
	d := config.Default()
	if d.SystemAssigned.ClientID != SystemClientID || d.SystemAssigned.ObjectID != SystemObjectID || d.TenantID != TenantID {
		t.Fatalf("config.Default has system %+v, tenant %s", d.SystemAssigned, d.TenantID)
	}
}

func TestStart(t *testing.T) {
	s, a := Start(t, func(c *config.Config) { c.UserAssigned = c.UserAssigned[:1] })
	if s.Minter().Signer().KeyID() != New(t, nil).Minter().Signer().KeyID() {
		t.Error("servers do not share the signing key")
	}
	if got := len(s.Store().List()); got != 2 {
		t.Errorf("%d identities after mutate, want the system one and id-a", got)
	}
	for id, want := range map[string]string{"": SystemObjectID, UserAClientID: UserAObjectID} {
		q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://vault.azure.net"}}
		if id != "" {
			q.Set("client_id", id)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+a.IMDS+fakeimds.IMDSTokenPath+"?"+q.Encode(), nil)
		req.Header.Set("Metadata", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("client_id %q: %d %v", id, resp.StatusCode, err)
		}
		var c token.Claims
		tok, err := jwt.ParseSigned(body.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
		if err == nil {
			err = tok.Claims(&Key().PublicKey, &c)
		}
		if err != nil || c.ObjectID != want {
			t.Errorf("client_id %q: oid %q %v, want %s signed with Key", id, c.ObjectID, err, want)
		}
	}
}

// failRecorder stands in for a test's T: it records failures and
// cleanups, and ends the calling goroutine on Fatalf as T does.
type failRecorder struct {
	testing.TB
	failures []string
	cleanups []func()
}

func (r *failRecorder) Helper()          {}
func (r *failRecorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *failRecorder) Errorf(f string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(f, a...))
}
func (r *failRecorder) Fatalf(f string, a ...any) {
	r.Errorf(f, a...)
	runtime.Goexit()
}

// TestStartFailure: a server that cannot listen fails the test once, and
// the cleanup does not wait for a Run that has already returned.
func TestStartFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := &failRecorder{TB: t}
	started := make(chan struct{})
	go func() {
		defer close(started)
		Start(r, func(c *config.Config) { c.Listen.IMDS = busy.Addr().String() })
	}()
	<-started
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
	}()
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		t.Fatal("cleanup hangs after a failed start")
	}
	if len(r.failures) != 1 || !strings.Contains(r.failures[0], "fakeimds Run") {
		t.Fatalf("failures %q, want one from Run", r.failures)
	}
}
