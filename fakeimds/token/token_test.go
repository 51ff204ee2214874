package token

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/identity"
)

var (
	once   sync.Once
	signer *Signer
)

func testSigner(t testing.TB) *Signer {
	once.Do(func() {
		k, err := GenerateKey()
		if err != nil {
			panic(err)
		}
		if signer, err = NewSigner(k); err != nil {
			panic(err)
		}
	})
	return signer
}

func TestKeyRoundTripAndJWKS(t *testing.T) {
	s := testSigner(t)
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, EncodeKeyPEM(s.key), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(path)
	if err != nil || !k.Equal(s.key) {
		t.Fatalf("LoadKeyFile: %v", err)
	}
	if _, err := ParseKeyPEM([]byte("not pem")); err == nil {
		t.Error("garbage parsed as a key")
	}
	b, err := json.Marshal(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s", b)
	}
	k0 := set.Keys[0]
	for _, f := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c"} {
		if _, ok := k0[f]; !ok {
			t.Errorf("JWK lacks %s: %s", f, b)
		}
	}
	if _, ok := k0["d"]; ok {
		t.Fatal("JWKS leaks the private exponent")
	}
	if k0["kid"] != s.KeyID() || k0["x5t"] != s.KeyID() {
		t.Errorf("kid %v x5t %v, want %s", k0["kid"], k0["x5t"], s.KeyID())
	}
	// Servers sharing the key (one per node) publish the same key ID.
	if again, err := NewSigner(s.key); err != nil || again.KeyID() != s.KeyID() {
		t.Errorf("a second signer for the same key has kid %s, want %s (%v)", again.KeyID(), s.KeyID(), err)
	}
}

func TestMintClaimsAndShift(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMinter(testSigner(t), "tenant-default", WithClock(func() time.Time { return now }))
	id := identity.Identity{Name: "a", ClientID: "cid", ObjectID: "oid", ResourceID: "/subscriptions/s/x", TokenLifetime: 10 * time.Minute}
	for _, tc := range []struct {
		name          string
		shift         Shift
		iat, nbf, exp int64
	}{
		{"identity lifetime", Shift{}, 1_800_000_000, 1_800_000_000 - 300, 1_800_000_600},
		{"clock skew", Shift{Offset: -time.Hour}, 1_800_000_000 - 3600, 1_800_000_000 - 3900, 1_800_000_000 - 3000},
		{"expired", Shift{Lifetime: -time.Minute}, 1_800_000_000, 1_800_000_000 - 300, 1_800_000_000 - 60},
		{"short lifetime has nbf=iat", Shift{Lifetime: 30 * time.Second}, 1_800_000_000, 1_800_000_000, 1_800_000_030},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := m.Mint(id, "https://vault.azure.net", tc.shift)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			var c Claims
			if err := parsed.Claims(m.Signer().PublicKey(), &c); err != nil {
				t.Fatal(err)
			}
			if c.IssuedAt != tc.iat || c.NotBefore != tc.nbf || c.Expiry != tc.exp {
				t.Errorf("iat/nbf/exp = %d/%d/%d, want %d/%d/%d", c.IssuedAt, c.NotBefore, c.Expiry, tc.iat, tc.nbf, tc.exp)
			}
			if c.TenantID != "tenant-default" || c.Issuer != "https://sts.windows.net/tenant-default/" || c.ObjectID != "oid" || c.ResourceID != "/subscriptions/s/x" {
				t.Errorf("claims %+v", c)
			}
			if tok.ExpiresOn.Unix() != c.Expiry {
				t.Errorf("ExpiresOn %d != exp %d", tok.ExpiresOn.Unix(), c.Expiry)
			}
		})
	}
}

func TestIssueCacheKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMinter(testSigner(t), "t", WithClock(func() time.Time { return now }))
	a := identity.Identity{ClientID: "A"}
	first, _ := m.Issue(a, "r")
	if again, _ := m.Issue(identity.Identity{ClientID: "a"}, "r"); again.Raw != first.Raw || !again.Cached {
		t.Error("client ID case changed the cache key")
	}
	// The key remembered for the identity asked for last (keyOf) must
	// follow the identity: B, then A again, then B again.
	b, _ := m.Issue(identity.Identity{ClientID: "B"}, "r")
	if b.Raw == first.Raw || b.Cached {
		t.Error("another identity got A's token")
	}
	if again, _ := m.Issue(a, "r"); again.Raw != first.Raw {
		t.Error("A's token was not kept while B asked")
	}
	if bAgain, _ := m.Issue(identity.Identity{ClientID: "b"}, "r"); bAgain.Raw != b.Raw {
		t.Error("B's token was not served from the cache")
	}
	a.TokenLifetime = time.Hour
	if other, _ := m.Issue(a, "r"); other.Raw == first.Raw {
		t.Error("a lifetime change reused the old token")
	}
	m.Flush()
	if fresh, _ := m.Issue(identity.Identity{ClientID: "A"}, "r"); fresh.Cached {
		t.Error("Flush kept the token")
	}
	if in := first.ExpiresIn(now.Add(25 * time.Hour)); in != 0 {
		t.Errorf("ExpiresIn after expiry = %d", in)
	}
}
