package fakeimds

import (
	"hash/maphash"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
)

// maxSmallQuery is how many parameters a query may have to be parsed
// without a map; token requests send two or three.
const maxSmallQuery = 16

// query is a parsed query string. The token endpoint parses one per
// request, and url.ParseQuery's map, slices and strings were a good part
// of what a cached token cost (docs/performance.md); a query of up to
// maxSmallQuery parameters is kept here in order instead, its keys and
// values sharing the raw query's bytes unless escaped. It follows
// url.ParseQuery step for step and, for anything it does not handle
// itself (a semicolon, a bad escape, too many parameters), defers to it,
// so that both accept and refuse exactly the same queries.
type query struct {
	pairs [maxSmallQuery]struct{ k, v string }
	n     int
	full  url.Values // set when the query was parsed by url.ParseQuery
	// unescaped, when set, keeps the strings unescaped for earlier
	// requests; nil unescapes every time.
	unescaped *unescapeCache
}

// parse parses raw into q, with url.ParseQuery's result and errors. With
// a cache, a raw query parsed before is copied from it: clients send the
// same query request after request, and splitting and unescaping it
// again was most of what the token handler's own work cost.
func (q *query) parse(raw string) error {
	q.n, q.full = 0, nil
	c := q.unescaped
	if c == nil || len(raw) > maxUnescapeCached {
		return q.parseRaw(raw)
	}
	slot := &c.queries[maphash.String(c.seed, raw)%unescapeSlots]
	if p := slot.Load(); p != nil && p.raw == raw {
		q.n = copy(q.pairs[:], p.pairs)
		return nil
	}
	if err := q.parseRaw(raw); err != nil || q.full != nil {
		return err
	}
	// Kept with a copy of raw and the pairs parsed from that copy: raw
	// points into the request, which the cache must not keep alive.
	p := &parsedQuery{raw: strings.Clone(raw)}
	k := query{unescaped: c}
	if k.parseRaw(p.raw) == nil && k.full == nil {
		p.pairs = slices.Clone(k.pairs[:k.n])
		slot.Store(p)
	}
	return nil
}

// parsedQuery is a raw query as parseRaw split and unescaped it.
type parsedQuery struct {
	raw   string
	pairs []struct{ k, v string }
	// imds is what the IMDS token endpoint reads from it, once it has
	// read it (imdsQueryOf).
	imds atomic.Pointer[imdsQuery]
}

// imdsQueryOf parses raw, as query.parse does, and returns what the IMDS
// token endpoint reads from it: for a raw query parsed before, read once
// and kept beside its pairs. Looking up each parameter, checking the API
// version against the known ones and the selector parameters was a fifth
// of what the token handler itself cost per request, for the same query
// request after request; what is kept is a pure function of the raw
// query, as the pairs are.
func (c *unescapeCache) imdsQueryOf(raw string) (*imdsQuery, error) {
	if c != nil && len(raw) <= maxUnescapeCached {
		slot := &c.queries[maphash.String(c.seed, raw)%unescapeSlots]
		if p := slot.Load(); p != nil && p.raw == raw {
			if iq := p.imds.Load(); iq != nil {
				return iq, nil
			}
			var q query
			q.n = copy(q.pairs[:], p.pairs)
			iq := readIMDSQuery(&q)
			iq.kept = true
			p.imds.Store(iq)
			return iq, nil
		}
	}
	q := query{unescaped: c}
	if err := q.parse(raw); err != nil {
		return nil, err
	}
	return readIMDSQuery(&q), nil
}

// parseRaw is parse without the cache.
func (q *query) parseRaw(raw string) error {
	// Counted as url.ParseQuery counts against its own limit: empty
	// segments too.
	if strings.Count(raw, "&") >= maxSmallQuery || strings.IndexByte(raw, ';') >= 0 {
		return q.slow(raw)
	}
	for s := raw; s != ""; {
		var seg string
		seg, s, _ = strings.Cut(s, "&")
		if seg == "" {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		var err error
		if k, err = q.unescaped.unescape(k); err != nil {
			return q.slow(raw)
		}
		if v, err = q.unescaped.unescape(v); err != nil {
			return q.slow(raw)
		}
		q.pairs[q.n].k, q.pairs[q.n].v = k, v
		q.n++
	}
	return nil
}

func (q *query) slow(raw string) error {
	var err error
	q.full, err = url.ParseQuery(raw)
	return err
}

// unescapeSlots is how many unescaped strings an unescapeCache keeps.
const unescapeSlots = 256

// maxUnescapeCached bounds the escaped strings an unescapeCache keeps,
// and so its memory (unescapeSlots × 2 × this at most).
const maxUnescapeCached = 512

// unescapeCache remembers what escaped query strings unescape to. Every
// token request names its resource as a URI, escaped
// (resource=https%3A%2F%2Fvault.azure.net), and unescaping it again on
// every request was most of what parsing the query cost, and an
// allocation, on the cached token path. It is direct-mapped: a string's
// hash picks its slot, a newer string with the same slot replaces it, so
// it stays bounded whatever clients send, and a miss only costs what an
// uncached unescape does. Unescaping is a pure function of the string,
// so an answer from the cache is the one url.QueryUnescape gives.
type unescapeCache struct {
	seed  maphash.Seed
	slots [unescapeSlots]atomic.Pointer[unescapedString]
	// queries keeps whole raw queries parsed (query.parse), in the same
	// way: direct-mapped, raw queries up to maxUnescapeCached bytes.
	queries [unescapeSlots]atomic.Pointer[parsedQuery]
}

type unescapedString struct{ escaped, s string }

func newUnescapeCache() *unescapeCache { return &unescapeCache{seed: maphash.MakeSeed()} }

// unescape is url.QueryUnescape: s itself, allocating nothing, when it
// needs no unescaping, else from the cache when s was unescaped before.
// A nil cache unescapes every time.
func (c *unescapeCache) unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	if c == nil || len(s) > maxUnescapeCached {
		return url.QueryUnescape(s)
	}
	slot := &c.slots[maphash.String(c.seed, s)%unescapeSlots]
	if u := slot.Load(); u != nil && u.escaped == s {
		return u.s, nil
	}
	u, err := url.QueryUnescape(s)
	if err != nil {
		return "", err
	}
	// s is cloned: it points into the request's URL, which the cache
	// must not keep alive.
	slot.Store(&unescapedString{escaped: strings.Clone(s), s: u})
	return u, nil
}

// lookup returns the first value of name and how many times it was sent.
func (q *query) lookup(name string) (first string, n int) {
	if q.full != nil {
		vs := q.full[name]
		if len(vs) == 0 {
			return "", 0
		}
		return vs[0], len(vs)
	}
	for i := 0; i < q.n; i++ {
		if q.pairs[i].k == name {
			if n == 0 {
				first = q.pairs[i].v
			}
			n++
		}
	}
	return first, n
}

// Get is url.Values.Get.
func (q *query) Get(name string) string {
	v, _ := q.lookup(name)
	return v
}
