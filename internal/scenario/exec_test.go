package scenario

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// execApp is a user's own workload: a plain Python script that asks the
// metadata endpoint it was pointed at every 300 ms, as many applications
// do without an SDK, and prints what happened.
const execApp = `import os, sys, time, urllib.request
url = os.environ["IDHARNESS_IMDS_URL"] + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
while True:
    try:
        req = urllib.request.Request(url, headers={"Metadata": "true"})
        with urllib.request.urlopen(req, timeout=2) as r:
            print("token ok", r.status, flush=True)
    except Exception as e:
        print("token failed:", e, flush=True)
    time.sleep(0.3)
`

const execScenario = `id: exec-own-workload
title: your own workload through a 2 s outage
links: [https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token]
setup:
  seed: 7
timeline:
  - name: down
    at: 2s
    for: 2s
    fault: {name: down, match: {faces: [imds]}, action: {type: status, status: 503}}
workload:
  duration: 7s
  clients:
    - name: app
      exec: {command: [python3, app.py], success: '^token ok', failure: '^token failed'}
expect:
  - {kind: recovers, step: down, within: 1s}
  - {kind: success-rate, step: down, minPercent: 50, finding: "the script has no retry: every call during the outage fails"}
  - {kind: max-rate, max: 5, window: 1s, description: "the script never sends more than 5 requests a second"}
`

// TestExecWorkload plays a scenario whose workload is the user's own
// command: it is started pointed at the fake, its requests are attributed
// to it by its address, its printed lines become attempts, and the
// verdicts judge it like any client.
func TestExecWorkload(t *testing.T) {
	clearIdentityEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(execApp), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "exec.yaml")
	if err := os.WriteFile(file, []byte(execScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := Run(ctx, s, Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Verdicts {
		if v.Outcome != OutcomePass && v.Outcome != OutcomeKnownFailure {
			t.Errorf("%s: %s: %s", v.Outcome, v.Expectation, v.Detail)
		}
	}
	c := res.Clients[0]
	ok, failed := 0, 0
	for _, a := range c.Attempts {
		if a.OK {
			ok++
		} else {
			failed++
		}
	}
	requests := 0
	for _, q := range res.Requests {
		if q.Client == c.Name {
			requests++
		}
	}
	if ok < 8 || failed < 3 || requests < ok+failed-1 {
		t.Errorf("%d ok and %d failed attempts, %d requests attributed to %s; want the script's calls every 300 ms, some during the outage\nlog: %v", ok, failed, requests, c.Name, c.Log)
	}
	if !strings.Contains(progress.String(), "fake IMDS at http://127.0.0.1:") {
		t.Errorf("the run did not print the fake's address:\n%s", progress.String())
	}
}
