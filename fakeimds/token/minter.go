package token

import (
	"container/list"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
)

// DefaultLifetime is how long Azure AD's managed identity tokens live.
const DefaultLifetime = 24 * time.Hour

// DefaultCacheCapacity is how many tokens the cache keeps by default:
// far more (identity, resource) pairs than any node asks for, while the
// cache, keyed by whatever resource callers send, stays bounded.
const DefaultCacheCapacity = 4096

// DefaultRefreshBefore is how close to expiry a cached token must be before
// the server mints a new one instead of handing the cached one out again.
const DefaultRefreshBefore = 5 * time.Minute

// Claims are the claims of a managed identity access token (a version 1.0
// Azure AD token, the kind IMDS hands out).
type Claims struct {
	Audience   string `json:"aud"`
	Issuer     string `json:"iss"`
	IssuedAt   int64  `json:"iat"`
	NotBefore  int64  `json:"nbf"`
	Expiry     int64  `json:"exp"`
	AppID      string `json:"appid"`
	AppIDACR   string `json:"appidacr"`
	AZP        string `json:"azp"`
	IDP        string `json:"idp"`
	IDType     string `json:"idtyp"`
	ObjectID   string `json:"oid"`
	Subject    string `json:"sub"`
	TenantID   string `json:"tid"`
	UTI        string `json:"uti"`
	Version    string `json:"ver"`
	ResourceID string `json:"xms_mirid,omitempty"`
}

// Token is a minted access token with the times the response reports.
type Token struct {
	// Raw is the compact JWT.
	Raw       string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresOn time.Time
	// Cached is true when the token came from the server's cache.
	Cached bool
	// memo is the cache entry's memo, shared by every copy of a cached
	// token; nil for a token minted outside the cache.
	memo *Memo
}

// Memo holds one value a server derives from a cached token (its encoded
// answer, say), so that the work is done once per token rather than once
// per request, and is dropped with the token when the cache evicts or
// replaces it. It is safe for concurrent use.
type Memo struct{ v atomic.Pointer[memoValue] }

type memoValue struct{ v any }

// Load returns the value last stored, or nil.
func (m *Memo) Load() any {
	if p := m.v.Load(); p != nil {
		return p.v
	}
	return nil
}

// Store replaces the value.
func (m *Memo) Store(v any) { m.v.Store(&memoValue{v}) }

// Memo returns the memo of a token from the cache, or nil for a token
// minted outside it (cache off, or a fault's skewed token): those are
// answered once and need none.
func (t Token) Memo() *Memo { return t.memo }

// ExpiresIn returns the seconds left at now, never negative, counted
// between whole-second timestamps so that now + expires_in is exactly
// expires_on, as clients that derive one from the other expect.
func (t Token) ExpiresIn(now time.Time) int64 {
	s := t.ExpiresOn.Unix() - now.Unix()
	if s < 0 {
		return 0
	}
	return s
}

// Shift moves a token's times; chaos faults use it for clock skew.
type Shift struct {
	// Offset is added to iat, nbf and exp.
	Offset time.Duration
	// Lifetime, when non-zero, replaces the identity's lifetime; a negative
	// value mints an already expired token.
	Lifetime time.Duration
}

// Minter mints and caches tokens. It is safe for concurrent use.
type Minter struct {
	signer        *Signer
	defaultTenant string
	now           func() time.Time

	lifetime      atomic.Int64 // time.Duration
	refreshBefore atomic.Int64 // time.Duration
	cacheOn       atomic.Bool

	// The cache is a least-recently-used list: a hit moves its token to
	// the front, and a new token past capacity evicts the back one.
	mu       sync.Mutex
	cache    map[cacheKey]*list.Element // of *cached
	lru      *list.List
	capacity int

	// gen counts what may change IssueAt's answer or the cache's order
	// (CacheGeneration).
	gen atomic.Uint64

	// lastKey is the client ID a token was asked for last, with its
	// identity.Key: lower-casing the client ID on every request cost more
	// than the cache lookup it keys (docs/performance.md), and a client
	// asks for one identity's tokens request after request.
	lastKey atomic.Pointer[clientKey]
}

// clientKey is a client ID and its identity.Key.
type clientKey struct{ clientID, key string }

// keyOf returns id.Key(), remembered for the identity asked for last.
func (m *Minter) keyOf(id identity.Identity) string {
	if k := m.lastKey.Load(); k != nil && k.clientID == id.ClientID {
		return k.key
	}
	k := &clientKey{clientID: id.ClientID, key: id.Key()}
	m.lastKey.Store(k)
	return k.key
}

// cached is a token in the cache, with its key for eviction.
type cached struct {
	key cacheKey
	tok Token
}

type cacheKey struct {
	client   string // identity.Key()
	tenant   string
	resource string
	lifetime time.Duration
}

// MinterOption configures a Minter.
type MinterOption func(*Minter)

// WithCacheCapacity sets how many tokens the cache keeps (default
// DefaultCacheCapacity); values below 1 keep the default.
func WithCacheCapacity(n int) MinterOption {
	return func(m *Minter) {
		if n > 0 {
			m.capacity = n
		}
	}
}

// CacheLen returns how many tokens the cache holds.
func (m *Minter) CacheLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cache)
}

// WithClock replaces time.Now; tests use it to move time.
func WithClock(now func() time.Time) MinterOption { return func(m *Minter) { m.now = now } }

// NewMinter returns a minter that signs with s and puts defaultTenant in
// tokens of identities that name none. Caching is on, with the default
// lifetime and refresh threshold.
func NewMinter(s *Signer, defaultTenant string, opts ...MinterOption) *Minter {
	m := &Minter{signer: s, defaultTenant: defaultTenant, now: time.Now,
		cache: map[cacheKey]*list.Element{}, lru: list.New(), capacity: DefaultCacheCapacity}
	m.lifetime.Store(int64(DefaultLifetime))
	m.refreshBefore.Store(int64(DefaultRefreshBefore))
	m.cacheOn.Store(true)
	for _, o := range opts {
		o(m)
	}
	return m
}

// Signer returns the minter's signer.
func (m *Minter) Signer() *Signer { return m.signer }

// Now returns the minter's current time.
func (m *Minter) Now() time.Time { return m.now() }

// SetLifetime sets the default token lifetime for identities without their own.
func (m *Minter) SetLifetime(d time.Duration) {
	m.lifetime.Store(int64(d))
	m.gen.Add(1)
}

// CacheGeneration changes whenever IssueAt could answer a request
// differently or the cache's order changes: a token stored, evicted or
// flushed, a hit on a token that was not the most recently used, the
// lifetime or the cache's settings changed. While it is the same, a
// token IssueAt returned from the cache is what it returns again for the
// same identity and resource, as long as Fresh says so; and not asking
// for it leaves the cache as asking would (it is the most recently used
// already).
func (m *Minter) CacheGeneration() uint64 { return m.gen.Load() }

// Fresh reports whether the cache, on, would serve t at now: it has more
// than the refresh threshold left.
func (m *Minter) Fresh(t Token, now time.Time) bool {
	return m.cacheOn.Load() && t.ExpiresOn.Sub(now) > time.Duration(m.refreshBefore.Load())
}

// Lifetime returns the default token lifetime.
func (m *Minter) Lifetime() time.Duration { return time.Duration(m.lifetime.Load()) }

// SetCache turns the token cache on or off and sets how close to expiry a
// cached token is replaced. Turning it off also empties it.
func (m *Minter) SetCache(on bool, refreshBefore time.Duration) {
	m.cacheOn.Store(on)
	m.refreshBefore.Store(int64(refreshBefore))
	m.gen.Add(1)
	if !on {
		m.Flush()
	}
}

// CacheSettings returns whether the cache is on and its refresh threshold.
func (m *Minter) CacheSettings() (bool, time.Duration) {
	return m.cacheOn.Load(), time.Duration(m.refreshBefore.Load())
}

// Flush empties the token cache.
func (m *Minter) Flush() {
	m.mu.Lock()
	clear(m.cache)
	m.lru.Init()
	m.gen.Add(1)
	m.mu.Unlock()
}

// TenantOf returns the tenant id's tokens are issued in.
func (m *Minter) TenantOf(id identity.Identity) string {
	if id.TenantID != "" {
		return id.TenantID
	}
	return m.defaultTenant
}

// LifetimeOf returns how long id's tokens live.
func (m *Minter) LifetimeOf(id identity.Identity) time.Duration {
	if id.TokenLifetime > 0 {
		return id.TokenLifetime
	}
	return m.Lifetime()
}

// Issue returns a token for id and resource: the cached one while it has
// more than the refresh threshold left, else a newly minted one.
func (m *Minter) Issue(id identity.Identity, resource string) (Token, error) {
	return m.IssueAt(id, resource, m.now())
}

// IssueAt is Issue with the minter's clock read by the caller: now must
// be m.Now(), taken once by a caller that needs the time again for the
// same answer (its expires_in), so that the clock is read once.
func (m *Minter) IssueAt(id identity.Identity, resource string, now time.Time) (Token, error) {
	lifetime := m.LifetimeOf(id)
	if !m.cacheOn.Load() {
		return m.mint(id, resource, now, lifetime, 0)
	}
	k := cacheKey{client: m.keyOf(id), tenant: m.TenantOf(id), resource: resource, lifetime: lifetime}
	if t, ok := m.cached(k, now); ok {
		t.Cached = true
		return t, nil
	}
	t, err := m.mint(id, resource, now, lifetime, 0)
	if err != nil {
		return Token{}, err
	}
	// A new memo per token: what was derived from the one it replaces
	// must not be served with it.
	t.memo = &Memo{}
	m.store(k, t)
	return t, nil
}

// cached returns k's token if it has more than the refresh threshold
// left at now, marking it recently used.
func (m *Minter) cached(k cacheKey, now time.Time) (Token, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.cache[k]
	if !ok {
		return Token{}, false
	}
	t := el.Value.(*cached).tok
	if t.ExpiresOn.Sub(now) <= time.Duration(m.refreshBefore.Load()) {
		return Token{}, false
	}
	if el != m.lru.Front() {
		m.gen.Add(1)
		m.lru.MoveToFront(el)
	}
	return t, true
}

// store caches t under k, evicting the least recently used tokens beyond
// capacity.
func (m *Minter) store(k cacheKey, t Token) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen.Add(1)
	if el, ok := m.cache[k]; ok {
		el.Value.(*cached).tok = t
		m.lru.MoveToFront(el)
		return
	}
	m.cache[k] = m.lru.PushFront(&cached{key: k, tok: t})
	for m.lru.Len() > m.capacity {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.cache, old.Value.(*cached).key)
	}
}

// Mint always signs a new token, bypassing the cache, with its times moved
// as shift says.
func (m *Minter) Mint(id identity.Identity, resource string, shift Shift) (Token, error) {
	lifetime := m.LifetimeOf(id)
	if shift.Lifetime != 0 {
		lifetime = shift.Lifetime
	}
	return m.mint(id, resource, m.now(), lifetime, shift.Offset)
}

// Issuer returns the v1 token issuer URL for tenant, as Azure AD writes it.
func Issuer(tenant string) string { return "https://sts.windows.net/" + tenant + "/" }

func (m *Minter) mint(id identity.Identity, resource string, now time.Time, lifetime, offset time.Duration) (Token, error) {
	tenant := m.TenantOf(id)
	iat := now.Add(offset).Truncate(time.Second)
	// Azure AD back-dates nbf by five minutes to absorb clock skew.
	nbf := iat.Add(-5 * time.Minute)
	if lifetime > 0 && lifetime < 5*time.Minute {
		nbf = iat
	}
	exp := iat.Add(lifetime)
	c := Claims{
		Audience:   resource,
		Issuer:     Issuer(tenant),
		IssuedAt:   iat.Unix(),
		NotBefore:  nbf.Unix(),
		Expiry:     exp.Unix(),
		AppID:      id.ClientID,
		AppIDACR:   "2",
		AZP:        id.ClientID,
		IDP:        Issuer(tenant),
		IDType:     "app",
		ObjectID:   id.ObjectID,
		Subject:    id.ObjectID,
		TenantID:   tenant,
		UTI:        newUTI(),
		Version:    "1.0",
		ResourceID: id.ResourceID,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("encode claims: %w", err)
	}
	raw, err := m.signer.Sign(payload)
	if err != nil {
		return Token{}, err
	}
	return Token{Raw: raw, IssuedAt: iat, NotBefore: nbf, ExpiresOn: exp}, nil
}

// newUTI returns a unique token identifier in the shape Azure AD uses.
func newUTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b[:]), "=")
}
