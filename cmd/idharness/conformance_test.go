package main

import (
	"bytes"
	"os"
	"testing"
)

// TestConformanceYAMLUpToDate keeps suites/conformance/conformance.yaml
// in step with the specs, as Kubernetes does with its conformance list.
func TestConformanceYAMLUpToDate(t *testing.T) {
	list, err := conformanceList()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 15 {
		t.Fatalf("only %d conformance specs found", len(list))
	}
	for _, e := range list {
		if e.Level != "MUST" && e.Level != "SHOULD" || e.Statement == "" || e.File == "suites/framework/framework.go" {
			t.Errorf("bad entry %+v", e)
		}
	}
	want, err := renderConformance(list)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../suites/conformance/conformance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatal("suites/conformance/conformance.yaml is out of date; regenerate it: go run ./cmd/idharness conformance list > suites/conformance/conformance.yaml")
	}
}
