package vault

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// DefaultAudience is Key Vault's resource URI, the aud its tokens carry.
const DefaultAudience = "https://vault.azure.net"

// Defaults of Config's durations.
const (
	DefaultKeysTTL         = 10 * time.Minute
	DefaultRefetchInterval = 5 * time.Second
	DefaultSkew            = 30 * time.Second
)

// AnyReader in a secret's readers lets every authenticated identity read it.
const AnyReader = "*"

// Secret is one secret and who may read it.
type Secret struct {
	// Value is what a reader gets.
	Value string `json:"value"`
	// Readers are the object IDs (oid claims) allowed to read it; "*"
	// allows any identity with a valid token.
	Readers []string `json:"readers"`
}

// ACL is the file form of the secrets: YAML or JSON,
//
//	secrets:
//	  db-password:
//	    value: hunter2
//	    readers: [22222222-2222-4222-8222-222222222222]
type ACL struct {
	Secrets map[string]Secret `json:"secrets"`
}

// LoadACL reads an ACL file, strictly: unknown fields are errors, given
// with the file and line.
func LoadACL(path string) (ACL, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return ACL{}, fmt.Errorf("read ACL file: %w", err)
	}
	var acl ACL
	if err := yamlfile.Decode(path, b, &acl); err != nil {
		return ACL{}, err
	}
	return acl, nil
}

// Config configures a Server.
type Config struct {
	// Audiences are the aud values accepted, each with or without a
	// trailing slash, as Key Vault accepts both; the first is the resource
	// named in the 401 challenge. Default: DefaultAudience.
	Audiences []string
	// Tenants are the tenants whose issuers are accepted
	// (https://sts.windows.net/{tenant}/ and its v2.0 form); the first is
	// named in the 401 challenge. Default: fakeimds's default tenant.
	Tenants []string
	// JWKSURLs are key sets to fetch, e.g. every node's fakeimds
	// /{tenant}/discovery/v2.0/keys; a token may be signed by a key in any.
	JWKSURLs []string
	// Keys are trusted keys given directly (a JWKS file), besides the URLs.
	Keys []jose.JSONWebKey
	// KeysTTL is how long fetched keys are used before being fetched again.
	KeysTTL time.Duration
	// RefetchInterval is the least time between two fetches, so that
	// tokens with unknown kids cannot make the service hammer the URLs.
	RefetchInterval time.Duration
	// Skew is the leeway on exp and nbf.
	Skew time.Duration
	// AnyKey, when a token's kid is in no key set even after a refetch,
	// tries every trusted key. It suits nodes that share one signing key
	// but publish it under different kids; Azure AD resources match by kid.
	AnyKey bool
	// Secrets maps secret names to values and readers.
	Secrets map[string]Secret
	// BaseURL is the vault's URL in secret ids, e.g.
	// https://idharness.vault.azure.net; default: https:// and the
	// request's Host.
	BaseURL string
}

// withDefaults fills unset fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if len(c.Audiences) == 0 {
		c.Audiences = []string{DefaultAudience}
	}
	if len(c.Tenants) == 0 {
		c.Tenants = []string{config.Default().TenantID}
	}
	if c.KeysTTL <= 0 {
		c.KeysTTL = DefaultKeysTTL
	}
	if c.RefetchInterval < 0 {
		return c, errors.New("refetch interval must not be negative")
	}
	if c.RefetchInterval == 0 {
		c.RefetchInterval = DefaultRefetchInterval
	}
	if c.Skew < 0 {
		return c, errors.New("clock skew must not be negative")
	}
	if len(c.JWKSURLs) == 0 && len(c.Keys) == 0 {
		return c, errors.New("no signing keys to trust: give a JWKS URL (fakeimds's http://HOST/{tenant}/discovery/v2.0/keys) or a JWKS file")
	}
	for _, u := range c.JWKSURLs {
		if p, err := url.Parse(u); err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			return c, fmt.Errorf("JWKS URL %q: want http(s)://HOST/PATH", u)
		}
	}
	for name, s := range c.Secrets {
		if name == "" || strings.ContainsAny(name, "/?#") {
			return c, fmt.Errorf("secret name %q: want a non-empty name without / ? #", name)
		}
		if len(s.Readers) == 0 {
			return c, fmt.Errorf("secret %q has no readers; list the object IDs allowed to read it, or %q for any", name, AnyReader)
		}
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c, nil
}
