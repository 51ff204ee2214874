package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/idharness/idharness/clients"
)

// TestClientsListInDocs keeps docs/clients.md's table equal to the
// registry: a client added, renamed or changed without the docs fails.
func TestClientsListInDocs(t *testing.T) {
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeClientsTable(&b, reg); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/clients.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- clients:begin -->\n")
	table, _, ok2 := strings.Cut(rest, "<!-- clients:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/clients.md lacks the <!-- clients:begin --> … <!-- clients:end --> block")
	}
	if table != b.String() {
		t.Errorf("docs/clients.md's table differs from the registry; replace it with the output of `idharness clients list`:\n%s", b.String())
	}
	for _, s := range reg.Specs() {
		if len(s.Name) < 3 {
			t.Errorf("client name %q too short", s.Name)
		}
	}
}
