package fakeimds

// External issuers' signing keys, fetched as Azure AD fetches them and
// cached so that a burst of token exchanges costs one fetch.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/idharness/idharness/fakeimds/config"
)

const (
	// keyTTL is how long fetched keys are trusted before being fetched
	// again; Kubernetes and CI issuers rotate over days, and a rotation is
	// picked up sooner through an unknown key ID.
	keyTTL = 10 * time.Minute
	// keyRefetchMin spaces refetches caused by unknown key IDs, so that
	// assertions naming random key IDs cannot turn into a fetch each.
	keyRefetchMin = time.Second
	// fetchTimeout bounds one discovery or JWKS fetch.
	fetchTimeout = 10 * time.Second
	// maxKeyDocBytes bounds a discovery document or key set.
	maxKeyDocBytes = 1 << 20
)

// keyCache holds each issuer's keys. It is safe for concurrent use; each
// issuer's fetches are serialized, so concurrent misses cause one fetch.
type keyCache struct {
	log     *slog.Logger
	issuers map[string]config.Issuer // by URL without trailing slash
	clients map[string]*http.Client  // by CA file ("" for system roots)
	now     func() time.Time
	// ttl and refetchMin are keyTTL and keyRefetchMin; tests shorten them.
	ttl, refetchMin time.Duration

	mu      sync.Mutex
	entries map[string]*keyEntry
}

type keyEntry struct {
	mu      sync.Mutex
	set     jose.JSONWebKeySet
	fetched time.Time // zero until the first successful fetch
	tried   time.Time // last fetch attempt, successful or not
}

// newKeyCache prepares the cache for the configured issuers, reading their
// CA files now so that a bad one is reported at start.
func newKeyCache(issuers []config.Issuer, log *slog.Logger) (*keyCache, error) {
	kc := &keyCache{
		log:        log,
		issuers:    map[string]config.Issuer{},
		clients:    map[string]*http.Client{"": newFetchClient(nil)},
		now:        time.Now,
		ttl:        keyTTL,
		refetchMin: keyRefetchMin,
		entries:    map[string]*keyEntry{},
	}
	for _, is := range issuers {
		kc.issuers[strings.TrimSuffix(is.URL, "/")] = is
		if is.CAFile == "" || kc.clients[is.CAFile] != nil {
			continue
		}
		pem, err := os.ReadFile(is.CAFile)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: read CA file: %w", is.URL, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("issuer %s: CA file %s holds no PEM certificate", is.URL, is.CAFile)
		}
		kc.clients[is.CAFile] = newFetchClient(pool)
	}
	return kc, nil
}

func newFetchClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: fetchTimeout}
}

// issuerConfig returns how to find iss's keys: its configured entry, or
// OIDC discovery at the issuer URL itself.
func (kc *keyCache) issuerConfig(iss string) config.Issuer {
	if is, ok := kc.issuers[strings.TrimSuffix(iss, "/")]; ok {
		return is
	}
	return config.Issuer{URL: iss}
}

// lookup returns iss's keys with key ID kid (every key when kid is empty).
// Keys older than the TTL are fetched again; an unknown kid triggers a
// refetch, at most once per refetchMin, since the issuer may have rotated.
// If a refresh fails, the keys already held keep being used.
func (kc *keyCache) lookup(ctx context.Context, iss, kid string) ([]jose.JSONWebKey, error) {
	kc.mu.Lock()
	e := kc.entries[iss]
	if e == nil {
		e = &keyEntry{}
		kc.entries[iss] = e
	}
	kc.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := kc.now()
	refresh := func() error {
		e.tried = now
		set, err := kc.fetch(ctx, kc.issuerConfig(iss))
		if err != nil {
			return err
		}
		e.set, e.fetched = set, now
		return nil
	}
	fresh := false
	if e.fetched.IsZero() || now.Sub(e.fetched) >= kc.ttl {
		fresh = true
		if err := refresh(); err != nil {
			if e.fetched.IsZero() {
				return nil, err
			}
			kc.log.Warn("refresh issuer keys; using the cached ones", "issuer", iss, "err", err)
		}
	}
	keys := pick(e.set, kid)
	if len(keys) == 0 && !fresh && now.Sub(e.tried) >= kc.refetchMin {
		if err := refresh(); err != nil {
			kc.log.Warn("refetch issuer keys for an unknown key ID", "issuer", iss, "kid", kid, "err", err)
		}
		keys = pick(e.set, kid)
	}
	return keys, nil
}

func pick(set jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

// fetch reads is's key set: from its JWKS file, its JWKS URL, or the
// jwks_uri of its OIDC discovery document.
func (kc *keyCache) fetch(ctx context.Context, is config.Issuer) (jose.JSONWebKeySet, error) {
	if is.JWKSFile != "" {
		b, err := os.ReadFile(is.JWKSFile)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("read JWKS file: %w", err)
		}
		set, err := decodeJWKS(b)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("JWKS file %s: %w", is.JWKSFile, err)
		}
		return set, nil
	}
	client := kc.clients[is.CAFile]
	jwksURL := is.JWKSURL
	if jwksURL == "" {
		disc := strings.TrimSuffix(is.URL, "/") + "/.well-known/openid-configuration"
		b, err := get(ctx, client, disc)
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		var doc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("parse %s: %w", disc, err)
		}
		if doc.JWKSURI == "" {
			return jose.JSONWebKeySet{}, fmt.Errorf("%s has no jwks_uri", disc)
		}
		jwksURL = doc.JWKSURI
	}
	b, err := get(ctx, client, jwksURL)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	set, err := decodeJWKS(b)
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%s: %w", jwksURL, err)
	}
	return set, nil
}

// get fetches a JSON document, refusing anything but a 200.
func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyDocBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %s", u, resp.Status)
	}
	return b, nil
}
