package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Read reads a report.json, given as the file or the report directory
// that holds it.
func Read(path string) (*Report, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "report.json")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such report: give a report.json or the --report-dir of a run", path)
	}
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a report.json (%v)", path, err)
	}
	switch {
	case r.SchemaVersion == 0 || r.Suite == "":
		return nil, fmt.Errorf("%s: no schemaVersion or suite: not a report.json of idharness", path)
	case r.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("%s: report format %d, newer than this idharness reads (%d): use the idharness that wrote it, or a newer one", path, r.SchemaVersion, SchemaVersion)
	}
	return &r, nil
}

// Difference is one outcome that differs between two reports.
type Difference struct {
	// ID is the spec's; empty for the run's verdict.
	ID string `json:"id,omitempty"`
	// Client is the client whose outcome in the spec differs; empty for
	// the spec's own state.
	Client string `json:"client,omitempty"`
	// A and B are the outcomes in the first and the second report;
	// Absent when the spec (or the client) is not in that report.
	A string `json:"a"`
	B string `json:"b"`
}

// Absent is a Difference's outcome for a spec or client a report lacks.
const Absent = "absent"

func (d Difference) String() string {
	what := "verdict"
	switch {
	case d.Client != "":
		what = d.ID + " " + d.Client
	case d.ID != "":
		what = d.ID
	}
	return fmt.Sprintf("%s: %s → %s", what, d.A, d.B)
}

// Compare returns the outcomes in which b differs from a: the verdict,
// each spec's state and each client's outcome in it, specs and clients
// present in one report only included. Durations, seeds, the order the
// specs ran in and their evidence are not outcomes: they differ from run
// to run by design, and a spec's verdict must not. The differences come
// sorted by spec ID, the verdict first.
func Compare(a, b *Report) []Difference {
	var out []Difference
	if a.Verdict != b.Verdict {
		out = append(out, Difference{A: a.Verdict, B: b.Verdict})
	}
	as, bs := specsByID(a), specsByID(b)
	for _, id := range keysOfBoth(as, bs) {
		sa, inA := as[id]
		sb, inB := bs[id]
		stateA, stateB := orAbsent(sa.State, inA), orAbsent(sb.State, inB)
		if stateA != stateB {
			out = append(out, Difference{ID: id, A: stateA, B: stateB})
		}
		if !inA || !inB {
			continue
		}
		for _, c := range keysOfBoth(sa.Clients, sb.Clients) {
			ca, okA := sa.Clients[c]
			cb, okB := sb.Clients[c]
			ca, cb = orAbsent(ca, okA), orAbsent(cb, okB)
			if ca != cb {
				out = append(out, Difference{ID: id, Client: c, A: ca, B: cb})
			}
		}
	}
	return out
}

// Outcomes counts what Compare compares in r: specs and client outcomes.
func Outcomes(r *Report) (specs, clients int) {
	for _, s := range r.Specs {
		clients += len(s.Clients)
	}
	return len(r.Specs), clients
}

// orAbsent is v when present, else Absent.
func orAbsent(v string, present bool) string {
	if !present {
		return Absent
	}
	return v
}

// keysOfBoth returns the keys of a and of b, once each, sorted.
func keysOfBoth[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func specsByID(r *Report) map[string]Spec {
	m := make(map[string]Spec, len(r.Specs))
	for _, s := range r.Specs {
		m[s.ID] = s
	}
	return m
}
