package chaos

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// Limits are IMDS's documented throttling limits per VM. Requests over a
// limit get 429 with the real body. Instance metadata and the identity
// (token) endpoint are limited separately.
type Limits struct {
	// Enabled turns throttling on (the default) or off.
	Enabled *bool `json:"enabled,omitempty"`
	// MetadataRPS bounds instance metadata requests per second (5).
	MetadataRPS int `json:"metadataRps,omitempty"`
	// IdentityRPS bounds token requests per second (20).
	IdentityRPS int `json:"identityRps,omitempty"`
	// IdentityConcurrency bounds token requests in flight (5).
	IdentityConcurrency int `json:"identityConcurrency,omitempty"`
	// RetryAfter, when set, adds a Retry-After header to the 429s. IMDS's
	// documentation promises none, and clients treat the two cases
	// differently (MSAL retries a 429 only with the header), so both
	// must be testable.
	RetryAfter duration.Duration `json:"retryAfter,omitempty"`
}

// DefaultLimits are the limits Microsoft documents for IMDS.
func DefaultLimits() Limits {
	on := true
	return Limits{Enabled: &on, MetadataRPS: 5, IdentityRPS: 20, IdentityConcurrency: 5}
}

// On reports whether throttling is enabled.
func (l Limits) On() bool { return l.Enabled == nil || *l.Enabled }

// withDefaults fills zero limits with the documented ones.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Enabled == nil {
		l.Enabled = d.Enabled
	}
	if l.MetadataRPS == 0 {
		l.MetadataRPS = d.MetadataRPS
	}
	if l.IdentityRPS == 0 {
		l.IdentityRPS = d.IdentityRPS
	}
	if l.IdentityConcurrency == 0 {
		l.IdentityConcurrency = d.IdentityConcurrency
	}
	return l
}

// Validate checks the limits.
func (l Limits) Validate() error {
	if l.MetadataRPS < 0 || l.IdentityRPS < 0 || l.IdentityConcurrency < 0 {
		return fmt.Errorf("limits must not be negative")
	}
	if l.RetryAfter.Duration < 0 || l.RetryAfter.Duration%time.Second != 0 {
		return fmt.Errorf("retryAfter %s: must be whole seconds, as the header carries (e.g. 2s)", l.RetryAfter.Duration)
	}
	return nil
}

// window admits at most n events in any one-second sliding window: it
// keeps the times of the last n admitted events in a ring.
type window struct {
	times []time.Time
	head  int // oldest
	count int
}

func newWindow(n int) *window { return &window{times: make([]time.Time, n)} }

func (w *window) admit(now time.Time) bool {
	n := len(w.times)
	if w.count < n {
		w.times[(w.head+w.count)%n] = now
		w.count++
		return true
	}
	if now.Sub(w.times[w.head]) < time.Second {
		return false
	}
	w.times[w.head] = now
	w.head = (w.head + 1) % n
	return true
}

// Limiter enforces Limits. It is safe for concurrent use.
type Limiter struct {
	now func() time.Time

	mu       sync.Mutex
	limits   Limits
	meta, id *window
	inflight int

	// off mirrors !limits.On(), so that Admit need not take mu while
	// throttling is off: the lock was one of the costs of every token
	// request when nothing is throttled.
	off atomic.Bool
}

// NewLimiter returns a limiter enforcing l (zero fields take the defaults).
func NewLimiter(l Limits, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	lim := &Limiter{now: now}
	lim.Set(l)
	return lim
}

// Set replaces the limits.
func (l *Limiter) Set(lim Limits) {
	lim = lim.withDefaults()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limits = lim
	l.meta, l.id = newWindow(lim.MetadataRPS), newWindow(lim.IdentityRPS)
	l.off.Store(!lim.On())
}

// Limits returns the limits in force.
func (l *Limiter) Limits() Limits {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limits
}

// Admit decides whether a request to face may proceed. When it may, the
// caller must call release once the request is answered.
func (l *Limiter) Admit(face string) (release func(), ok bool) {
	if l.off.Load() {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.limits.On() {
		return func() {}, true
	}
	now := l.now()
	switch face {
	case "instance":
		return func() {}, l.meta.admit(now)
	case "imds":
		if l.inflight >= l.limits.IdentityConcurrency || !l.id.admit(now) {
			return nil, false
		}
		l.inflight++
		var once sync.Once
		return func() {
			once.Do(func() {
				l.mu.Lock()
				l.inflight--
				l.mu.Unlock()
			})
		}, true
	}
	return func() {}, true
}
