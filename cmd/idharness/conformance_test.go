package main

import (
	"bytes"
	"os"
	"strings"
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

// TestConformanceSince: every spec needs a since, and since.go may list
// no ID that no spec has.
func TestConformanceSince(t *testing.T) {
	all := func(string) (string, bool) { return "0.1", true }
	list, err := conformanceListWith(all, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := list[0].ID
	for _, tc := range []struct {
		name   string
		since  func(string) (string, bool)
		extra  []string
		errHas string
	}{
		{"every spec has one", all, []string{first}, ""},
		{"a spec without", func(id string) (string, bool) { return "0.1", id != first }, nil, first + " "},
		{"an ID no spec has", all, []string{"IDH-CONF-9999"}, "IDH-CONF-9999, which no conformance spec has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conformanceListWith(tc.since, tc.extra)
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("error %v, want one containing %q", err, tc.errHas)
			}
		})
	}
}
