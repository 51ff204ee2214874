// Package journal records every request fakeimds serves, in a bounded ring
// that tests and suites read or stream, so that a verdict can point at the
// exact requests it rests on.
package journal

import (
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
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
	// secrets: Metadata, User-Agent, X-Forwarded-For (all its lines, joined
	// with ", "; present even when empty), and whether X-IDENTITY-HEADER
	// and Authorization were present.
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
	// RetryAfter is the answer's Retry-After header as sent, if it had
	// one: what the client was told to wait, which the scenarios'
	// honours-retry-after expectation checks its next request against.
	RetryAfter string `json:"retryAfter,omitempty"`
	// Cached is true when the token came from the server's token cache.
	Cached bool `json:"cached,omitempty"`
	// Faults names the chaos rules applied to the request.
	Faults    []string `json:"faults,omitempty"`
	LatencyMS float64  `json:"latencyMs"`
	// Truncated names the fields cut to MaxFieldBytes ("query",
	// "headers.User-Agent", …); their values are the first bytes only.
	Truncated []string `json:"truncated,omitempty"`
}

// RemoteHost is the address the request came from without its port
// (Remote itself when it has none): what readers match a pod's or a
// client's IP address against.
func (e *Entry) RemoteHost() string {
	if h, _, err := net.SplitHostPort(e.Remote); err == nil {
		return h
	}
	return e.Remote
}

// MaxFieldBytes bounds each string an entry keeps. Requests carry what
// their senders like (a 100 KiB resource or User-Agent); the journal keeps
// thousands of entries, so without a bound a few requests could hold
// hundreds of megabytes.
const MaxFieldBytes = 4 << 10

// bound cuts every string of e to MaxFieldBytes, recording which were
// cut. Headers is copied before it is changed: the caller may share it.
func (e *Entry) bound() {
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"face", &e.Face}, {"remote", &e.Remote}, {"method", &e.Method}, {"path", &e.Path},
		{"query", &e.Query}, {"selector", &e.Selector}, {"identity", &e.Identity},
		{"identityName", &e.IdentityName}, {"resource", &e.Resource}, {"error", &e.Error},
	} {
		if cut, ok := truncate(*f.v); ok {
			*f.v = cut
			e.Truncated = append(e.Truncated, f.name)
		}
	}
	var long []string
	for k, v := range e.Headers {
		if len(v) > MaxFieldBytes {
			long = append(long, k)
		}
	}
	if len(long) > 0 {
		slices.Sort(long) // a stable order for readers comparing entries
		e.Headers = maps.Clone(e.Headers)
		for _, k := range long {
			e.Headers[k], _ = truncate(e.Headers[k])
			e.Truncated = append(e.Truncated, "headers."+k)
		}
	}
	copied := false
	for i, v := range e.Faults {
		cut, ok := truncate(v)
		if !ok {
			continue
		}
		if !copied {
			e.Faults, copied = slices.Clone(e.Faults), true
			e.Truncated = append(e.Truncated, "faults")
		}
		e.Faults[i] = cut
	}
}

// fits reports whether e has nothing to cut, as nearly every entry has.
// Add checks it first because bound's pointers into the entry would move
// every entry Add is given to the heap: an allocation per request.
func (e *Entry) fits() bool {
	return e.fitsButHeaders() && headersFit(e.Headers)
}

// fitsButHeaders is fits without looking at Headers.
func (e *Entry) fitsButHeaders() bool {
	if len(e.Face) > MaxFieldBytes || len(e.Remote) > MaxFieldBytes || len(e.Method) > MaxFieldBytes ||
		len(e.Path) > MaxFieldBytes || len(e.Query) > MaxFieldBytes || len(e.Selector) > MaxFieldBytes ||
		len(e.Identity) > MaxFieldBytes || len(e.IdentityName) > MaxFieldBytes || len(e.Resource) > MaxFieldBytes ||
		len(e.Error) > MaxFieldBytes {
		return false
	}
	for _, v := range e.Faults {
		if len(v) > MaxFieldBytes {
			return false
		}
	}
	return true
}

func headersFit(h map[string]string) bool {
	for _, v := range h {
		if len(v) > MaxFieldBytes {
			return false
		}
	}
	return true
}

// bounded returns e with bound applied.
func bounded(e Entry) Entry {
	e.bound()
	return e
}

// truncate returns s cut to at most MaxFieldBytes on a UTF-8 boundary,
// and whether it was cut.
func truncate(s string) (string, bool) {
	if len(s) <= MaxFieldBytes {
		return s, false
	}
	n := MaxFieldBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// DefaultCapacity is how many entries a journal keeps by default.
const DefaultCapacity = 10000

// Journal is a bounded, concurrency-safe request log with subscribers.
type Journal struct {
	mu   sync.Mutex
	ring []slot // packed entries (slot.go), which the collector does not scan
	// spill keeps the entries that do not fit a slot, by ring index.
	spill map[int]Entry
	next  int // index of the next write
	full  bool
	seq   uint64
	subs  map[chan Entry]struct{}
	drops uint64

	// fitHeaders identifies (mapID) the Headers map of the last entry
	// added that was found within the bounds. A server hands the journal
	// the same (interned) map request after request, and ranging over it
	// again was a good part of Add's cost; a map added is never changed
	// afterwards (see Add), so one that fitted fits still.
	fitHeaders atomic.Pointer[byte]
	// hdrMap identifies the map last encoded for a slot, hdr its
	// encoding; under mu, and remembered for the same reason.
	hdrMap unsafe.Pointer
	hdr    []byte
}

// New returns a journal keeping the last capacity entries.
func New(capacity int) *Journal {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Journal{ring: make([]slot, capacity), spill: map[int]Entry{}, subs: map[chan Entry]struct{}{}}
}

// Add appends e, its strings bounded by MaxFieldBytes, assigning its
// sequence number, and hands it to
// subscribers; a subscriber that cannot keep up loses entries rather than
// slowing the server (counted by Dropped). e.Headers is handed to
// subscribers, not copied: it must not be changed after Add.
func (j *Journal) Add(e Entry) { j.Append(&e) }

// Append is Add without copying e, which it may change: the caller must
// not use e after. A server's request path fills one entry per request
// and hands it over; passing it by value copied its 300 bytes twice per
// request.
func (j *Journal) Append(e *Entry) {
	if !j.fitsMemo(e) {
		b := bounded(*e)
		e = &b
	}
	j.mu.Lock()
	j.seq++
	e.Seq = j.seq
	j.put(j.next, e)
	j.next++
	if j.next == len(j.ring) {
		j.next, j.full = 0, true
	}
	if len(j.subs) > 0 {
		for c := range j.subs {
			select {
			case c <- *e:
			default:
				j.drops++
			}
		}
	}
	j.mu.Unlock()
}

// put stores e in slot i, under mu.
func (j *Journal) put(i int, e *Entry) {
	s := &j.ring[i]
	if s.flags&slotSpilled != 0 {
		delete(j.spill, i)
	}
	if id := mapID(e.Headers); id != j.hdrMap || id == nil {
		j.hdr, j.hdrMap = appendHeaders(j.hdr, e.Headers), id
	}
	if !s.pack(e, j.hdr) {
		s.flags |= slotSpilled
		j.spill[i] = *e
	}
}

// fitsMemo is e.fits(), its headers checked only when they are not the
// map last found to fit.
func (j *Journal) fitsMemo(e *Entry) bool {
	if !e.fitsButHeaders() {
		return false
	}
	id := (*byte)(mapID(e.Headers))
	if len(e.Headers) == 0 || id == j.fitHeaders.Load() {
		return true
	}
	if !headersFit(e.Headers) {
		return false
	}
	j.fitHeaders.Store(id)
	return true
}

// Since returns the entries with Seq > after, oldest first.
func (j *Journal) Since(after uint64) []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := j.next
	if j.full {
		n = len(j.ring)
	}
	start := 0
	if j.full {
		start = j.next
	}
	// The ring's entries carry the last n sequence numbers (fewer after
	// a Reset), so this many are newer than after: out is allocated
	// once, not grown entry by entry.
	var out []Entry
	if after < j.seq && n > 0 {
		out = make([]Entry, 0, min(uint64(n), j.seq-after))
	}
	var hm headerMemo
	for i := 0; i < n; i++ {
		k := (start + i) % len(j.ring)
		s := &j.ring[k]
		switch {
		case s.seq <= after:
		case s.flags&slotSpilled != 0:
			out = append(out, j.spill[k])
		default:
			out = append(out, s.entry(&hm))
		}
	}
	return out
}

// Reset forgets every entry; sequence numbers keep counting.
func (j *Journal) Reset() {
	j.mu.Lock()
	clear(j.ring)
	clear(j.spill)
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
