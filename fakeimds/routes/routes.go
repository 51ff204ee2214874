// Package routes is the table of what fakeimds serves: each face's paths
// and the methods it answers there. It imports nothing of fakeimds, so
// that both the server (package fakeimds, which mounts these paths) and
// the fault engine (package chaos, which fakeimds imports and which lints
// rules against this table) can use it without an import cycle.
//
// Paths compare as fakeimds routes them: case-sensitively (Go's ServeMux
// and the faces' exact-path checks never fold case, so /Metadata/... is a
// 404 there), and with one trailing slash ignored (the token endpoints
// answer endpoint and endpoint + "/", since the JS SDK adds the slash).
package routes

import "strings"

// The faces, as named in rules, the journal and metrics.
const (
	FaceIMDS       = "imds"
	FaceInstance   = "instance"
	FaceAppService = "appservice"
	FaceArc        = "arc"
	FaceAuthority  = "authority"
)

// Faces lists every face, in the order the documentation lists them.
func Faces() []string {
	return []string{FaceIMDS, FaceInstance, FaceAppService, FaceArc, FaceAuthority}
}

// Paths fakeimds serves. {tenant} stands for one path segment: a tenant ID
// or domain, or a name such as "common".
const (
	// IMDSToken is where IMDS serves managed identity tokens.
	IMDSToken = "/metadata/identity/oauth2/token"
	// Instance is the instance metadata document; its sub-paths walk it.
	Instance = "/metadata/instance"
	// Versions lists the instance metadata API versions.
	Versions = "/metadata/versions"
	// AppServiceToken is the App Service endpoint's default path
	// (faces.appService.path).
	AppServiceToken = "/msi/token"
	// ArcToken is the Arc agent's default token path (faces.arc.path), on
	// the Arc listener.
	ArcToken = IMDSToken
	// AuthorityToken, AuthorityKeys, AuthorityKeysV1 and
	// AuthorityDiscovery are the authority face's token, signing keys and
	// OpenID discovery endpoints.
	AuthorityToken     = "/{tenant}/oauth2/v2.0/token"
	AuthorityKeys      = "/{tenant}/discovery/v2.0/keys"
	AuthorityKeysV1    = "/{tenant}/discovery/keys"
	AuthorityDiscovery = "/{tenant}/v2.0/.well-known/openid-configuration"
	// InstanceDiscovery is Azure AD's instance discovery endpoint.
	InstanceDiscovery = "/common/discovery/instance"
)

// Route is one path a face serves.
type Route struct {
	// Face is the face that answers.
	Face string
	// Path is the endpoint's path. A {tenant} segment matches a tenant
	// as clients send one (see Serves).
	Path string
	// Methods are the methods the endpoint answers, upper case. Others
	// are refused: 405 from the face, 404 from the catch-all where the
	// mux pattern names the method, Azure AD's 400 on its token endpoint.
	Methods []string
	// Subtree: the face also serves the paths below Path (the instance
	// document's nodes).
	Subtree bool
}

// Table returns the routes of a server whose App Service and Arc paths
// are appServicePath and arcPath (faces.appService.path, faces.arc.path).
func Table(appServicePath, arcPath string) []Route {
	get := []string{"GET"}
	// ServeMux routes HEAD to a GET pattern; the metadata faces check
	// the method themselves and answer HEAD with 405.
	getHead := []string{"GET", "HEAD"}
	return []Route{
		{Face: FaceIMDS, Path: IMDSToken, Methods: get},
		{Face: FaceInstance, Path: Instance, Methods: get, Subtree: true},
		{Face: FaceInstance, Path: Versions, Methods: get},
		{Face: FaceAppService, Path: appServicePath, Methods: get},
		{Face: FaceArc, Path: arcPath, Methods: get},
		{Face: FaceAuthority, Path: AuthorityToken, Methods: []string{"POST"}},
		{Face: FaceAuthority, Path: AuthorityKeys, Methods: getHead},
		{Face: FaceAuthority, Path: AuthorityKeysV1, Methods: getHead},
		{Face: FaceAuthority, Path: AuthorityDiscovery, Methods: getHead},
		{Face: FaceAuthority, Path: InstanceDiscovery, Methods: getHead},
	}
}

// Default returns the routes of a server with the default App Service and
// Arc paths.
func Default() []Route { return Table(AppServiceToken, ArcToken) }

// Canonical returns p as fakeimds routes compare it: without one trailing
// slash (the root stays "/"). Case is kept: fakeimds's routing is
// case-sensitive.
func Canonical(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

// Serves reports whether the route serves path p (compared canonically).
// A {tenant} segment matches a GUID, a domain name or one of common,
// organizations and consumers: what clients send, which is narrower than
// what fakeimds's mux accepts there (see tenantLike).
func (r Route) Serves(p string) bool {
	want := strings.Split(Canonical(r.Path), "/")
	got := strings.Split(Canonical(p), "/")
	if len(got) < len(want) || len(got) > len(want) && !r.Subtree {
		return false
	}
	for i, w := range want {
		if !segmentMatches(w, got[i]) {
			return false
		}
	}
	return true
}

// ServesUnder reports whether the route serves some path whose canonical
// form, or that form with a slash appended, starts with prefix: whether a
// rule path written as prefix + "*" can hit it.
func (r Route) ServesUnder(prefix string) bool {
	want := strings.Split(Canonical(r.Path), "/")
	// All but the last of the prefix's segments are whole; the last may
	// be the start of a segment (or empty when prefix ends in a slash).
	got := strings.Split(prefix, "/")
	whole, part := got[:len(got)-1], got[len(got)-1]
	for i, g := range whole {
		if i >= len(want) {
			return r.Subtree
		}
		if !segmentMatches(want[i], g) {
			return false
		}
	}
	i := len(whole)
	switch {
	case i < len(want):
		// A partial tenant can still become one.
		return isWildcard(want[i]) || strings.HasPrefix(want[i], part)
	case i == len(want):
		// prefix is the route's path plus "/" and maybe more: the
		// canonical path with a slash appended matches the former.
		return part == "" || r.Subtree
	}
	return r.Subtree
}

func isWildcard(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

func segmentMatches(pattern, seg string) bool {
	if isWildcard(pattern) {
		return tenantLike(seg)
	}
	return pattern == seg
}

// tenantLike reports whether seg is a tenant as clients send one: a GUID,
// a domain name (contoso.onmicrosoft.com), or common, organizations or
// consumers. fakeimds's mux takes any segment there (it answers
// /metadata/discovery/keys with the keys of tenant "metadata"), but no
// client sends that, and counting it would make every /x/... path look
// served by the authority, so that linting a rule could never tell
// /metadata/... or /msi/... paths apart from the authority's.
func tenantLike(seg string) bool {
	switch strings.ToLower(seg) {
	case "common", "organizations", "consumers":
		return true
	}
	return strings.Contains(seg, ".") && !strings.HasPrefix(seg, ".") || isGUID(seg)
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
