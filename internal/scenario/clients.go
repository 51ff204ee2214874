package scenario

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
)

// imdsTokenURL is where the SDKs send managed identity token requests;
// the clients' transports connect to the fake whatever the URL says.
const imdsTokenURL = "http://169.254.169.254/metadata/identity/oauth2/token"

// clientTag marks each simulated client's requests in their User-Agent
// so that the fake's journal can attribute them.
const clientTag = "idharness-client/"

var clientTagPattern = regexp.MustCompile(regexp.QuoteMeta(clientTag) + `([a-z0-9-]+)`)

// clientOf returns the client named in a journal entry's User-Agent.
func clientOf(userAgent string) string {
	if m := clientTagPattern.FindStringSubmatch(userAgent); m != nil {
		return m[1]
	}
	return ""
}

// identityEnv are variables that make the SDKs use another managed
// identity source than IMDS, or another identity than the one asked for.
var identityEnv = []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
	"IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS"}

// CheckEnv returns an error naming the environment variables that would
// steer the SDK clients away from the fake IMDS.
func CheckEnv() error {
	var set []string
	for _, k := range identityEnv {
		if _, ok := os.LookupEnv(k); ok {
			set = append(set, k)
		}
	}
	if len(set) > 0 {
		return fmt.Errorf("unset %s before running a scenario: they make the SDK clients use another managed identity source or credential than the fake IMDS", strings.Join(set, ", "))
	}
	return nil
}

// tagTransport adds the client's tag to every request's User-Agent.
type tagTransport struct {
	base http.RoundTripper
	tag  string
}

func (t *tagTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	ua := r2.Header.Get("User-Agent")
	if ua != "" {
		ua += " "
	}
	r2.Header.Set("User-Agent", ua+t.tag)
	return t.base.RoundTrip(r2)
}

// redirectClient returns an HTTP client for one simulated client: its
// own connection pool (as a separate process would have) whose dialer
// connects to the fake's address whatever host a request names, and
// which tags requests with the client's name.
func redirectClient(addr, name string) (*http.Client, *http.Transport) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: &tagTransport{base: tr, tag: clientTag + name}}, tr
}

// selection is how a client names its identity: at most one field set.
type selection struct {
	ClientID, ObjectID, ResourceID string
}

// getter asks for one token and returns the access token.
type getter func(ctx context.Context) (string, error)

// dacEnvMu serializes DefaultAzureCredential construction, which reads
// AZURE_TOKEN_CREDENTIALS.
var dacEnvMu sync.Mutex

// newGetter builds one client of kind.
func newGetter(kind string, sel selection, resource string, hc *http.Client) (getter, error) {
	switch kind {
	case KindManagedIdentity:
		var id azidentity.ManagedIDKind
		switch {
		case sel.ClientID != "":
			id = azidentity.ClientID(sel.ClientID)
		case sel.ObjectID != "":
			id = azidentity.ObjectID(sel.ObjectID)
		case sel.ResourceID != "":
			id = azidentity.ResourceID(sel.ResourceID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ID: id, ClientOptions: azcore.ClientOptions{Transport: hc},
		})
		if err != nil {
			return nil, fmt.Errorf("create ManagedIdentityCredential: %w", err)
		}
		return azcoreGetter(cred, resource), nil
	case KindDefault:
		cred, err := newDefaultCredential(hc)
		if err != nil {
			return nil, err
		}
		return azcoreGetter(cred, resource), nil
	case KindMSAL:
		id := managedidentity.SystemAssigned()
		switch {
		case sel.ClientID != "":
			id = managedidentity.UserAssignedClientID(sel.ClientID)
		case sel.ObjectID != "":
			id = managedidentity.UserAssignedObjectID(sel.ObjectID)
		case sel.ResourceID != "":
			id = managedidentity.UserAssignedResourceID(sel.ResourceID)
		}
		c, err := managedidentity.New(id, managedidentity.WithHTTPClient(hc))
		if err != nil {
			return nil, fmt.Errorf("create MSAL managed identity client: %w", err)
		}
		return func(ctx context.Context) (string, error) {
			ar, err := c.AcquireToken(ctx, resource)
			return ar.AccessToken, err
		}, nil
	case KindHTTP:
		return httpGetter(hc, sel, resource), nil
	}
	return nil, fmt.Errorf("unknown client kind %q", kind)
}

// newDefaultCredential builds a DefaultAzureCredential limited to its
// production credentials (environment, workload identity, managed
// identity), so that it never runs az, azd or PowerShell; with that
// limit it still probes IMDS before its first token request.
func newDefaultCredential(hc *http.Client) (*azidentity.DefaultAzureCredential, error) {
	dacEnvMu.Lock()
	defer dacEnvMu.Unlock()
	if err := os.Setenv("AZURE_TOKEN_CREDENTIALS", "prod"); err != nil {
		return nil, fmt.Errorf("set AZURE_TOKEN_CREDENTIALS: %w", err)
	}
	defer os.Unsetenv("AZURE_TOKEN_CREDENTIALS")
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc},
	})
	if err != nil {
		return nil, fmt.Errorf("create DefaultAzureCredential: %w", err)
	}
	return cred, nil
}

func azcoreGetter(cred azcore.TokenCredential, resource string) getter {
	scopes := []string{resource + "/.default"}
	return func(ctx context.Context) (string, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
		return tok.Token, err
	}
}

// httpGetter is a naive client: one GET per attempt, no cache, no retry.
func httpGetter(hc *http.Client, sel selection, resource string) getter {
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {resource}}
	switch {
	case sel.ClientID != "":
		q.Set("client_id", sel.ClientID)
	case sel.ObjectID != "":
		q.Set("object_id", sel.ObjectID)
	case sel.ResourceID != "":
		q.Set("msi_res_id", sel.ResourceID)
	}
	u := imdsTokenURL + "?" + q.Encode()
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Metadata", "true")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("read token response: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("IMDS answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
			return "", fmt.Errorf("IMDS answered 200 without a token: %q", truncate(string(body), 200))
		}
		return tr.AccessToken, nil
	}
}

// tokenClaims are the claims the expectations check.
type tokenClaims struct {
	AppID string `json:"appid"`
	Exp   int64  `json:"exp"`
}

// readClaims decodes a JWT's payload without verifying it: the run only
// needs to know whose token a client was handed and until when.
func readClaims(tok string) (tokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tokenClaims{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
