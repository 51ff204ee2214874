package framework

import (
	"encoding/json"
	"fmt"
	"regexp"

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
	all := append([]string{"chaos", string(level)}, labels...)
	It(fmt.Sprintf("[%s] %s %s", id, level, statement), Label(all...), Offset(1), body)
	return true
}

// RecordClientVerdicts adds per-client verdicts (client → passed, failed,
// VerdictFinding or VerdictRecorded) to the report's spec × client
// matrix; RecordClients is the passed/failed shorthand.
func RecordClientVerdicts(verdicts map[string]string) {
	b, _ := json.Marshal(verdicts)
	AddReportEntry(clientsEntry, types.ReportEntryVisibilityNever, string(b))
}
