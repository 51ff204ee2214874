package chaos

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/idharness/idharness/fakeimds/routes"
)

// Lint returns warnings about a rule that is valid but can never hit a
// request fakeimds serves with its default App Service and Arc paths: a
// path no face serves, faces that never serve the path, methods never
// served there, a header both required and forbidden, counters that rule
// out every hit. Each warning says what is wrong and what to write
// instead. Warnings are not errors: such a rule is still accepted (it may
// be meant for 404s, or written ahead of a route), but it is almost
// always a typo that makes a test pass for the wrong reason. Call it on a
// rule that passed Validate.
func (r *Rule) Lint() []string { return r.LintRoutes(routes.Default()) }

// LintRoutes is Lint against table, the routes of a server configured
// with other paths: routes.Table(cfg.Faces.AppService.Path, cfg.Faces.Arc.Path).
func (r *Rule) LintRoutes(table []routes.Route) []string {
	var warns []string
	warn := func(field, format string, a ...any) {
		warns = append(warns, (&RuleError{Rule: r.Name, Field: field, Problem: fmt.Sprintf(format, a...)}).Error())
	}
	m := &r.Match
	if c, ok := r.Action.Fault.(connFault); ok && c.listenerLevel() {
		// Validate allows faces only, and every face is served.
		return nil
	}
	if h, ok := r.Action.Fault.(handshakeFault); ok && h.handshakeLevel() {
		// Validate allows faces and sources only; every face is served.
		return nil
	}

	// Routes the rule's path can hit, whatever the faces.
	pathHits := func(rt routes.Route) bool {
		if m.Path == "" {
			return true
		}
		if p, ok := strings.CutSuffix(m.Path, "*"); ok {
			return rt.ServesUnder(p)
		}
		return rt.Serves(m.Path)
	}
	var onPath []routes.Route
	for _, rt := range table {
		if pathHits(rt) {
			onPath = append(onPath, rt)
		}
	}
	inFaces := func(face string) bool { return len(m.Faces) == 0 || contains(m.Faces, face) }
	var hit []routes.Route
	for _, rt := range onPath {
		if inFaces(rt.Face) {
			hit = append(hit, rt)
		}
	}

	switch {
	case len(onPath) == 0:
		if fix := caseFix(table, m.Path); fix != "" {
			warn("match.path", "no face serves %q: paths are case-sensitive, as fakeimds routes them; write %q", m.Path, fix)
		} else {
			warn("match.path", "no face serves %q, so the rule can hit only requests fakeimds answers 404; write a served path (%s) or a prefix ending in *, e.g. /metadata/*",
				m.Path, strings.Join(paths(table), ", "))
		}
	case len(hit) == 0:
		by := strings.Join(faces(onPath), ", ")
		warn("match.faces", "faces %v never serve %q (served by %s); add %s to faces, or write a path they serve: %s",
			m.Faces, m.Path, by, by, strings.Join(paths(onFaces(table, m.Faces)), ", "))
	default:
		for _, f := range m.Faces {
			if len(onFaces(onPath, []string{f})) == 0 {
				warn("match.faces", "face %s never serves %q (it serves %s); drop it from faces", f, m.Path, strings.Join(paths(onFaces(table, []string{f})), ", "))
			}
		}
	}

	if len(m.Methods) > 0 && len(hit) > 0 {
		var served []string
		for _, rt := range hit {
			for _, meth := range rt.Methods {
				if !slices.Contains(served, meth) {
					served = append(served, meth)
				}
			}
		}
		var never []string
		for _, meth := range m.Methods {
			if !containsFold(served, meth) {
				never = append(never, meth)
			}
		}
		if len(never) > 0 {
			where := "the matched paths"
			if m.Path != "" {
				where = fmt.Sprintf("%q", m.Path)
			}
			warn("match.methods", "fakeimds never serves %s on %s, so the rule hits only requests it refuses (405, 404, or Azure AD's 400); write %s",
				strings.Join(never, ", "), where, strings.Join(served, " or "))
		}
	}

	for _, h := range m.HeaderPresent {
		for _, a := range m.HeaderAbsent {
			if http.CanonicalHeaderKey(h) == http.CanonicalHeaderKey(a) {
				warn("match.headerAbsent", "headerPresent and headerAbsent both name %s, so no request matches; keep it in one of them", http.CanonicalHeaderKey(h))
			}
		}
	}

	every := max(m.EveryNth, 1)
	switch {
	case m.FirstN > 0 && m.EveryNth > m.FirstN:
		warn("match.everyNth", "everyNth %d is more than firstN %d, so no request is hit (firstN stops the rule before matching request %d); raise firstN to at least %d or lower everyNth",
			m.EveryNth, m.FirstN, m.EveryNth, m.EveryNth)
	case m.FirstN > 0 && m.Count > m.FirstN/every:
		most := m.FirstN / every
		warn("match.count", "count %d is never reached: firstN %d with everyNth %d allows at most %d hits; drop count or set it to at most %d",
			m.Count, m.FirstN, every, most, most)
	}
	return warns
}

// caseFix returns p respelt in the case of the route it names when case
// is folded, or "" if it names none. Only the route's part is respelt; a
// tail beyond it (an instance node, the trailing *) is kept as written.
func caseFix(table []routes.Route, p string) string {
	lp := strings.ToLower(p)
	if len(lp) != len(p) {
		return "" // non-ASCII: byte offsets would not line up
	}
	prefix, isPrefix := strings.CutSuffix(lp, "*")
	for _, rt := range table {
		if strings.Contains(rt.Path, "{") {
			continue // a wildcard segment has no spelling to offer
		}
		folded := rt
		folded.Path = strings.ToLower(rt.Path)
		if isPrefix && folded.ServesUnder(prefix) || !isPrefix && folded.Serves(lp) {
			n := min(len(rt.Path), len(prefix))
			return rt.Path[:n] + p[n:]
		}
	}
	return ""
}

func onFaces(table []routes.Route, fs []string) []routes.Route {
	var out []routes.Route
	for _, rt := range table {
		if contains(fs, rt.Face) {
			out = append(out, rt)
		}
	}
	return out
}

func paths(table []routes.Route) []string {
	var out []string
	for _, rt := range table {
		if !slices.Contains(out, rt.Path) {
			out = append(out, rt.Path)
		}
	}
	return out
}

func faces(table []routes.Route) []string {
	var out []string
	for _, rt := range table {
		if !slices.Contains(out, rt.Face) {
			out = append(out, rt.Face)
		}
	}
	return out
}
