package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fetchTimeout bounds one JWKS fetch.
const fetchTimeout = 10 * time.Second

// maxJWKS bounds a key set document.
const maxJWKS = 1 << 20

// ErrNoKeys is returned when no signing key could be obtained at all.
var ErrNoKeys = errors.New("no signing keys available")

// KeySet holds the trusted signing keys: fixed ones and those fetched
// from JWKS URLs, refetched when older than the TTL or when a token names
// a kid none of them has (at most once per refetch interval). A URL that
// fails keeps its previous keys: a resource keeps working through a
// metadata outage as long as keys do not rotate. It is safe for
// concurrent use.
type KeySet struct {
	urls       []string
	static     []jose.JSONWebKey
	ttl        time.Duration
	minRefetch time.Duration
	hc         *http.Client
	now        func() time.Time
	log        *slog.Logger

	fetchMu sync.Mutex // one refresh at a time

	mu          sync.RWMutex
	byURL       map[string][]jose.JSONWebKey
	fetched     time.Time // last refresh at which every URL answered
	lastAttempt time.Time
	lastErr     error
	fetches     int
}

// NewKeySet returns a key set over urls and static keys.
func NewKeySet(urls []string, static []jose.JSONWebKey, ttl, minRefetch time.Duration, hc *http.Client, now func() time.Time, log *slog.Logger) *KeySet {
	return &KeySet{urls: urls, static: static, ttl: ttl, minRefetch: minRefetch, hc: hc, now: now, log: log, byURL: map[string][]jose.JSONWebKey{}}
}

// LoadJWKSFile reads a JSON Web Key Set file.
func LoadJWKSFile(path string) ([]jose.JSONWebKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS file: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS file %s: %w", path, err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("JWKS file %s holds no keys", path)
	}
	return set.Keys, nil
}

// Fetches returns how many fetch rounds the set has made.
func (k *KeySet) Fetches() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.fetches
}

// Lookup returns the keys with kid, refreshing first when the fetched
// keys are stale or none has kid. It returns no keys and no error when
// kid is unknown, and ErrNoKeys when the set is empty.
func (k *KeySet) Lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if k.stale() {
		k.refresh(ctx)
	}
	keys, total := k.find(kid)
	if len(keys) == 0 && len(k.urls) > 0 {
		k.refresh(ctx)
		keys, total = k.find(kid)
	}
	if total == 0 {
		k.mu.RLock()
		err := k.lastErr
		k.mu.RUnlock()
		if err == nil {
			return nil, fmt.Errorf("%w: the key sets are empty", ErrNoKeys)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoKeys, err)
	}
	return keys, nil
}

// All returns every trusted key.
func (k *KeySet) All() []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	all := append([]jose.JSONWebKey(nil), k.static...)
	for _, u := range k.urls {
		all = append(all, k.byURL[u]...)
	}
	return all
}

// find returns the keys with kid and how many keys there are in all.
func (k *KeySet) find(kid string) ([]jose.JSONWebKey, int) {
	all := k.All()
	var out []jose.JSONWebKey
	for _, key := range all {
		if key.KeyID == kid {
			out = append(out, key)
		}
	}
	return out, len(all)
}

func (k *KeySet) stale() bool {
	if len(k.urls) == 0 {
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.fetched.IsZero() || k.now().Sub(k.fetched) >= k.ttl
}

// refresh fetches every URL, unless a fetch was attempted within the
// refetch interval.
func (k *KeySet) refresh(ctx context.Context) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	recent := !k.lastAttempt.IsZero() && k.now().Sub(k.lastAttempt) < k.minRefetch
	k.mu.RUnlock()
	if recent {
		return
	}
	type got struct {
		keys []jose.JSONWebKey
		err  error
	}
	results := make([]got, len(k.urls))
	var wg sync.WaitGroup
	for i, u := range k.urls {
		wg.Go(func() {
			keys, err := k.fetch(ctx, u)
			results[i] = got{keys, err}
		})
	}
	wg.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetches++
	k.lastAttempt = k.now()
	var errs []error
	for i, u := range k.urls {
		if results[i].err != nil {
			errs = append(errs, results[i].err)
			k.log.Warn("fetch signing keys", "url", u, "err", results[i].err, "keeping", len(k.byURL[u]))
			continue
		}
		k.byURL[u] = results[i].keys
	}
	k.lastErr = errors.Join(errs...)
	if len(errs) == 0 {
		k.fetched = k.lastAttempt
	}
}

func (k *KeySet) fetch(ctx context.Context, u string) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS request %s: %w", u, err)
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS))
	if err != nil {
		return nil, fmt.Errorf("read JWKS %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS %s: status %d", u, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS %s is not a key set: %w", u, err)
	}
	return set.Keys, nil
}
