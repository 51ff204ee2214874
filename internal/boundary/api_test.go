package boundary

import (
	"strings"
	"testing"
)

// TestPublicAPI checks the module's public packages against APIRules.
func TestPublicAPI(t *testing.T) {
	root, module := moduleRoot(t)
	exposed, paid, err := CheckAPI(APIRules(), root, module)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exposed {
		t.Error(e)
	}
	for _, p := range paid {
		t.Error(p)
	}
}

// CheckAPI must see internal types wherever an exported identifier
// shows them, and nowhere else.
func TestCheckAPI(t *testing.T) {
	const head = "package p\nimport (\n\ti \"example.com/m/internal/impl\"\n\tok \"example.com/m/pkg/other\"\n)\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string // "Ident Type" of each exposure
	}{
		{"a function's result", "func New() *i.Impl { return nil }", []string{"New i.Impl"}},
		{"a parameter", "func Use(x i.Impl) {}", []string{"Use i.Impl"}},
		{"a method of an exported type", "type T struct{}\nfunc (T) Get() []i.Impl { return nil }", []string{"T.Get i.Impl"}},
		{"an exported field", "type T struct{ X map[string]i.Impl }", []string{"T i.Impl"}},
		{"an embedded field", "type T struct{ i.Impl }", []string{"T i.Impl"}},
		{"an alias", "type A = i.Impl", []string{"A i.Impl"}},
		{"an interface method", "type I interface{ Do() i.Impl }", []string{"I i.Impl"}},
		{"a typed variable", "var V i.Impl", []string{"V i.Impl"}},
		{"an unexported field", "type T struct{ x i.Impl }", nil},
		{"an unexported function", "func make0() i.Impl { return i.Impl{} }", nil},
		{"a method of an unexported type", "type t struct{}\nfunc (t) Get() i.Impl { return i.Impl{} }", nil},
		{"a body", "func Run() { _ = i.Impl{} }", nil},
		{"a public package's type", "func New() ok.T { return ok.T{} }", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write := func(rel, src string) { writeFile(t, root, rel, src) }
			write("go.mod", "module example.com/m\n")
			write("pkg/p/p.go", head+tc.src+"\nvar _ = ok.T{}\nvar _ = i.Impl{}\n")
			// Test files and packages outside the rule are not public API.
			write("pkg/p/p_test.go", head+"func Helper() i.Impl { return i.Impl{} }\n")
			write("internal/x/x.go", head+"func New() i.Impl { return i.Impl{} }\n")
			rules := []API{{From: "pkg", Forbid: []string{"internal"}, Why: "public"}}
			exposed, _, err := CheckAPI(rules, root, "example.com/m")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range exposed {
				got = append(got, e.Ident+" "+e.Type)
				if e.Import != "internal/impl" || !strings.HasPrefix(e.Pos, "pkg/p/p.go:") || !strings.Contains(e.String(), "public") {
					t.Errorf("exposure %+v: want internal/impl at pkg/p/p.go, with the reason", e)
				}
			}
			if strings.Join(got, ";") != strings.Join(tc.want, ";") {
				t.Errorf("exposed %q, want %q", got, tc.want)
			}
		})
	}
}

// An allowed exposure no longer made is reported, so that the exception goes.
func TestCheckAPIPaidDebt(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "go.mod", "module example.com/m\n")
	writeFile(t, root, "pkg/p/p.go", "package p\nimport i \"example.com/m/internal/impl\"\nfunc New() i.Impl { return i.Impl{} }\n")
	for _, tc := range []struct {
		allow    string
		wantPaid bool
	}{
		{"internal/impl", false},
		{"internal/gone", true},
	} {
		rules := []API{{From: "pkg", Forbid: []string{"internal"}, Allow: []string{tc.allow}, Why: "public"}}
		exposed, paid, err := CheckAPI(rules, root, "example.com/m")
		if err != nil {
			t.Fatal(err)
		}
		if tc.wantPaid != (len(paid) == 1) {
			t.Errorf("allow %s: paid %q, want paid %v", tc.allow, paid, tc.wantPaid)
		}
		if tc.allow == "internal/impl" && len(exposed) != 0 {
			t.Errorf("allow %s: exposed %v, want none", tc.allow, exposed)
		}
	}
}
