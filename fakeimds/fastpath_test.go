package fakeimds

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/token"
)

// The cached token path's fast pieces (docs/performance.md) must answer
// byte for byte as the plain code they replace: these tests hold each to
// its reference.

// TestIMDSBodyBytes checks that a cached token's pre-encoded body is
// exactly writeJSON(imdsBody(…))'s, second by second as expires_in counts
// down and once it reaches 0, and for strings JSON must escape.
func TestIMDSBodyBytes(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_800_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := newServer(t, nil, WithClock(clock))
	id, _ := s.Store().Lookup(testConfig().UserAssigned[0].ClientID)
	resources := []string{"https://vault.azure.net", "https://x/<a>&b", "é\u2028\x01\"\\", "api://" + strings.Repeat("z", 300)}
	for _, resource := range resources {
		if _, err := s.Minter().Issue(id, resource); err != nil {
			t.Fatal(err)
		}
		tok, err := s.Minter().Issue(id, resource)
		if err != nil || !tok.Cached || tok.Memo() == nil {
			t.Fatalf("second Issue: cached %v, memo %v, err %v", tok.Cached, tok.Memo() != nil, err)
		}
		start, exp := clock(), tok.ExpiresOn
		// Within a second, across seconds, as expires_in loses digits, at
		// expiry and after it.
		for _, at := range []time.Time{start, start.Add(300 * time.Millisecond), start.Add(time.Second), start.Add(61 * time.Second),
			exp.Add(-10001 * time.Second), exp.Add(-10000*time.Second - time.Millisecond), exp.Add(-9999 * time.Second),
			exp.Add(-1500 * time.Millisecond), exp.Add(-time.Second), exp, exp.Add(time.Second), exp.Add(time.Hour)} {
			now.Store(at.UnixNano())
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusOK, s.imdsBody(tok, resource, id.ClientID))
			got := httptest.NewRecorder()
			s.writeIMDSBody(got, tok, resource, id.ClientID)
			if got.Body.String() != want.Body.String() {
				t.Fatalf("resource %q at %s:\n got %s\nwant %s", resource, clock().UTC(), got.Body, want.Body)
			}
			if !reflect.DeepEqual(got.Header(), want.Header()) || got.Code != want.Code {
				t.Fatalf("header %v %d, want %v %d", got.Header(), got.Code, want.Header(), want.Code)
			}
		}
		now.Store(time.Unix(1_800_000_000, 0).UnixNano())
		s.Minter().Flush()
	}
}

// TestIMDSBodyEscapes checks the pieces newEncodedIMDS cuts from the JSON
// for tokens and client IDs with characters JSON escapes.
func TestIMDSBodyEscapes(t *testing.T) {
	s := newServer(t, nil)
	now := s.minter.Now()
	for _, raw := range []string{"a.b.c", `"\u0000I"`, "\x00I", "\x00X<>&", "\u2029\xff", ""} {
		tok := token.Token{Raw: raw, NotBefore: now.Add(-time.Minute), ExpiresOn: now.Add(time.Hour)}
		e, err := newEncodedIMDS(tok, "\x00I", "\x00X", now.Add(-time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s.imdsBody(tok, "\x00I", "\x00X"))
		if got := e.at(tok, now).body; string(got) != string(want) {
			t.Errorf("token %q:\n got %s\nwant %s", raw, got, want)
		}
	}
}

// TestQueryMatchesParseQuery checks query against url.ParseQuery: the
// same error or not, the same first value and count for every key.
func TestQueryMatchesParseQuery(t *testing.T) {
	for _, raw := range queryCases {
		checkQuery(t, raw)
	}
}

var queryCases = []string{
	"", "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
	"resource=a&resource=b&client_id=&object_id=x", "a&&b=&=c&", "a=1;b=2", "a=%zz", "%zz=1", "a+b=c+d%20e",
	"client_id=1&client_id=2", "api%2Dversion=2018-02-01", strings.Repeat("a=1&", 15) + "b=2", strings.Repeat("a=1&", 16) + "b=2",
	strings.Repeat("&", 40) + "resource=r", "x=%", "resource=é&mi_res_id=%2Fsubscriptions%2F1",
}

// checkQuery checks raw parsed without a cache, then with one twice: the
// second parse is the cache's copy of the first.
func checkQuery(t *testing.T, raw string) {
	t.Helper()
	c := newUnescapeCache()
	for _, cache := range []*unescapeCache{nil, c, c} {
		checkQueryWith(t, raw, cache)
	}
}

func checkQueryWith(t *testing.T, raw string, cache *unescapeCache) {
	t.Helper()
	want, werr := url.ParseQuery(raw)
	q := query{unescaped: cache}
	gerr := q.parse(raw)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("%q: error %v, url.ParseQuery's %v", raw, gerr, werr)
	}
	if werr != nil {
		return
	}
	keys := []string{"api-version", "resource", "client_id", "object_id", "msi_res_id", "mi_res_id", "a", "b", "", "a b", "missing"}
	for k := range want {
		keys = append(keys, k)
	}
	for _, k := range keys {
		v, n := q.lookup(k)
		if n != len(want[k]) || want.Get(k) != v {
			t.Fatalf("%q: %q = %q ×%d, url.ParseQuery: %q", raw, k, v, n, want[k])
		}
	}
	for i := 0; i < q.n; i++ {
		if _, ok := want[q.pairs[i].k]; !ok {
			t.Fatalf("%q: key %q that url.ParseQuery lacks", raw, q.pairs[i].k)
		}
	}
}

// TestQueryCacheAlternates checks the parsed-query cache with queries
// that come and go in turn, more of them than it has slots, so that
// slots are shared and replaced: every parse must still be its own
// query's.
func TestQueryCacheAlternates(t *testing.T) {
	c := newUnescapeCache()
	for round := 0; round < 3; round++ {
		for i := 0; i < 2*unescapeSlots; i++ {
			raw := "api-version=2018-02-01&resource=https%3A%2F%2Fr" + strconv.Itoa(i) + ".example&client_id=" + strconv.Itoa(i%7)
			q := query{unescaped: c}
			if err := q.parse(raw); err != nil {
				t.Fatal(err)
			}
			if r, id := q.Get("resource"), q.Get("client_id"); r != "https://r"+strconv.Itoa(i)+".example" || id != strconv.Itoa(i%7) {
				t.Fatalf("round %d, query %d: resource %q, client_id %q", round, i, r, id)
			}
		}
	}
}

// TestIMDSQueryKept checks that what the token endpoint reads from a
// query is the same read from a plain parse, from the cache's first parse
// and from what the cache kept of it, for each query of queryCases and
// selector cases the endpoint refuses.
func TestIMDSQueryKept(t *testing.T) {
	raws := append([]string{
		"api-version=2018-02-01&resource=r&client_id=a&object_id=b",
		"api-version=2018-02-01&resource=r&client_id=a&client_id=a",
		"api-version=2018-02-01&resource=r&mi_res_id=&msi_res_id=%2Fx",
		"api-version=2017-12-01&resource=r", "api-version=2018-02-01x&resource=r",
	}, queryCases...)
	for _, raw := range raws {
		var q query
		if q.parse(raw) != nil {
			continue
		}
		want := readIMDSQuery(&q)
		c := newUnescapeCache()
		for i, cache := range []*unescapeCache{nil, c, c, c} {
			got, err := cache.imdsQueryOf(raw)
			if err != nil {
				t.Fatalf("%q, read %d: %v", raw, i, err)
			}
			if fmt.Sprint(got.selErr) != fmt.Sprint(want.selErr) {
				t.Fatalf("%q, read %d: selector error %v, want %v", raw, i, got.selErr, want.selErr)
			}
			if got.version != want.version || got.versionOK != want.versionOK || got.resource != want.resource || got.sel != want.sel {
				t.Fatalf("%q, read %d: %s %v %q %v, want %s %v %q %v", raw, i, got.version, got.versionOK, got.resource, got.sel,
					want.version, want.versionOK, want.resource, want.sel)
			}
		}
	}
	if _, err := newUnescapeCache().imdsQueryOf("a=%zz"); err == nil {
		t.Fatal("a malformed query was read without error")
	}
}

func FuzzQuery(f *testing.F) {
	for _, c := range queryCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkQuery(t, raw) })
}

// TestHeaderInterner checks that interned header maps are the maps
// interestingHeaders builds, and that the table stays bounded.
func TestHeaderInterner(t *testing.T) {
	var hi headerInterner
	reqs := []map[string][]string{
		{}, {"Metadata": {"true"}}, {"Metadata": {""}}, {"Metadata": {"true"}, "User-Agent": {"azsdk-go"}},
		{"User-Agent": {"azsdk-go"}}, {"X-Forwarded-For": {""}}, {"X-Forwarded-For": {"1.2.3.4", "", "5.6.7.8"}},
		{"X-Identity-Header": {"s"}, "Authorization": {"Bearer x"}}, {"X-Identity-Header": {""}},
		{"Metadata": {"true", "false"}, "User-Agent": {strings.Repeat("u", 600)}},
	}
	for round := 0; round < 2; round++ {
		for _, h := range reqs {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header = http.Header(h)
			if got, want := hi.of(req), interestingHeaders(req); !reflect.DeepEqual(got, want) {
				t.Errorf("headers %v: %v, want %v", h, got, want)
			}
		}
	}
	for i := 0; i < 2*maxInternedHeaders; i++ {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("User-Agent", fmt.Sprint("client/", i))
		if got := hi.of(req)["User-Agent"]; got != fmt.Sprint("client/", i) {
			t.Fatalf("User-Agent %q", got)
		}
	}
	if n := hi.n.Load(); n > maxInternedHeaders {
		t.Errorf("%d interned header maps, bound %d", n, maxInternedHeaders)
	}
}

// BenchmarkCachedBody compares a cached token's body written from its
// memo with JSON-encoding it per request.
func BenchmarkCachedBody(b *testing.B) {
	s := newServer(b, nil)
	id, _ := s.Store().Lookup(testConfig().UserAssigned[0].ClientID)
	_, _ = s.Minter().Issue(id, "https://vault.azure.net")
	tok, _ := s.Minter().Issue(id, "https://vault.azure.net")
	w := discardWriter{h: http.Header{}}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			writeJSON(w, http.StatusOK, s.imdsBody(tok, "https://vault.azure.net", id.ClientID))
		}
	})
	b.Run("memo", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s.writeIMDSBody(w, tok, "https://vault.azure.net", id.ClientID)
		}
	})
}

// BenchmarkQuery compares query with url.ParseQuery on a token request.
func BenchmarkQuery(b *testing.B) {
	const raw = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01"
	b.Run("url.ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			q, _ := url.ParseQuery(raw)
			_, _ = parseSelector(q, selectorParams)
		}
	})
	b.Run("query", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var q query
			_ = q.parse(raw)
			_, _ = parseSelectorFrom(&q, selectorParams)
		}
	})
	b.Run("query+unescape-cache", func(b *testing.B) {
		c := newUnescapeCache()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			q := query{unescaped: c}
			_ = q.parse(raw)
			_, _ = parseSelectorFrom(&q, selectorParams)
		}
	})
}

// BenchmarkJournalHeaders compares the interned header maps with a map
// per request.
func BenchmarkJournalHeaders(b *testing.B) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Metadata", "true")
	req.Header.Set("User-Agent", "azsdk-go-azidentity/v1.15.0 (go1.26; linux)")
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = interestingHeaders(req)
		}
	})
	b.Run("interned", func(b *testing.B) {
		var hi headerInterner
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = hi.of(req)
		}
	})
}

// TestUnescapeCache checks that the unescape cache answers as
// url.QueryUnescape does: for strings seen before, strings that share a
// slot (more strings than slots make sure some do, so a cache that trusted
// the slot without comparing the string would answer another's value),
// bad escapes (an error, never cached) and strings too long to keep.
func TestUnescapeCache(t *testing.T) {
	c := newUnescapeCache()
	var many []string
	for i := 0; i < 2*unescapeSlots; i++ {
		many = append(many, fmt.Sprintf("https%%3A%%2F%%2Fr%d.example", i))
	}
	cases := []struct {
		name string
		in   []string
	}{
		{"plain", []string{"api-version", "2018-02-01", ""}},
		{"escaped", []string{"https%3A%2F%2Fvault.azure.net", "a+b", "%2F", "%C3%A9"}},
		{"bad escapes", []string{"%zz", "x=%", "%", "%2"}},
		{"more strings than slots", many},
		{"too long to keep", []string{strings.Repeat("%41", maxUnescapeCached)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := 0; round < 3; round++ {
				for _, s := range tc.in {
					want, werr := url.QueryUnescape(s)
					got, err := c.unescape(s)
					if got != want || (err != nil) != (werr != nil) {
						t.Fatalf("round %d: unescape(%q) = %q, %v; url.QueryUnescape: %q, %v", round, s, got, err, want, werr)
					}
				}
			}
		})
	}
	for i := range c.slots {
		if u := c.slots[i].Load(); u != nil && len(u.escaped) > maxUnescapeCached {
			t.Errorf("slot %d keeps a %d-byte string", i, len(u.escaped))
		}
	}
	// The query parser with the cache parses as without it.
	for _, raw := range queryCases {
		plain, cached := query{}, query{unescaped: c}
		perr, cerr := plain.parse(raw), cached.parse(raw)
		if (perr != nil) != (cerr != nil) || plain.n != cached.n || plain.pairs != cached.pairs || !reflect.DeepEqual(plain.full, cached.full) {
			t.Errorf("%q: parsed with the cache %+v %v, without %+v %v", raw, cached, cerr, plain, perr)
		}
	}
}

// TestRecordReusedAcrossRequests sends a run of requests whose journal
// entries and metrics differ field by field, so that a recorder reused
// from an earlier request (an identity, a cache hit or an error left in
// its entry) or a metrics child remembered for another status or
// identity shows in what is recorded.
func TestRecordReusedAcrossRequests(t *testing.T) {
	s := newServer(t, nil)
	const ok = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	cases := []struct {
		name   string
		target string
		hdr    map[string]string
		want   journal.Entry
	}{
		{"minted", imdsURL(ok), meta, journal.Entry{Status: 200, Selector: "default", Identity: sysClient, IdentityName: "system", Resource: "https://vault.azure.net"}},
		{"cached", imdsURL(ok), meta, journal.Entry{Status: 200, Selector: "default", Identity: sysClient, IdentityName: "system", Resource: "https://vault.azure.net", Cached: true}},
		{"user-assigned", imdsURL(ok + "&client_id=" + uaClient), meta, journal.Entry{Status: 200, Selector: "client_id=" + uaClient, Identity: uaClient, IdentityName: "id-a", Resource: "https://vault.azure.net"}},
		{"no Metadata header", imdsURL(ok + "&client_id=" + uaClient), nil, journal.Entry{Status: 400, Error: "bad_request_102"}},
		{"cached again", imdsURL(ok), meta, journal.Entry{Status: 200, Selector: "default", Identity: sysClient, IdentityName: "system", Resource: "https://vault.azure.net", Cached: true}},
		{"unknown path", "http://169.254.169.254/metadata/nope", meta, journal.Entry{Status: 404, Error: "Not found"}},
		{"bad api-version", imdsURL("api-version=2099-01-01&resource=r"), meta, journal.Entry{Status: 400, Error: "invalid_request"}},
	}
	for _, tc := range cases {
		do(s.IMDSHandler(), http.MethodGet, tc.target, tc.hdr)
	}
	got := s.Journal().Since(0)
	if len(got) != len(cases) {
		t.Fatalf("%d journal entries, want %d", len(got), len(cases))
	}
	for i, tc := range cases {
		g, w := got[i], tc.want
		if g.Status != w.Status || g.Error != w.Error || g.Selector != w.Selector || g.Identity != w.Identity ||
			g.IdentityName != w.IdentityName || g.Resource != w.Resource || g.Cached != w.Cached || len(g.Faults) != 0 {
			t.Errorf("%s: recorded %+v, want %+v", tc.name, g, w)
		}
	}
	body := do(s.ControlHandler(), http.MethodGet, "/metrics", nil).Body.String()
	for _, want := range []string{
		`fakeimds_requests_total{face="imds",identity="system",status="200"} 3`,
		`fakeimds_requests_total{face="imds",identity="id-a",status="200"} 1`,
		`fakeimds_requests_total{face="imds",identity="",status="400"} 2`,
		`fakeimds_requests_total{face="imds",identity="",status="404"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestHeaderKeyOfSmall checks that ranging over a request's few headers
// records what looking each one up records, whatever else the request
// carries, and that the key stands for interestingHeaders' map.
func TestHeaderKeyOfSmall(t *testing.T) {
	pad := http.Header{"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}, "Connection": {"keep-alive"}, "X-Other": {"1"}}
	cases := []struct {
		name string
		h    http.Header
	}{
		{"none", http.Header{}},
		{"Metadata", http.Header{"Metadata": {"true"}}},
		{"empty Metadata", http.Header{"Metadata": {}}},
		{"Metadata twice", http.Header{"Metadata": {"false", "true"}}},
		{"a client's", http.Header{"Metadata": {"true"}, "User-Agent": {"azsdk-go"}, "Accept-Encoding": {"gzip"}}},
		{"forwarded, lines", http.Header{"X-Forwarded-For": {"", "1.2.3.4"}, "Metadata": {"true"}}},
		{"forwarded, empty", http.Header{"X-Forwarded-For": {""}}},
		{"secrets", http.Header{"X-Identity-Header": {"s"}, "Authorization": {"Bearer x"}}},
		{"empty secrets", http.Header{"X-Identity-Header": {""}, "Authorization": {}}},
		{"non-canonical names, not recorded", http.Header{"metadata": {"true"}, "user-agent": {"x"}}},
	}
	for _, tc := range cases {
		for _, padded := range []bool{false, true} {
			h := tc.h.Clone()
			if padded {
				for k, v := range pad {
					h[k] = v
				}
			}
			req := &http.Request{Header: h}
			small, lookup := headerKeyOfSmall(h), headerKeyOfLookup(h)
			if small != lookup {
				t.Errorf("%s (padded %v): ranging %+v, looking up %+v", tc.name, padded, small, lookup)
			}
			var hi headerInterner
			if got, want := hi.of(req), interestingHeaders(req); !reflect.DeepEqual(got, want) {
				t.Errorf("%s (padded %v): %v, want %v", tc.name, padded, got, want)
			}
		}
	}
}

// TestCachedBodyNeverStale asks the IMDS handler for one cached token
// again and again while the clock moves (within a second, across seconds,
// over the points where expires_in loses a digit, backwards, and from
// several goroutines while it moves on), and checks every answer's
// expires_in against the clock: a pre-encoded body served with the
// expires_in of an earlier second fails it.
func TestCachedBodyNeverStale(t *testing.T) {
	var now atomic.Int64
	start := time.Unix(1_800_000_000, 0)
	now.Store(start.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	const lifetime = 3 * time.Hour
	s := newServer(t, func(c *config.Config) { c.Tokens.Lifetime = config.Duration{Duration: lifetime} }, WithClock(clock))
	const target = "http://169.254.169.254" + IMDSTokenPath + "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
	// get answers one request and returns its body's expires_in and
	// expires_on, checking that the strings agree.
	get := func() (in, on int64, tok string) {
		w := do(s.IMDSHandler(), http.MethodGet, target, meta)
		if w.Code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
		var b IMDSToken
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatalf("decode %s: %v", w.Body, err)
		}
		if b.ExtExpiresIn != b.ExpiresIn {
			t.Fatalf("ext_expires_in %q, expires_in %q: want the same", b.ExtExpiresIn, b.ExpiresIn)
		}
		if w.Header().Get("Content-Length") != fmt.Sprint(w.Body.Len()) {
			t.Fatalf("Content-Length %s for a %d-byte body", w.Header().Get("Content-Length"), w.Body.Len())
		}
		in, err1 := strconv.ParseInt(b.ExpiresIn, 10, 64)
		on, err2 := strconv.ParseInt(b.ExpiresOn, 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("expires_in %q, expires_on %q: want decimal strings", b.ExpiresIn, b.ExpiresOn)
		}
		return in, on, b.AccessToken
	}
	_, exp, first := get() // mints; the answers below come from the cache
	expires := time.Unix(exp, 0)
	steps := []time.Time{start, start.Add(300 * time.Millisecond), start.Add(999 * time.Millisecond), start.Add(time.Second),
		start.Add(time.Minute), start.Add(30 * time.Second), // backwards
		expires.Add(-10001 * time.Second), expires.Add(-10000 * time.Second), expires.Add(-9999 * time.Second),
		expires.Add(-1001 * time.Second), expires.Add(-1000 * time.Second), expires.Add(-999 * time.Second),
		expires.Add(-301 * time.Second)}
	for _, at := range steps {
		for i := 0; i < 3; i++ { // the first answer of a second, and the ones after it
			now.Store(at.UnixNano())
			in, on, tok := get()
			if tok != first || on != exp {
				t.Fatalf("at %s: a new token (expires_on %d, was %d); want the cached one", at.UTC(), on, exp)
			}
			if want := exp - at.Unix(); in != want {
				t.Fatalf("at %s (answer %d of the second): expires_in %d, want %d", at.UTC(), i+1, in, want)
			}
		}
	}
	// Concurrent requests while the clock moves on, a second at a time:
	// each answer's expires_in must be within the clock's readings
	// around its request.
	now.Store(start.UnixNano())
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				before := clock().Unix()
				w := do(s.IMDSHandler(), http.MethodGet, target, meta)
				after := clock().Unix()
				var b IMDSToken
				_ = json.Unmarshal(w.Body.Bytes(), &b)
				in, _ := strconv.ParseInt(b.ExpiresIn, 10, 64)
				if in > exp-before || in < exp-after || b.ExtExpiresIn != b.ExpiresIn {
					errs <- fmt.Sprintf("expires_in %s (ext %s) for a request between %d and %d, want %d to %d",
						b.ExpiresIn, b.ExtExpiresIn, before, after, exp-after, exp-before)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				now.Add(int64(time.Second))
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	wg.Wait()
	close(stop)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestIMDSAnswerKept asks for one query's token again and again between
// the changes that must change the answer (identities, the token cache
// and its settings, the clock, faults) and checks each answer and journal
// entry against what resolving and issuing give: the kept answer
// (imdsAnswer) is used only while nothing it depends on has changed.
func TestIMDSAnswerKept(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_800_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := newServer(t, func(c *config.Config) { c.Tokens.Lifetime = config.Duration{Duration: time.Hour} }, WithClock(clock))
	q := "api-version=2018-02-01&resource=r&client_id=" + uaClient
	type answer struct {
		code  int
		body  map[string]any
		entry journal.Entry
	}
	get := func(q string) answer {
		t.Helper()
		w := do(s.IMDSHandler(), "GET", imdsURL(q), meta)
		e := s.Journal().Since(0)
		return answer{w.Code, decodeObject(t, w.Body), e[len(e)-1]}
	}
	// same checks that b is a as the cache gives it again.
	same := func(step string, a, b answer) {
		t.Helper()
		if b.code != 200 || b.body["access_token"] != a.body["access_token"] || b.body["client_id"] != a.body["client_id"] {
			t.Fatalf("%s: %d %v, want the token of %v", step, b.code, b.body, a.body)
		}
		if e := b.entry; !e.Cached || e.Selector != "client_id="+uaClient || e.Identity != uaClient || e.IdentityName != "id-a" || e.Resource != "r" || e.Status != 200 {
			t.Fatalf("%s: journal entry %+v", step, e)
		}
	}
	fresh := func(step string, a, b answer) {
		t.Helper()
		if b.code != 200 || b.body["access_token"] == a.body["access_token"] || b.entry.Cached {
			t.Fatalf("%s: %d, token reused %v, journaled cached %v; want a new token", step, b.code, b.body["access_token"] == a.body["access_token"], b.entry.Cached)
		}
	}
	first := get(q)
	second := get(q)
	same("second request", first, second)
	iq, _ := s.unescaped.imdsQueryOf(q)
	if iq.answer.Load() == nil {
		t.Fatal("no answer kept after a cached token")
	}
	same("third request, from the kept answer", second, get(q))

	if _, err := s.Store().Update(identity.Selector{Kind: identity.ByClientID, Value: uaClient}, func(i *identity.Identity) { i.TokenLifetime = 2 * time.Hour }); err != nil {
		t.Fatal(err)
	}
	updated := get(q)
	fresh("identity's lifetime updated", second, updated)
	if updated.body["expires_in"] != "7200" {
		t.Fatalf("identity's lifetime updated: expires_in %v, want 7200", updated.body["expires_in"])
	}
	same("after the update", updated, get(q))
	same("after the update, kept", updated, get(q))

	s.Minter().Flush()
	flushed := get(q)
	fresh("cache flushed", updated, flushed)
	same("after the flush", flushed, get(q))
	if other := get("api-version=2018-02-01&resource=r2&client_id=" + uaClient); other.body["access_token"] == flushed.body["access_token"] {
		t.Fatal("another resource got the same token")
	}
	same("after another resource", flushed, get(q))
	same("after another resource, kept", flushed, get(q))

	now.Add(int64(2*time.Hour - 4*time.Minute)) // under the refresh threshold
	renewed := get(q)
	fresh("token near expiry", flushed, renewed)
	same("after renewal", renewed, get(q))

	if err := s.Chaos().Add(rule(t, `{"name":"w","match":{"faces":["imds"]},"action":{"type":"wrong-identity","clientId":"`+ubClient+`"}}`)); err != nil {
		t.Fatal(err)
	}
	if faulted := get(q); faulted.body["access_token"] == renewed.body["access_token"] {
		t.Fatal("a wrong-identity fault was answered with the kept token")
	}
	s.Chaos().Remove("w")
	same("after the fault", renewed, get(q))

	if _, err := s.Store().Detach(identity.Selector{Kind: identity.ByClientID, Value: uaClient}); err != nil {
		t.Fatal(err)
	}
	if gone := get(q); gone.code != 400 || gone.body["error_description"] != "Identity not found" || gone.entry.Identity != "" {
		t.Fatalf("identity detached: %d %v, journal %+v; want 400 Identity not found", gone.code, gone.body, gone.entry)
	}
	if err := s.Store().Attach(identity.Identity{Name: "id-a", ClientID: uaClient, ObjectID: uaObject}); err != nil {
		t.Fatal(err)
	}
	back := get(q)
	if back.code != 200 || back.body["expires_in"] == "7200" {
		t.Fatalf("identity attached again with the default lifetime: %d %v", back.code, back.body)
	}
	s.Minter().SetCache(false, 0)
	off := get(q)
	fresh("cache off", back, off)
	fresh("cache off, again", off, get(q))
}
