package boundary

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"strings"
)

// API is a rule on what public packages show: the exported identifiers
// of the packages under From (their signatures, exported struct fields,
// interface methods and declared types) must not name a type of a
// package under Forbid. A public package may use internal code to do
// its work, as kind's pkg/cluster does; what it must not do is hand
// another module a type that module cannot import or name.
type API struct {
	// From is the prefix of the public packages.
	From string
	// Forbid are the prefixes whose types they must not show.
	Forbid []string
	// Allow are known debts: packages under Forbid whose types the
	// public packages still show. The test fails once one is no longer
	// shown, so that it goes.
	Allow []string
	// Why is the reason, shown with every exposure.
	Why string
}

// APIRules returns the module's rules on public packages' surfaces.
func APIRules() []API {
	why := "other modules import this package (docs/architecture.md, examples/public-api); a type from internal/ " +
		"in its exported API is one they can receive but never name, declare or errors.As to: define a public type " +
		"(convertible, as pkg/cluster.Health is) or keep the identifier unexported"
	return []API{
		{From: "pkg", Forbid: []string{"internal"}, Why: why},
		{From: "fakeimds", Forbid: []string{"internal"}, Why: why},
		// The handle's accessors hand out public types only (client-go's,
		// fakeimds's, fixtures'); Framework.Stack, which handed out the
		// internal stack, is gone, and Rules keeps the suites from
		// importing the stack around the handle.
		{From: "suites/framework", Forbid: []string{"internal"}, Why: why},
	}
}

// Exposure is an exported identifier that names a forbidden type.
type Exposure struct {
	// Package is the public package, relative to the module.
	Package string
	// Ident is the exported identifier ("Cluster.Create", "Info.Health").
	Ident string
	// Type is the forbidden type as written ("icluster.Health").
	Type string
	// Import is the package it comes from, relative to the module.
	Import string
	// Pos is the file and line.
	Pos  string
	Rule API
}

func (e Exposure) String() string {
	return fmt.Sprintf("%s (%s): exported %s shows %s from %s: packages under %q must not show types of %s: %s",
		e.Package, e.Pos, e.Ident, e.Type, e.Import, e.Rule.From, strings.Join(e.Rule.Forbid, ", "), e.Rule.Why)
}

// CheckAPI parses the non-test Go files of the module rooted at root
// (module is its path) in the packages the rules govern and returns
// every exported identifier that names a type the rules forbid, and
// every allowed debt no longer used. Only what is written is seen: an
// exported variable whose type is inferred from an internal function's
// result is not.
func CheckAPI(rules []API, root, module string) (exposed []Exposure, paid []string, err error) {
	used := map[string]bool{}
	err = walkGoFiles(root, func(path, rel string) error {
		if strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		dir := packageOf(rel)
		gov := governing(rules, dir)
		if len(gov) == 0 {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", rel, err)
		}
		for _, s := range shown(f, module) {
			for _, r := range gov {
				if !underAny(s.imp, r.Forbid) || Under(s.imp, dir) {
					continue
				}
				if underAny(s.imp, r.Allow) {
					used[r.From+" "+s.imp] = true
					continue
				}
				exposed = append(exposed, Exposure{Package: dir, Ident: s.ident, Type: s.typ, Import: s.imp,
					Pos: fmt.Sprintf("%s:%d", rel, fset.Position(s.pos).Line), Rule: r})
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rules {
		for _, a := range r.Allow {
			found := false
			for k := range used {
				found = found || (strings.HasPrefix(k, r.From+" ") && Under(strings.TrimPrefix(k, r.From+" "), a))
			}
			if !found {
				paid = append(paid, fmt.Sprintf("API rule for %q allows %s, whose types no exported identifier shows any more: remove the exception", r.From, a))
			}
		}
	}
	sort.Slice(exposed, func(i, j int) bool { return exposed[i].Pos < exposed[j].Pos })
	return exposed, paid, nil
}

// governing returns the rules governing the package at dir.
func governing(rules []API, dir string) []API {
	var out []API
	for _, r := range rules {
		if Under(dir, r.From) {
			out = append(out, r)
		}
	}
	return out
}

// shownType is a qualified type an exported identifier shows.
type shownType struct {
	ident, typ, imp string
	pos             token.Pos
}

// shown returns the module's qualified types that f's exported
// identifiers show, with the module-relative package of each.
func shown(f *ast.File, module string) []shownType {
	imports := map[string]string{} // local name → module-relative path
	for _, s := range f.Imports {
		p, err := strconv.Unquote(s.Path.Value)
		if err != nil || (p != module && !strings.HasPrefix(p, module+"/")) {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		name := p[strings.LastIndex(p, "/")+1:]
		if s.Name != nil {
			name = s.Name.Name
		}
		imports[name] = rel
	}
	var out []shownType
	walk := func(ident string, n ast.Node) {
		var visit func(n ast.Node) bool
		visit = func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.StructType:
				for _, fl := range x.Fields.List {
					if len(fl.Names) == 0 || anyExported(fl.Names) {
						ast.Inspect(fl.Type, visit)
					}
				}
				return false
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok {
					if rel, ok := imports[id.Name]; ok {
						out = append(out, shownType{ident: ident, typ: id.Name + "." + x.Sel.Name, imp: rel, pos: x.Pos()})
					}
				}
				return false
			}
			return true
		}
		ast.Inspect(n, visit)
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			name := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) == 1 {
				recv := receiverName(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				name = recv + "." + name
			}
			walk(name, d.Type)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						walk(s.Name.Name, s.Type)
					}
				case *ast.ValueSpec:
					if s.Type != nil && anyExported(s.Names) {
						walk(s.Names[0].Name, s.Type)
					}
				}
			}
		}
	}
	return out
}

func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

func anyExported(names []*ast.Ident) bool {
	for _, n := range names {
		if n.IsExported() {
			return true
		}
	}
	return false
}
