package framework

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
)

// Per-client verdicts of RecordClientVerdicts, besides the report's
// passed and failed.
const (
	// VerdictFinding records that a client does not behave as the spec's
	// statement says, for a known reason the spec documents (a known
	// failure): the spec still passes, and the matrix shows "finding".
	VerdictFinding = "finding"
	// VerdictRecorded marks behaviour the spec records without judging
	// it (who accepts a malformed body, say).
	VerdictRecorded = "recorded"
)

var chaosID = regexp.MustCompile(`^IDH-CHAOS-\d{4}$`)

// Chaos declares a chaos spec, the sibling of Conformance: a stable ID
// (IDH-CHAOS-0001), a level, a one-line statement and labels (the fault
// kind and the mode). Its text has the same "[ID] LEVEL statement" form,
// so reports treat both alike, but it is labelled "chaos" instead of
// "conformance": `idharness run --suite` selects a suite by that label,
// since both suites' specs are registered in the one idharness binary.
func Chaos(id string, level Level, statement string, labels []string, body any) bool {
	if !chaosID.MatchString(id) {
		panic("framework: bad chaos spec ID " + id)
	}
	It(ChaosText(id, level, statement), Label(ChaosLabels(level, labels)...), Offset(1), body)
	return true
}

// ChaosText is the text Chaos gives a spec.
func ChaosText(id string, level Level, statement string) string {
	return fmt.Sprintf("[%s] %s %s", id, level, statement)
}

// ChaosLabels are the labels Chaos gives a spec.
func ChaosLabels(level Level, labels []string) []string {
	return append([]string{"chaos", string(level)}, labels...)
}

// Selected reports whether the running suite's label filter, focus and
// skip select a spec with this text (its containers' texts and its own,
// joined by spaces, as ginkgo matches them) and these labels (its
// containers' and its own). A suite that starts work ahead of its specs
// asks it before they run; it does not see a focus on the suite's
// description or on files, so such a spec's work starts at its turn.
func Selected(text string, labels []string) bool {
	cfg, _ := GinkgoConfiguration()
	return selectedBy(cfg, text, labels)
}

func selectedBy(cfg types.SuiteConfig, text string, labels []string) bool {
	if cfg.LabelFilter != "" {
		f, err := types.ParseLabelFilter(cfg.LabelFilter)
		if err != nil || !f(labels) {
			return false
		}
	}
	if len(cfg.FocusStrings) > 0 {
		re, err := regexp.Compile(strings.Join(cfg.FocusStrings, "|"))
		if err != nil || !re.MatchString(text) {
			return false
		}
	}
	if len(cfg.SkipStrings) > 0 {
		re, err := regexp.Compile(strings.Join(cfg.SkipStrings, "|"))
		if err != nil || re.MatchString(text) {
			return false
		}
	}
	return true
}

// RecordClientVerdicts adds per-client verdicts (client → passed, failed,
// VerdictFinding or VerdictRecorded) to the report's spec × client
// matrix; RecordClients is the passed/failed shorthand.
func RecordClientVerdicts(verdicts map[string]string) {
	b, _ := json.Marshal(verdicts)
	AddReportEntry(clientsEntry, types.ReportEntryVisibilityNever, string(b))
}
