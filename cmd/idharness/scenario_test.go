package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/pkg/report"
)

// shortScenario is a 2 s run of one plain HTTP client; action is the
// fault every token request gets.
func shortScenario(action string) string {
	return `id: cmd-test
title: command test
links: [https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token]
timeline:
  - {name: answer, at: 0s, fault: {name: answer, match: {faces: [imds]}, action: ` + action + `}}
workload:
  duration: 2s
  clients:
    - {name: raw, client: raw, every: 500ms, start: 200ms}
expect:
  - {kind: success-rate, minPercent: 100, from: 100ms}
`
}

const slow = "{type: latency, delay: 10ms}"

func runIDHarness(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestScenarioLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(shortScenario(slow)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(shortScenario(slow), "every: 500ms", "every: soon", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		files   []string
		wantErr bool
		out     string
		errOut  string
	}{
		{"valid", []string{good}, false, "good.yaml: ok (cmd-test, 2s, 1 steps, 1 expectations)", ""},
		{"invalid", []string{good, bad}, true, "good.yaml: ok", "bad.yaml:9: workload.clients[0].every: want a duration"},
		{"missing", []string{filepath.Join(dir, "none.yaml")}, true, "", "read scenario"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runIDHarness(t, append([]string{"scenario", "lint"}, tc.files...)...)
			if (err != nil) != tc.wantErr || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) {
				t.Errorf("err %v\nstdout %s\nstderr %s", err, out, errOut)
			}
		})
	}
}

func TestScenarioRun(t *testing.T) {
	for _, k := range []string{"IDENTITY_ENDPOINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_TOKEN_CREDENTIALS"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
	cases := []struct {
		name    string
		action  string
		args    []string
		wantErr error
		out     []string
	}{
		{"passes", slow, nil, nil, []string{"answer: fault answer (latency)", "pass ", "PASSED"}},
		{"fails", "{type: status, status: 503}", []string{"-q"}, errScenarioFailed, []string{"fail ", "0 of 4 attempts succeeded", "FAILED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "s.yaml")
			if err := os.WriteFile(file, []byte(shortScenario(tc.action)), 0o644); err != nil {
				t.Fatal(err)
			}
			result := filepath.Join(dir, "out", "r.json")
			repDir := filepath.Join(dir, "rep")
			args := append([]string{"scenario", "run", "-o", result, "--report-dir", repDir, file}, tc.args...)
			out, _, err := runIDHarness(t, args...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v\n%s", err, tc.wantErr, out)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if tc.wantErr != nil && strings.Contains(out, "requests ") {
				t.Errorf("-q printed progress:\n%s", out)
			}
			b, err := os.ReadFile(result)
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				Scenario string
				Passed   bool
				Requests []json.RawMessage
			}
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if res.Scenario != "cmd-test" || res.Passed != (tc.wantErr == nil) || len(res.Requests) == 0 {
				t.Errorf("result %s passed %v with %d requests", res.Scenario, res.Passed, len(res.Requests))
			}
			// The one results model: the report files of idharness run.
			var rep report.Report
			b, err = os.ReadFile(filepath.Join(repDir, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			wantState := report.Passed
			if tc.wantErr != nil {
				wantState = report.Failed
			}
			if rep.Suite != "scenario" || len(rep.Specs) != 1 || rep.Specs[0].ID != "cmd-test" || rep.Specs[0].State != wantState {
				t.Errorf("report.json: suite %q, specs %+v; want the scenario as one %s spec", rep.Suite, rep.Specs, wantState)
			}
			if tl, ok := report.ParseTimeline(rep.Specs[0]); !ok || len(tl.Clients) == 0 || len(tl.Buckets) == 0 {
				t.Errorf("report.json carries no timeline with clients: %+v", tl)
			}
			for _, f := range []string{"junit.xml", "summary.md", "report.html"} {
				if _, err := os.Stat(filepath.Join(repDir, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestScenarioRunInClusterErrors checks the in-cluster mode's errors,
// which need no cluster: a field a cluster cannot honour is named before
// anything is contacted, and a missing cluster says how to make one.
func TestScenarioRunInClusterErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	sources := filepath.Join(dir, "sources.yaml")
	if err := os.WriteFile(good, []byte(shortScenario(slow)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sources, []byte(strings.Replace(shortScenario(slow), "faces: [imds]", "faces: [imds], sources: [127.0.0.1]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"field a cluster cannot honour", []string{"--cluster", "none", sources}, []string{"sources.yaml:5: timeline[0].fault.match.sources"}},
		{"no such kind cluster", []string{"--cluster", "idh-none", "--cache-dir", dir, good}, []string{"cluster idh-none", "idharness run --cluster idh-none --keep-cluster"}},
		{"unreadable kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "none.kubeconfig"), good}, []string{"none.kubeconfig", "idharness run --kubeconfig"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runIDHarness(t, append([]string{"scenario", "run", "-o", filepath.Join(dir, "r.json")}, tc.args...)...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
