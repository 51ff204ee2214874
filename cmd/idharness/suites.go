package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/idharness/idharness/internal/report"
)

// suite is a suite `idharness run --suite` knows. Every suite's specs
// are registered in this one binary (ginkgo runs one suite per process),
// so a suite is selected by a label filter and its report keeps the
// specs with its ID prefix.
type suite struct {
	name string
	// filter selects the suite's specs. Conformance specs may carry
	// "chaos" as an area label (IDH-CONF-0108 skews a clock), so the
	// chaos suite excludes them by their "conformance" label.
	filter   string
	idPrefix string
}

var suites = []suite{
	{name: "conformance", filter: "conformance", idPrefix: "IDH-CONF-"},
	{name: "chaos", filter: "chaos && !conformance", idPrefix: "IDH-CHAOS-"},
}

func findSuite(name string) (suite, error) {
	var names []string
	for _, s := range suites {
		if s.name == name {
			return s, nil
		}
		names = append(names, s.name)
	}
	return suite{}, fmt.Errorf("unknown suite %q: use --suite with one of: %s", name, strings.Join(names, ", "))
}

// suiteLabelFilter returns the ginkgo label filter that runs the named
// suite, narrowed by the user's --label-filter when one is given.
func suiteLabelFilter(name, userFilter string) (string, error) {
	s, err := findSuite(name)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(userFilter) == "" {
		return s.filter, nil
	}
	return "(" + s.filter + ") && (" + userFilter + ")", nil
}

// onlySuite drops from rep the specs of other suites: ginkgo reports the
// specs the label filter left out as skipped, and a suite's report
// should count its own specs only.
func onlySuite(rep *report.Report, name string) {
	s, err := findSuite(name)
	if err != nil {
		return
	}
	rep.Specs = slices.DeleteFunc(rep.Specs, func(sp report.Spec) bool { return !strings.HasPrefix(sp.ID, s.idPrefix) })
	rep.Finalize()
}
