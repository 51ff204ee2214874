package fakeimds

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

func checkQuery(t *testing.T, raw string) {
	t.Helper()
	want, werr := url.ParseQuery(raw)
	var q query
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
