package scenario

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// updateDocs rewrites the generated tables of docs/scenarios.md (step
// and expectation kinds) instead of failing.
var updateDocs = flag.Bool("update", false, "rewrite the generated tables of docs/scenarios.md")

// replaceBetween replaces what lies between the begin and end markers of
// doc with body.
func replaceBetween(doc, begin, end, body string) (string, error) {
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q and %q not found in order", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}

// checkDocsBlock fails when docs/scenarios.md's generated block between
// begin and end differs from body (what a registry lists), naming the
// test that -update rewrites it with.
func checkDocsBlock(t *testing.T, test, begin, end, body string) {
	t.Helper()
	path := filepath.Join("..", "..", "docs", "scenarios.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := replaceBetween(string(doc), begin, end, body)
	if err != nil {
		t.Fatalf("docs/scenarios.md: %v", err)
	}
	if got == string(doc) {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/scenarios.md's generated block %s differs from the registry; run go test ./internal/scenario -run %s -update, or put this between its markers:\n%s", begin, test, body)
}
