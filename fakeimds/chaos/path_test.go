package chaos

import "testing"

// TestPathMatchesCanonically: a rule path and a request path compare with
// one trailing slash ignored and case kept, as fakeimds routes them.
func TestPathMatchesCanonically(t *testing.T) {
	const tok = "/metadata/identity/oauth2/token"
	for _, tc := range []struct {
		rule, path string
		want       bool
	}{
		// Exact form.
		{tok, tok, true},
		{tok, tok + "/", true}, // the JS SDK's spelling, which fakeimds serves
		{tok + "/", tok, true}, // a rule written with the slash
		{tok + "/", tok + "/", true},
		{tok, tok + "//", false}, // fakeimds 404s a doubled slash
		{tok, tok + "/x", false}, // a sub-path is another path
		{tok, "/metadata/identity/oauth2/tokens", false},
		{tok, "/metadata/identity/oauth2", false},
		{tok, "/Metadata/identity/oauth2/token", false}, // fakeimds routes case-sensitively
		{"/Metadata/identity/oauth2/token", tok, false},
		{"/", "/", true},
		{"/", "/metadata", false},
		// Prefix form, on the canonical request path.
		{"/metadata/*", tok, true},
		{"/metadata/*", tok + "/", true},
		{"/metadata/*", "/metadata", true}, // "/metadata/" canonically
		{"/metadata/*", "/metadata/", true},
		{"/metadata/*", "/metadatax", false},
		{"/metadata/*", "/msi/token", false},
		{"/METADATA/*", tok, false},
		{tok + "*", tok + "/", true}, // as suites/chaos writes it
		{tok + "*", tok, true},
		{tok + "/*", tok, true},
		{tok + "/*", tok + "/x", true},
		{tok + "/*", "/metadata/identity/oauth2/toke", false},
		{"/metadata/instance/*", "/metadata/instance/compute/", true},
		{"/metadata/instance/*", "/metadata/instance", true},
		{"/metadata/instance/*", "/metadata/instanc", false},
		{"/*", "/", true},
		{"/*", tok, true},
	} {
		if got := pathMatches(tc.rule, tc.path); got != tc.want {
			t.Errorf("rule path %q on request path %q: %v, want %v", tc.rule, tc.path, got, tc.want)
		}
		// And the same through a whole rule's match.
		r := mustRule(t, `{"name":"p","match":{"path":"`+tc.rule+`"},"action":{"type":"reset"}}`)
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		q := req("imds", "10.0.0.1")
		q.Path = tc.path
		if got := r.Match.matches(q); got != tc.want {
			t.Errorf("rule with path %q matches %q: %v, want %v", tc.rule, tc.path, got, tc.want)
		}
	}
}

// TestPathMatchesDoesNotAllocate guards the hot path: every request is
// matched against every rule while rules exist.
func TestPathMatchesDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		pathMatches("/metadata/instance/*", "/metadata/instance/")
		pathMatches("/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token/")
	}); n != 0 {
		t.Errorf("pathMatches allocates %v times per call pair", n)
	}
}
