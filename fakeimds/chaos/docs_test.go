package chaos

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestDocsListEveryKind keeps docs/faults.md's table of action types true:
// every registered kind has a row, and every row names a registered kind.
func TestDocsListEveryKind(t *testing.T) {
	b, err := os.ReadFile("../../docs/faults.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|").FindAllSubmatch(b, -1) {
		documented = append(documented, string(m[1]))
	}
	for _, k := range Kinds() {
		if !slices.Contains(documented, k) {
			t.Errorf("docs/faults.md has no row for action type %s; add one to the table", k)
		}
	}
	for _, k := range documented {
		if _, err := New(k); err != nil {
			t.Errorf("docs/faults.md documents action type %s, which is not registered", k)
		}
	}
}
