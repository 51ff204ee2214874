// Package journal records every request fakeimds serves, in a bounded ring
// that tests and suites read or stream, so that a verdict can point at the
// exact requests it rests on.
package journal

import (
	"sync"
	"time"
)

// Entry is one served request.
type Entry struct {
	// Seq numbers entries from 1 in arrival order; it survives Reset so
	// that a reader's cursor stays valid.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Face is the endpoint family: imds, instance, appservice, arc, authority, keys.
	Face   string `json:"face"`
	Remote string `json:"remote"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	// Headers holds the request headers that matter to the protocol, never
	// secrets: Metadata, User-Agent, X-Forwarded-For, and whether
	// X-IDENTITY-HEADER and Authorization were present.
	Headers map[string]string `json:"headers,omitempty"`
	// Selector is how the request named an identity (client_id=…, default).
	Selector string `json:"selector,omitempty"`
	// Identity is the client ID of the identity served, if any.
	Identity string `json:"identity,omitempty"`
	// IdentityName is that identity's configured name.
	IdentityName string `json:"identityName,omitempty"`
	Resource     string `json:"resource,omitempty"`
	Status       int    `json:"status"`
	// Error is the error code of a refused request.
	Error string `json:"error,omitempty"`
	// Cached is true when the token came from the server's token cache.
	Cached bool `json:"cached,omitempty"`
	// Faults names the chaos rules applied to the request.
	Faults    []string `json:"faults,omitempty"`
	LatencyMS float64  `json:"latencyMs"`
}

// DefaultCapacity is how many entries a journal keeps by default.
const DefaultCapacity = 10000

// Journal is a bounded, concurrency-safe request log with subscribers.
type Journal struct {
	mu    sync.Mutex
	ring  []Entry
	next  int // index of the next write
	full  bool
	seq   uint64
	subs  map[chan Entry]struct{}
	drops uint64
}

// New returns a journal keeping the last capacity entries.
func New(capacity int) *Journal {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Journal{ring: make([]Entry, capacity), subs: map[chan Entry]struct{}{}}
}

// Add appends e, assigning its sequence number, and hands it to
// subscribers; a subscriber that cannot keep up loses entries rather than
// slowing the server (counted by Dropped).
func (j *Journal) Add(e Entry) {
	j.mu.Lock()
	j.seq++
	e.Seq = j.seq
	j.ring[j.next] = e
	j.next++
	if j.next == len(j.ring) {
		j.next, j.full = 0, true
	}
	for c := range j.subs {
		select {
		case c <- e:
		default:
			j.drops++
		}
	}
	j.mu.Unlock()
}

// Since returns the entries with Seq > after, oldest first.
func (j *Journal) Since(after uint64) []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Entry
	n := j.next
	if j.full {
		n = len(j.ring)
	}
	start := 0
	if j.full {
		start = j.next
	}
	for i := 0; i < n; i++ {
		e := j.ring[(start+i)%len(j.ring)]
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

// Reset forgets every entry; sequence numbers keep counting.
func (j *Journal) Reset() {
	j.mu.Lock()
	clear(j.ring)
	j.next, j.full = 0, false
	j.mu.Unlock()
}

// Subscribe returns a channel receiving new entries (buffer sized buf)
// and a cancel function that must be called to stop receiving.
func (j *Journal) Subscribe(buf int) (<-chan Entry, func()) {
	c := make(chan Entry, buf)
	j.mu.Lock()
	j.subs[c] = struct{}{}
	j.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			j.mu.Lock()
			delete(j.subs, c)
			j.mu.Unlock()
			close(c)
		})
	}
}

// Dropped returns how many entries slow subscribers missed.
func (j *Journal) Dropped() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.drops
}
