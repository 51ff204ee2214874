package probe

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/pkg/proberesult"
)

// unknownID is a client ID the test host has no identity for.
const unknownID = "99999999-9999-4999-8999-999999999999"

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
func runProbe(t *testing.T, cfg Config) ([]proberesult.Result, proberesult.Summary) {
	t.Helper()
	var out bytes.Buffer
	r, err := NewRunner(cfg, &out)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := r.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return parseOutput(t, out.Bytes())
}

func parseOutput(t *testing.T, b []byte) ([]proberesult.Result, proberesult.Summary) {
	t.Helper()
	var results []proberesult.Result
	var sum *proberesult.Summary
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		l, err := proberesult.ParseLine(line)
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
