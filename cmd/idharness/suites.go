package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/idharness/idharness/internal/report"
)

// suiteNames are the suites `idharness run --suite` knows. Every suite's
// specs are registered in this one binary (ginkgo runs one suite per
// process), and each carries its suite's name as a label: the suite is
// selected by that label.
var suiteNames = []string{"conformance", "chaos"}

// suiteLabelFilter returns the ginkgo label filter that runs suite,
// narrowed by the user's --label-filter when one is given.
func suiteLabelFilter(suite, userFilter string) (string, error) {
	if !slices.Contains(suiteNames, suite) {
		return "", fmt.Errorf("unknown suite %q: use --suite with one of: %s", suite, strings.Join(suiteNames, ", "))
	}
	if strings.TrimSpace(userFilter) == "" {
		return suite, nil
	}
	return suite + " && (" + userFilter + ")", nil
}

// onlySuite drops from rep the specs of other suites: ginkgo reports the
// specs the label filter left out as skipped, and a suite's report
// should count its own specs only.
func onlySuite(rep *report.Report, suite string) {
	kept := rep.Specs[:0]
	for _, sp := range rep.Specs {
		if slices.Contains(sp.Labels, suite) {
			kept = append(kept, sp)
		}
	}
	rep.Specs = kept
	rep.Finalize()
}
