package probe

import (
	"bytes"
	"context"
	"crypto/rsa"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
)

// Identities of the test host (fakeimds's defaults for the system one).
const (
	sysClient  = "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01"
	sysObject  = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a501"
	uaClient   = "11111111-1111-4111-8111-111111111111"
	uaObject   = "22222222-2222-4222-8222-222222222222"
	ubClient   = "33333333-3333-4333-8333-333333333333"
	ubObject   = "44444444-4444-4444-8444-444444444444"
	unknownID  = "99999999-9999-4999-8999-999999999999"
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// sharedKey is one signing key for every test server: RSA key generation
// would dominate the tests' run time.
func sharedKey() *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := token.GenerateKey()
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

func testConfig() config.Config {
	c := config.Default()
	c.Listen = config.Listen{IMDS: "127.0.0.1:0", Control: "127.0.0.1:0"}
	// The loops below send bursts; throttling is fakeimds's to test.
	off := false
	c.Chaos.Throttle.Enabled = &off
	c.UserAssigned = []config.Identity{
		{Name: "id-a", ClientID: uaClient, ObjectID: uaObject},
		{Name: "id-b", ClientID: ubClient, ObjectID: ubObject},
	}
	return c
}

// startFake runs a fakeimds server on loopback until the test ends.
func startFake(t *testing.T, mutate func(*config.Config)) (*fakeimds.Server, fakeimds.Addrs) {
	t.Helper()
	c := testConfig()
	c.Faces.Authority.TLSDir = t.TempDir()
	if mutate != nil {
		mutate(&c)
	}
	s, err := fakeimds.New(c, fakeimds.WithSigningKey(sharedKey()), fakeimds.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("fakeimds.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan fakeimds.Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(a fakeimds.Addrs) { addrs <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fakeimds Run: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return s, a
	case err := <-done:
		t.Fatalf("fakeimds Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("fakeimds did not start in 10s")
	}
	return nil, fakeimds.Addrs{}
}

// identityEnv are variables that steer the SDKs to another source or
// identity; tests start without them.
var identityEnv = []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
	"IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
	"AZURE_AUTHORITY_HOST", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"}

func clearIdentityEnv(t *testing.T) {
	t.Helper()
	for _, k := range identityEnv {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
}

// uniqueResource returns a resource no other test asks for: MSAL Go and
// azidentity cache managed identity tokens process-wide, so tests sharing
// a resource would be served from each other's cache.
func uniqueResource(t testing.TB, suffix string) string {
	name := t.Name()
	if suffix != "" {
		name += "." + suffix
	}
	r := strings.NewReplacer("/", ".", "_", "-", " ", "-", "=", "-")
	return "https://" + r.Replace(strings.ToLower(name)) + ".idharness.test"
}

// runProbe runs cfg and returns the result lines and the summary, parsed
// back from the output as a suite would.
func runProbe(t *testing.T, cfg Config) ([]Result, Summary) {
	t.Helper()
	var out bytes.Buffer
	r, err := NewRunner(cfg, &out)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := r.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return parseOutput(t, out.Bytes())
}

func parseOutput(t *testing.T, b []byte) ([]Result, Summary) {
	t.Helper()
	var results []Result
	var sum *Summary
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		l, err := ParseLine(line)
		if err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		if sum != nil {
			t.Fatalf("a line after the summary: %s", line)
		}
		if l.Summary != nil {
			sum = l.Summary
			continue
		}
		results = append(results, l.Result)
	}
	if sum == nil {
		t.Fatalf("no summary line in output:\n%s", b)
	}
	return results, *sum
}
