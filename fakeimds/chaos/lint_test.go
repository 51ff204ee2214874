package chaos

import (
	"regexp"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/routes"
)

// fixVerb finds the advice every warning must end with.
var fixVerb = regexp.MustCompile(`; (write|add|drop|keep|raise|lower) `)

// TestLint pairs every warning with a rule that triggers it and a close
// one that must not.
func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match string
		want  string // warning substring; "" for no warning
	}{
		{"empty match", `{}`, ""},

		{"path nobody serves", `{"path":"/metadata/identity/token"}`, `no face serves "/metadata/identity/token"`},
		{"served path", `{"path":"/metadata/identity/oauth2/token"}`, ""},
		{"served path with slash", `{"path":"/metadata/identity/oauth2/token/"}`, ""},
		{"instance node", `{"path":"/metadata/instance/compute/name"}`, ""},
		{"authority tenant", `{"path":"/common/oauth2/v2.0/token"}`, ""},
		{"prefix nobody serves", `{"path":"/oauth2/*"}`, `no face serves "/oauth2/*"`},
		{"served prefix", `{"path":"/metadata/*"}`, ""},
		{"path in another case", `{"path":"/Metadata/Identity/oauth2/token"}`, `case-sensitive, as fakeimds routes them; write "/metadata/identity/oauth2/token"`},
		{"prefix in another case", `{"path":"/METADATA/*"}`, `write "/metadata/*"`},

		{"imds face, App Service path", `{"faces":["imds"],"path":"/msi/token"}`, `faces [imds] never serve "/msi/token" (served by appservice); add appservice to faces, or write a path they serve: /metadata/identity/oauth2/token`},
		{"appservice face, App Service path", `{"faces":["appservice"],"path":"/msi/token"}`, ""},
		{"arc face, token path", `{"faces":["arc"],"path":"/metadata/identity/oauth2/token"}`, ""},
		{"arc face, instance path", `{"faces":["arc"],"path":"/metadata/instance"}`, `faces [arc] never serve "/metadata/instance" (served by instance)`},
		{"instance face, token prefix", `{"faces":["instance"],"path":"/metadata/identity/*"}`, "(served by imds, arc); add imds, arc to faces, or write a path they serve: /metadata/instance, /metadata/versions"},
		{"one of two faces never serves", `{"faces":["imds","authority"],"path":"/metadata/*"}`, "face authority never serves"},
		{"both faces serve", `{"faces":["imds","instance"],"path":"/metadata/*"}`, ""},

		{"POST to IMDS", `{"faces":["imds"],"methods":["POST"]}`, "never serves POST on the matched paths"},
		{"GET to IMDS", `{"faces":["imds"],"methods":["get"]}`, ""},
		{"GET to the authority token path", `{"path":"/common/oauth2/v2.0/token","methods":["GET"]}`, `never serves GET on "/common/oauth2/v2.0/token", so the rule hits only requests it refuses (405, 404, or Azure AD's 400); write POST`},
		{"POST to the authority token path", `{"path":"/common/oauth2/v2.0/token","methods":["POST"]}`, ""},
		{"HEAD to the keys", `{"path":"/common/discovery/v2.0/keys","methods":["HEAD"]}`, ""},
		{"one method never served", `{"faces":["appservice"],"methods":["GET","DELETE"]}`, "never serves DELETE"},
		{"unknown method", `{"methods":["GTE"]}`, "never serves GTE"},

		{"header both present and absent", `{"headerPresent":["Metadata"],"headerAbsent":["metadata"]}`, "headerPresent and headerAbsent both name Metadata"},
		{"different headers", `{"headerPresent":["Metadata"],"headerAbsent":["X-Forwarded-For"]}`, ""},

		{"everyNth beyond firstN", `{"firstN":2,"everyNth":3}`, "everyNth 3 is more than firstN 2, so no request is hit"},
		{"everyNth within firstN", `{"firstN":3,"everyNth":3}`, ""},
		{"count beyond firstN", `{"firstN":2,"count":3}`, "count 3 is never reached: firstN 2 with everyNth 1 allows at most 2 hits"},
		{"count beyond firstN/everyNth", `{"firstN":6,"everyNth":2,"count":4}`, "allows at most 3 hits"},
		{"count within firstN/everyNth", `{"firstN":6,"everyNth":2,"count":3}`, ""},
		{"count without firstN", `{"everyNth":5,"count":100}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRule(t, `{"name":"l","match":`+tc.match+`,"action":{"type":"reset"}}`)
			if err := r.Validate(); err != nil {
				t.Fatalf("the rule must be valid for Lint to matter: %v", err)
			}
			warns := r.Lint()
			if tc.want == "" {
				if len(warns) > 0 {
					t.Fatalf("unexpected warnings %q", warns)
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tc.want) {
				t.Fatalf("warnings %q, want one containing %q", warns, tc.want)
			}
			if !strings.HasPrefix(warns[0], "rule l: match") {
				t.Errorf("warning %q does not name the rule and field", warns[0])
			}
			if !fixVerb.MatchString(warns[0]) {
				t.Errorf("warning %q does not say what to write instead", warns[0])
			}
		})
	}
}

func TestLintListenerFaultsAndConfiguredPaths(t *testing.T) {
	r := mustRule(t, `{"name":"down","match":{"faces":["arc"]},"action":{"type":"refuse"}}`)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := r.Lint(); len(w) > 0 {
		t.Errorf("listener fault warned: %q", w)
	}
	// A server with another App Service path serves that one instead.
	r = mustRule(t, `{"name":"app","match":{"faces":["appservice"],"path":"/custom/msi"},"action":{"type":"reset"}}`)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := r.Lint(); len(w) != 1 {
		t.Errorf("default paths: warnings %q, want one", w)
	}
	if w := r.LintRoutes(routes.Table("/custom/msi", routes.ArcToken)); len(w) > 0 {
		t.Errorf("configured paths: warnings %q", w)
	}
}
