package publicapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idharness/idharness/pkg/report"
)

// TestReadReport reads a run's report.json back as another program would
// (a CI step gating on the verdict, a dashboard): with pkg/report's own
// types, checking schemaVersion before trusting the fields.
func TestReadReport(t *testing.T) {
	dir := t.TempDir()
	written := &report.Report{Suite: "conformance", StartedAt: time.Now(), Specs: []report.Spec{
		{ID: "IDH-CONF-0001", Level: report.MUST, Statement: "a token request MUST succeed", State: report.Passed},
	}}
	written.Finalize()
	if err := written.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != report.SchemaVersion {
		t.Fatalf("report.json schemaVersion %d, want %d", r.SchemaVersion, report.SchemaVersion)
	}
	if r.Verdict != report.VerdictConformant {
		t.Errorf("verdict %q, want %q", r.Verdict, report.VerdictConformant)
	}
}
