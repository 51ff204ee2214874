package scenario

import (
	"strings"
	"testing"
)

// TestExpectKindsInDocs keeps docs/scenarios.md's table of expectation
// kinds equal to the registry: a kind added, renamed or changed without
// the docs fails. -update rewrites the table.
func TestExpectKindsInDocs(t *testing.T) {
	var table strings.Builder
	if err := WriteExpectKinds(&table); err != nil {
		t.Fatal(err)
	}
	checkDocsBlock(t, "TestExpectKindsInDocs", "<!-- expectation kinds: generated -->", "<!-- end expectation kinds -->", table.String())
}
