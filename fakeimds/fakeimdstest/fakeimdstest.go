// Package fakeimdstest runs an in-process fakeimds server for other
// packages' tests: a known test host (its identities are constants that
// tests can assert on), one signing key shared by every server of the test
// binary, and a server on loopback that stops when the test ends.
//
// The package exists so that tests of the probe, the vault, the node agent
// and the control client start the same host the same way instead of each
// keeping a copy of this setup. Package fakeimds's own tests cannot use it
// (it imports fakeimds) and keep their own helpers.
package fakeimdstest

import (
	"context"
	"crypto/rsa"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// Identities and tenant of the test host. The system-assigned identity and
// the tenant are those of config.Default, so that a test asserting on them
// does not depend on whether it changed the host; the user-assigned ones
// are the host's "id-a" and "id-b" in Config.
const (
	SystemClientID = "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01"
	SystemObjectID = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a501"
	UserAClientID  = "11111111-1111-4111-8111-111111111111"
	UserAObjectID  = "22222222-2222-4222-8222-222222222222"
	UserBClientID  = "33333333-3333-4333-8333-333333333333"
	UserBObjectID  = "44444444-4444-4444-8444-444444444444"
	TenantID       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
)

// Names of the user-assigned identities in Config; their resource IDs are
// derived from them (config.Config.UserAssignedResourceID).
const (
	UserAName = "id-a"
	UserBName = "id-b"
)

var (
	keyOnce, secondKeyOnce sync.Once
	key, secondKey         *rsa.PrivateKey
)

// Key returns the RSA key that New and Start sign tokens with. It is made
// once per test binary because generating a key per server would dominate
// the tests' run time.
func Key() *rsa.PrivateKey {
	keyOnce.Do(func() { key = mustGenerate() })
	return key
}

// SecondKey returns another key made once per test binary, different from
// Key, for tests that need tokens a verifier trusting Key must refuse (or
// two servers with key sets of their own). It is made only when asked for,
// so tests that need one key pay for one.
func SecondKey() *rsa.PrivateKey {
	secondKeyOnce.Do(func() { secondKey = mustGenerate() })
	return secondKey
}

func mustGenerate() *rsa.PrivateKey {
	k, err := token.GenerateKey()
	if err != nil {
		// Only a broken random source fails here; no test could run.
		panic("fakeimdstest: generate RSA key: " + err.Error())
	}
	return k
}

// Config returns the test host: config.Default's host and system-assigned
// identity plus the user-assigned identities id-a and id-b, both listeners
// on loopback at free ports, and throttling off, since tests send bursts
// that the default IMDS limits would answer with 429 (throttling has tests
// of its own in package fakeimds). Its authority TLS directory is empty:
// New fills in a per-test directory unless the caller sets one, because
// the default is a system path tests cannot write to.
func Config() config.Config {
	c := config.Default()
	c.Listen = config.Listen{IMDS: "127.0.0.1:0", Control: "127.0.0.1:0"}
	c.Faces.Authority.TLSDir = ""
	off := false
	c.Chaos.Throttle.Enabled = &off
	c.UserAssigned = []config.Identity{
		{Name: UserAName, ClientID: UserAClientID, ObjectID: UserAObjectID},
		{Name: UserBName, ClientID: UserBClientID, ObjectID: UserBObjectID},
	}
	return c
}

// New builds a server for the test host without running it, for tests
// that serve its handlers themselves (through httptest, or wrapped in a
// handler of their own). mutate, if not nil, changes Config before the
// server is built. The server signs with Key and logs nowhere; opts come
// after those defaults, so a test's WithSigningKey or WithLogger wins.
// New fails the test if the configuration is invalid.
func New(t testing.TB, mutate func(*config.Config), opts ...fakeimds.Option) *fakeimds.Server {
	t.Helper()
	c := Config()
	if mutate != nil {
		mutate(&c)
	}
	if c.Faces.Authority.TLSDir == "" {
		c.Faces.Authority.TLSDir = t.TempDir()
	}
	defaults := []fakeimds.Option{fakeimds.WithSigningKey(Key()), fakeimds.WithLogger(slog.New(slog.DiscardHandler))}
	s, err := fakeimds.New(c, append(defaults, opts...)...)
	if err != nil {
		t.Fatalf("fakeimds.New: %v", err)
	}
	return s
}

// startTimeout bounds how long Start waits for the listeners: on loopback
// they open at once, so a server that has not started by then never will.
const startTimeout = 10 * time.Second

// Start builds a server as New does, runs it on its configured listeners
// and returns it with the addresses it listens on. The server stops when
// the test ends, and the test's cleanup waits for it to shut down, so that
// no server outlives its test; a Run error is reported as a test error.
func Start(t testing.TB, mutate func(*config.Config), opts ...fakeimds.Option) (*fakeimds.Server, fakeimds.Addrs) {
	t.Helper()
	s := New(t, mutate, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan fakeimds.Addrs, 1)
	// finished is closed once Run has returned runErr: both the start
	// below and the cleanup wait for it, so a channel read once would not do.
	finished := make(chan struct{})
	var runErr error
	go func() {
		defer close(finished)
		runErr = s.Run(ctx, func(a fakeimds.Addrs) { addrs <- a })
	}()
	reported := false
	t.Cleanup(func() {
		cancel()
		<-finished
		if runErr != nil && !reported {
			t.Errorf("fakeimds Run: %v", runErr)
		}
	})
	select {
	case a := <-addrs:
		return s, a
	case <-finished:
		reported = true
		t.Fatalf("fakeimds Run: %v", runErr)
	case <-time.After(startTimeout):
		t.Fatalf("fakeimds did not start in %v", startTimeout)
	}
	return nil, fakeimds.Addrs{}
}
