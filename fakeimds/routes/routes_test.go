package routes

import "testing"

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token"},
		{"/metadata/identity/oauth2/token/", "/metadata/identity/oauth2/token"},
		// One slash only: token// is not the endpoint (fakeimds 404s it).
		{"/metadata/identity/oauth2/token//", "/metadata/identity/oauth2/token/"},
		{"/", "/"},
		{"", ""},
		// Case is kept: fakeimds's routing is case-sensitive.
		{"/Metadata/Instance/", "/Metadata/Instance"},
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestServes(t *testing.T) {
	imds := Route{Face: FaceIMDS, Path: IMDSToken}
	inst := Route{Face: FaceInstance, Path: Instance, Subtree: true}
	auth := Route{Face: FaceAuthority, Path: AuthorityToken}
	for _, tc := range []struct {
		r    Route
		p    string
		want bool
	}{
		{imds, IMDSToken, true},
		{imds, IMDSToken + "/", true},
		{imds, IMDSToken + "//", false},
		{imds, IMDSToken + "/x", false},
		{imds, "/metadata/identity/oauth2/Token", false},
		{imds, "/metadata/identity/oauth2", false},
		{inst, Instance, true},
		{inst, Instance + "/compute/name", true},
		{inst, "/metadata/instancex", false},
		{auth, "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token", true},
		{auth, "/common/oauth2/v2.0/token/", true},
		{auth, "//oauth2/v2.0/token", false},
		{auth, "/a/b/oauth2/v2.0/token", false},
		{auth, "/contoso.onmicrosoft.com/oauth2/v2.0/token", true},
		{auth, "/Organizations/oauth2/v2.0/token", true},
		// fakeimds's mux would take these tenants; no client sends them.
		{auth, "/metadata/oauth2/v2.0/token", false},
		{auth, "/72f988bf-86f1-41af-91ab-2d7cd011db4/oauth2/v2.0/token", false},
	} {
		if got := tc.r.Serves(tc.p); got != tc.want {
			t.Errorf("%s.Serves(%q) = %v, want %v", tc.r.Path, tc.p, got, tc.want)
		}
	}
}

func TestServesUnder(t *testing.T) {
	imds := Route{Face: FaceIMDS, Path: IMDSToken}
	inst := Route{Face: FaceInstance, Path: Instance, Subtree: true}
	vers := Route{Face: FaceInstance, Path: Versions}
	auth := Route{Face: FaceAuthority, Path: AuthorityToken}
	for _, tc := range []struct {
		r      Route
		prefix string
		want   bool
	}{
		{imds, "/", true},
		{imds, "/metadata/", true},
		{imds, "/metadata/ident", true},
		{imds, IMDSToken, true},
		{imds, IMDSToken + "/", true},
		{imds, IMDSToken + "/x", false},
		{imds, "/metadata/instance", false},
		{imds, "/Metadata/", false},
		{inst, "/metadata/instance/compute/", true},
		{inst, "/metadata/instance/compute/na", true},
		{vers, "/metadata/versions/", true},
		{vers, "/metadata/versions/x", false},
		{auth, "/common/", true},
		{auth, "/common/oauth2/v2", true},
		{auth, "/common/discovery/", false},
		{auth, "/msi/", false},
		{auth, "/metadata/", false},
		{auth, "/7", true}, // a tenant ID's start
	} {
		if got := tc.r.ServesUnder(tc.prefix); got != tc.want {
			t.Errorf("%s.ServesUnder(%q) = %v, want %v", tc.r.Path, tc.prefix, got, tc.want)
		}
	}
}

func TestTableUsesConfiguredPaths(t *testing.T) {
	var app, arc bool
	for _, r := range Table("/custom/msi", "/arc/token") {
		app = app || r.Face == FaceAppService && r.Path == "/custom/msi"
		arc = arc || r.Face == FaceArc && r.Path == "/arc/token"
		if len(r.Methods) == 0 {
			t.Errorf("route %s %s lists no methods", r.Face, r.Path)
		}
	}
	if !app || !arc {
		t.Errorf("Table ignores the configured App Service (%v) or Arc (%v) path", app, arc)
	}
}
