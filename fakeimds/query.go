package fakeimds

import (
	"net/url"
	"strings"
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
}

// parseQuery parses raw into q, with url.ParseQuery's result and errors.
func (q *query) parse(raw string) error {
	q.n, q.full = 0, nil
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
		if k, err = unescapeQuery(k); err != nil {
			return q.slow(raw)
		}
		if v, err = unescapeQuery(v); err != nil {
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

// unescapeQuery is url.QueryUnescape, which allocates nothing for the
// common string that needs no unescaping.
func unescapeQuery(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
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
