package token

import (
	"strconv"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/identity"
)

// TestIssueCacheBounded checks that the token cache, keyed by whatever
// resource callers send, keeps at most its capacity and evicts the least
// recently used token first.
func TestIssueCacheBounded(t *testing.T) {
	cases := []struct {
		name     string
		capacity int
		issue    []string // resources asked for, in order
		probe    string   // then asked for again
		cached   bool     // whether probe is served from the cache
		wantLen  int
	}{
		{name: "under capacity keeps all", capacity: 4, issue: []string{"a", "b", "c"}, probe: "a", cached: true, wantLen: 3},
		{name: "oldest evicted", capacity: 2, issue: []string{"a", "b", "c"}, probe: "a", cached: false, wantLen: 2},
		{name: "newest kept", capacity: 2, issue: []string{"a", "b", "c"}, probe: "c", cached: true, wantLen: 2},
		{name: "a hit makes a token recent", capacity: 2, issue: []string{"a", "b", "a", "c"}, probe: "a", cached: true, wantLen: 2},
		{name: "least recently used evicted", capacity: 2, issue: []string{"a", "b", "a", "c"}, probe: "b", cached: false, wantLen: 2},
		{name: "many distinct resources", capacity: 8, issue: distinct(100), probe: "r99", cached: true, wantLen: 8},
		{name: "capacity one", capacity: 1, issue: []string{"a", "b"}, probe: "b", cached: true, wantLen: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			m := NewMinter(testSigner(t), "t", WithClock(func() time.Time { return now }), WithCacheCapacity(tc.capacity))
			id := identity.Identity{ClientID: "A"}
			for _, r := range tc.issue {
				if _, err := m.Issue(id, r); err != nil {
					t.Fatal(err)
				}
				if n := m.CacheLen(); n > tc.capacity {
					t.Fatalf("cache holds %d tokens, capacity %d", n, tc.capacity)
				}
			}
			if n := m.CacheLen(); n != tc.wantLen {
				t.Errorf("CacheLen = %d, want %d", n, tc.wantLen)
			}
			tok, err := m.Issue(id, tc.probe)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Cached != tc.cached {
				t.Errorf("probe %q cached = %v, want %v", tc.probe, tok.Cached, tc.cached)
			}
			if n := m.CacheLen(); n > tc.capacity {
				t.Errorf("cache holds %d tokens after the probe, capacity %d", n, tc.capacity)
			}
		})
	}
}

// TestDefaultCacheCapacity checks that a minter without the option is
// bounded too.
func TestDefaultCacheCapacity(t *testing.T) {
	m := NewMinter(testSigner(t), "t")
	if m.capacity != DefaultCacheCapacity || DefaultCacheCapacity <= 0 {
		t.Fatalf("capacity %d, want DefaultCacheCapacity (%d)", m.capacity, DefaultCacheCapacity)
	}
	m.Flush()
	if n := m.CacheLen(); n != 0 {
		t.Errorf("CacheLen after Flush = %d", n)
	}
}

func distinct(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "r" + strconv.Itoa(i)
	}
	return out
}

// TestCacheGeneration checks what changes CacheGeneration: everything
// that could change IssueAt's answer or the cache's order, and not a hit
// on the most recently used token (which a server may then skip).
func TestCacheGeneration(t *testing.T) {
	id := identity.Identity{ClientID: "A"}
	cases := []struct {
		name    string
		op      func(m *Minter)
		changes bool
	}{
		{"a hit on the most recent token", func(m *Minter) { _, _ = m.Issue(id, "b") }, false},
		{"a hit on another token", func(m *Minter) { _, _ = m.Issue(id, "a") }, true},
		{"a token minted and stored", func(m *Minter) { _, _ = m.Issue(id, "c") }, true},
		{"a token from another identity", func(m *Minter) { _, _ = m.Issue(identity.Identity{ClientID: "B"}, "b") }, true},
		{"Mint, outside the cache", func(m *Minter) { _, _ = m.Mint(id, "b", Shift{}) }, false},
		{"Flush", func(m *Minter) { m.Flush() }, true},
		{"SetLifetime", func(m *Minter) { m.SetLifetime(2 * time.Hour) }, true},
		{"SetCache", func(m *Minter) { m.SetCache(true, time.Minute) }, true},
		{"reads", func(m *Minter) { _, _ = m.CacheSettings(); _ = m.CacheLen(); _ = m.Lifetime() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			m := NewMinter(testSigner(t), "t", WithClock(func() time.Time { return now }))
			for _, r := range []string{"a", "b", "b"} { // b is the most recent
				if _, err := m.Issue(id, r); err != nil {
					t.Fatal(err)
				}
			}
			before := m.CacheGeneration()
			tc.op(m)
			if changed := m.CacheGeneration() != before; changed != tc.changes {
				t.Errorf("generation changed %v, want %v", changed, tc.changes)
			}
		})
	}
}

// TestFresh checks Fresh against the cache's own rule: more than the
// refresh threshold left, and the cache on.
func TestFresh(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMinter(testSigner(t), "t", WithClock(func() time.Time { return now }))
	m.SetCache(true, 5*time.Minute)
	tok := Token{ExpiresOn: now.Add(10 * time.Minute)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{now, true}, {now.Add(5*time.Minute - time.Nanosecond), true}, {now.Add(5 * time.Minute), false}, {now.Add(time.Hour), false}} {
		if got := m.Fresh(tok, tc.at); got != tc.want {
			t.Errorf("Fresh at %v: %v, want %v", tc.at.Sub(now), got, tc.want)
		}
	}
	m.SetCache(false, 5*time.Minute)
	if m.Fresh(tok, now) {
		t.Error("Fresh with the cache off")
	}
}
