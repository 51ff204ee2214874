package journal

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAddBoundsFields checks that no recorded string, however long the
// request that carried it, takes more than MaxFieldBytes, and that a cut
// value is marked.
func TestAddBoundsFields(t *testing.T) {
	long := strings.Repeat("q", 100<<10)
	// A multi-byte rune straddles the cut, which must not split it.
	runes := strings.Repeat("x", MaxFieldBytes-1) + strings.Repeat("é", 1000)
	cases := []struct {
		name      string
		entry     Entry
		get       func(Entry) string
		truncated []string
	}{
		{"short query kept", Entry{Query: "api-version=2018-02-01"}, func(e Entry) string { return e.Query }, nil},
		{"query", Entry{Query: long}, func(e Entry) string { return e.Query }, []string{"query"}},
		{"path", Entry{Path: "/" + long}, func(e Entry) string { return e.Path }, []string{"path"}},
		{"resource", Entry{Resource: long}, func(e Entry) string { return e.Resource }, []string{"resource"}},
		{"selector", Entry{Selector: long}, func(e Entry) string { return e.Selector }, []string{"selector"}},
		{"error", Entry{Error: long}, func(e Entry) string { return e.Error }, []string{"error"}},
		{"method", Entry{Method: long}, func(e Entry) string { return e.Method }, []string{"method"}},
		{"remote", Entry{Remote: long}, func(e Entry) string { return e.Remote }, []string{"remote"}},
		{"header value", Entry{Headers: map[string]string{"User-Agent": long, "Metadata": "true"}}, func(e Entry) string { return e.Headers["User-Agent"] }, []string{"headers.User-Agent"}},
		{"fault name", Entry{Faults: []string{long}}, func(e Entry) string { return e.Faults[0] }, []string{"faults"}},
		{"cut on a rune boundary", Entry{Query: runes}, func(e Entry) string { return e.Query }, []string{"query"}},
		{"exactly the bound kept", Entry{Query: long[:MaxFieldBytes]}, func(e Entry) string { return e.Query }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := New(4)
			j.Add(tc.entry)
			got := j.Since(0)[0]
			v := tc.get(got)
			if len(v) > MaxFieldBytes {
				t.Errorf("recorded %d bytes, want at most %d", len(v), MaxFieldBytes)
			}
			if !utf8.ValidString(v) {
				t.Error("truncation split a UTF-8 sequence")
			}
			if !slices.Equal(got.Truncated, tc.truncated) {
				t.Errorf("Truncated = %q, want %q", got.Truncated, tc.truncated)
			}
			if tc.truncated == nil && v != tc.get(tc.entry) {
				t.Error("a value within the bound was changed")
			}
			b, _ := json.Marshal(got)
			if len(b) > 4*MaxFieldBytes {
				t.Errorf("entry is %d bytes of JSON", len(b))
			}
		})
	}
}

// TestAddChecksEachNewHeaderMap checks Add's memo of the header map last
// found within the bounds: a map seen before is not ranged over again,
// but any other map, even one equal to a map cut before, is checked and
// cut. Remembering a map by its contents, or remembering one that did
// not fit, would record a long value uncut.
func TestAddChecksEachNewHeaderMap(t *testing.T) {
	short := map[string]string{"Metadata": "true"}
	long := map[string]string{"User-Agent": strings.Repeat("u", MaxFieldBytes+1)}
	cases := []struct {
		name    string
		headers map[string]string
		cut     bool
	}{
		{"a map that fits", short, false},
		{"the same map again", short, false},
		{"a map with a long value", long, true},
		{"the same long map again", long, true},
		{"the map that fitted, after one that did not", short, false},
		{"an equal long map, new", maps.Clone(long), true},
		{"an empty map", map[string]string{}, false},
		{"no map", nil, false},
		{"the long map once more, after an empty one", long, true},
	}
	j := New(len(cases))
	for _, tc := range cases {
		j.Add(Entry{Headers: tc.headers})
	}
	got := j.Since(0)
	for i, tc := range cases {
		cut := slices.Contains(got[i].Truncated, "headers.User-Agent")
		if cut != tc.cut || len(got[i].Headers["User-Agent"]) > MaxFieldBytes {
			t.Errorf("%s: cut %v, want %v (User-Agent %d bytes)", tc.name, cut, tc.cut, len(got[i].Headers["User-Agent"]))
		}
	}
}
