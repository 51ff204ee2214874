package report

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	base := func() *Report {
		return &Report{SchemaVersion: 1, Suite: "conformance", Seed: 1, Verdict: VerdictConformant, Specs: []Spec{
			{ID: "IDH-CONF-0001", State: Passed, Duration: 10, Clients: map[string]string{"raw": "passed", "msal-mi": "passed"}, Evidence: []string{"a"}},
			{ID: "IDH-CONF-0002", State: Passed, Duration: 11, Clients: map[string]string{"raw": "passed", "azidentity-wi": "n/a: imds"}},
		}}
	}
	for _, tc := range []struct {
		name   string
		change func(r *Report)
		want   []string
	}{
		{"seed, durations, order and evidence are not outcomes", func(r *Report) {
			r.Seed = 2
			r.Specs[0].Duration, r.Specs[0].Evidence = 99, []string{"b"}
			r.Specs[0], r.Specs[1] = r.Specs[1], r.Specs[0]
		}, nil},
		{"a client failed", func(r *Report) {
			r.Verdict = VerdictNotConformant
			r.Specs[0].State = Failed
			r.Specs[0].Clients["msal-mi"] = "failed"
		}, []string{"verdict: Conformant → Not conformant", "IDH-CONF-0001: passed → failed", "IDH-CONF-0001 msal-mi: passed → failed"}},
		{"a client's n/a reason changed", func(r *Report) {
			r.Specs[1].Clients["azidentity-wi"] = "n/a: other"
		}, []string{"IDH-CONF-0002 azidentity-wi: n/a: imds → n/a: other"}},
		{"a client only in one", func(r *Report) {
			delete(r.Specs[0].Clients, "raw")
			r.Specs[1].Clients["py-msal-mi"] = "passed"
		}, []string{"IDH-CONF-0001 raw: passed → absent", "IDH-CONF-0002 py-msal-mi: absent → passed"}},
		{"a spec only in one", func(r *Report) {
			r.Specs = append(r.Specs[:1], Spec{ID: "IDH-CONF-0003", State: Skipped})
		}, []string{"IDH-CONF-0002: passed → absent", "IDH-CONF-0003: absent → skipped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			tc.change(b)
			var got []string
			for _, d := range Compare(base(), b) {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("differences\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	if s, c := Outcomes(base()); s != 2 || c != 4 {
		t.Errorf("Outcomes = %d specs, %d clients; want 2, 4", s, c)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	good := &Report{SchemaVersion: SchemaVersion, Suite: "conformance", Verdict: VerdictConformant, Specs: []Spec{{ID: "IDH-CONF-0001", State: Passed}}}
	if err := good.WriteDir(filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"a run's report directory", filepath.Join(dir, "run"), ""},
		{"its report.json", filepath.Join(dir, "run", "report.json"), ""},
		{"missing", filepath.Join(dir, "nothing"), "no such report"},
		{"not JSON", write("bad.json", "{"), "not a report.json"},
		{"another JSON file", write("other.json", `{"name":"x"}`), "not a report.json of idharness"},
		{"a newer format", write("new.json", `{"schemaVersion":99,"suite":"conformance"}`), "newer than this idharness reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Read(tc.path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && (len(r.Specs) != 1 || r.Verdict != VerdictConformant):
				t.Fatalf("read %+v", r)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
