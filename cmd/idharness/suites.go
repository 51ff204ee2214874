package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/idharness/idharness/internal/scenario"
	"github.com/idharness/idharness/pkg/report"
	"github.com/idharness/idharness/scenarios"
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
	// unlessAsked narrows the suite when the user gives no label
	// filter: the chaos suite leaves the specs labelled scheduled (a node
	// down and booted) to `make chaos-scheduled`, which asks for
	// them with --label-filter scheduled.
	unlessAsked string
}

var suites = []suite{
	{name: "conformance", filter: "conformance", idPrefix: "IDH-CONF-"},
	{name: "chaos", filter: "chaos && !conformance", idPrefix: "IDH-CHAOS-", unlessAsked: "!scheduled"},
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
// suite, narrowed by the user's --label-filter when one is given. The
// user's filter is parsed on its own, so that a syntax error is reported
// now, in its own terms, rather than by ginkgo once the cluster is up, and
// so that it cannot close the suite's parentheses and widen the run.
func suiteLabelFilter(name, userFilter string) (string, error) {
	s, err := findSuite(name)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(userFilter) == "" {
		if s.unlessAsked == "" {
			return s.filter, nil
		}
		userFilter = s.unlessAsked
	}
	if _, err := types.ParseLabelFilter(userFilter); err != nil {
		return "", fmt.Errorf("--label-filter %q: %s; join labels with &&, || and !, group them with parentheses and match them with /regexp/, e.g. --label-filter 'user-assigned && MUST'",
			userFilter, labelFilterProblem(err))
	}
	combined := "(" + s.filter + ") && (" + userFilter + ")"
	if _, err := types.ParseLabelFilter(combined); err != nil {
		return "", fmt.Errorf("--label-filter %q with suite %s: %s; simplify the filter", userFilter, name, labelFilterProblem(err))
	}
	return combined, nil
}

// ginkgoMarkup is the colour markup in ginkgo's error messages.
var ginkgoMarkup = regexp.MustCompile(`\{\{[^}]*\}\}`)

// labelFilterProblem turns ginkgo's label filter error, meant for a
// terminal (the filter with the offending character highlighted, then
// the problem), into one line: "at character N: problem".
func labelFilterProblem(err error) string {
	var ge types.GinkgoError
	if !errors.As(err, &ge) {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(ge.Message), "\n")
	problem := strings.TrimSuffix(ginkgoMarkup.ReplaceAllString(lines[len(lines)-1], ""), ".")
	if problem == "Unexpected EOF" {
		problem = "the filter ends where a label should follow"
	}
	if len(lines) > 1 {
		if i := strings.Index(lines[0], "{{red}}"); i >= 0 {
			return fmt.Sprintf("at character %d: %s", utf8.RuneCountInString(ginkgoMarkup.ReplaceAllString(lines[0][:i], ""))+1, problem)
		}
	}
	return problem
}

// checkFocus compiles --focus as ginkgo will, which otherwise panics on
// a bad regular expression once the cluster is up.
func checkFocus(focus string) error {
	if _, err := regexp.Compile(focus); err != nil {
		return fmt.Errorf("--focus %q: not a regular expression: %s; escape the characters ( ) [ ] { } . * + ? | ^ $ \\ with a backslash to match them literally",
			focus, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return nil
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

// chaosClientPrograms returns --client-images for the chaos suite when
// it is not given: the client programs the shipped chaos specs run
// (none when they run Go clients only).
func chaosClientPrograms() ([]string, error) {
	all, err := scenario.LoadFS(scenarios.FS(), "scenarios")
	if err != nil {
		return nil, fmt.Errorf("shipped scenarios: %w", err)
	}
	var out []string
	for _, s := range all {
		if s.Spec == nil {
			continue
		}
		for _, p := range s.ClientPrograms() {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return []string{"none"}, nil
	}
	slices.Sort(out)
	return out, nil
}
