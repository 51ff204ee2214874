package scenario

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/scenarios"
)

// TestRestartRefusedLocally: a step only a cluster can carry out fails a
// local run before anything starts, naming the step's line.
func TestRestartRefusedLocally(t *testing.T) {
	s, err := Parse("r.yaml", []byte(strings.Replace(base, "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restart: {agent: pod-identity}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), s, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "r.yaml:11: timeline[0].restart: a restart deletes a pod") || !strings.Contains(err.Error(), "--cluster") {
		t.Fatalf("error %v, want the restart step refused with its line and --cluster", err)
	}
}

// TestStepKindsInDocs keeps the list of step kinds in docs/scenarios.md
// equal to the registry's; -update rewrites it.
func TestStepKindsInDocs(t *testing.T) {
	checkDocsBlock(t, "TestStepKindsInDocs", "<!-- step kinds: generated -->", "<!-- end step kinds -->", StepKindTable())
}

// TestThrottleAndTokensHeldLocally plays a throttle step that fires once
// every client holds a token: the fake must answer 429s only after that
// moment, and the step's record must say when it fired.
func TestThrottleAndTokensHeldLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clients for about 8 s")
	}
	clearIdentityEnv(t)
	s, err := Parse("th.yaml", []byte(`id: th
title: throttle after tokens are held
links: [https://example.com/incident]
setup:
  throttle: {enabled: false}
timeline:
  - name: squeeze
    after: tokens-held
    at: 1s
    for: 4s
    throttle: {identityRps: 1, identityConcurrency: 1, retryAfter: 1s}
workload:
  duration: 8s
  clients:
    - {name: raw, client: raw, count: 3, every: 200ms, start: 500ms, timeout: 2s}
expect:
  - {kind: success-rate, minPercent: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 1 || res.Steps[0].Error != "" {
		t.Fatalf("steps %+v, want the throttle step applied", res.Steps)
	}
	fired := res.Steps[0].At.D()
	// The three raw clients start 0.5 s in and each has a token from its
	// first call: the step fires 1 s after the last of them, not at 1 s.
	if fired < 1500*time.Millisecond || fired > 3*time.Second {
		t.Errorf("throttle fired at %v, want 1 s after every client held a token (about 1.5-2 s)", fired)
	}
	var before, during int
	for _, q := range res.Requests {
		if q.Status != 429 {
			continue
		}
		if q.At.D() < fired {
			before++
		} else if q.At.D() < res.Steps[0].End.D() {
			during++
		}
	}
	if before != 0 || during == 0 {
		t.Errorf("429s: %d before the step, %d during it; want none before and some during", before, during)
	}
}

// TestRestartRecoveryFromReady: recovery after a restart step counts from
// when its new pod was ready (the step's recorded end), which the file
// cannot say, not from when the old pod was deleted.
func TestRestartRecoveryFromReady(t *testing.T) {
	s, err := Parse("r.yaml", []byte(`id: r
title: restart
links: [https://example.com/incident]
timeline:
  - {name: agent, at: 10s, restart: {agent: pod-identity}}
workload:
  duration: 30s
  clients:
    - {name: mi, client: raw, every: 1s}
expect:
  - {kind: recovers, step: agent, within: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ready time.Duration
		held  bool
	}{
		{"ready at 14 s, token at 15 s", 14 * time.Second, true},
		// Judged from the deletion, the first case would fail too (5 s);
		// from readiness, this one is 3 s late.
		{"ready at 12 s, token at 15 s", 12 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{
				Steps: []StepRecord{{Name: "agent", Kind: "restart", At: Millis(10 * time.Second), End: Millis(tc.ready)}},
				Clients: []ClientResult{{Name: "mi-1", Group: "mi", Client: "raw", Attempts: []Attempt{
					{Start: Millis(9 * time.Second), End: Millis(9100 * time.Millisecond), OK: true},
					{Start: Millis(11 * time.Second), End: Millis(11100 * time.Millisecond)},
					{Start: Millis(15 * time.Second), End: Millis(15100 * time.Millisecond), OK: true},
				}}},
			}
			if v := Evaluate(s, r)[0]; v.Held != tc.held {
				t.Errorf("held %v (%s), want %v", v.Held, v.Detail, tc.held)
			}
		})
	}
}

// TestWarnings: a fault rule that can never match what fakeimds serves is
// valid, but lint and run warn about it with the step's line; a rule with
// the documented path (which also hits clients that add a slash) does not.
func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{"/metadata/identity/oauth2/token", ""},
		{"/metadata/identity/oauth2/tokens", "w.yaml:12: timeline[0].fault: warning: "},
	} {
		s, err := Parse("w.yaml", []byte(strings.Replace(base, "{name: down, action:", "{name: down, match: {faces: [imds], path: "+tc.path+"}, action:", 1)))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(s.Warnings(), "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("path %s: warnings %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestStepWindowFromApplied: a window on a step starts when its fault was
// in effect (the control API answered), not when it fired. In a loaded
// cluster the two were 100 ms apart, and a cache-less call that ended in
// between, with a token, counted as a success "during the outage"
// (IDH-CHAOS-0005 failed once in five runs on it).
func TestStepWindowFromApplied(t *testing.T) {
	// Step "outage" from 10 s to 20 s.
	s := expectScenario(t, "{kind: success-rate, clients: a, step: outage, maxPercent: 0}")
	res := cres("a-1", att(10.01, 10.05, true, 1), att(12, 12.01, false, 1))
	for _, tc := range []struct {
		name    string
		applied float64
		held    bool
	}{
		{"applied at 10.1 s: the call before it is not the outage's", 10.1, true},
		{"applied at 10.02 s: the call ended in the outage", 10.02, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Steps: []StepRecord{{Name: "outage", At: sec(10), Applied: sec(tc.applied), End: sec(20)}}, Clients: []ClientResult{res}}
			if v := Evaluate(s, r)[0]; v.Held != tc.held {
				t.Errorf("held %v (%s), want %v", v.Held, v.Detail, tc.held)
			}
		})
	}
}

// TestBindingStepsValidate: bind and unbind name bindings as
// setup.podIdentity writes them, checked against the shipped partition
// scenario with one of its steps replaced.
func TestBindingStepsValidate(t *testing.T) {
	base, err := os.ReadFile("../../scenarios/podidentity-apiserver-partition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const step = "    unbind: {identity: id-a, selector: chaos-revoked}"
	for _, tc := range []struct {
		name, with, want string
	}{
		{"as shipped", step, ""},
		{"unbind of no setup binding", "    unbind: {identity: id-a, selector: chaos-late}", "timeline[1].unbind: id-a to chaos-late is not one of setup.podIdentity.bindings"},
		{"bind of a setup binding", "    bind: {identity: id-a, selector: chaos-kept}", "timeline[1].bind: setup.podIdentity.bindings already binds id-a to chaos-kept"},
		{"unknown identity", "    unbind: {identity: id-z, selector: chaos-revoked}", "timeline[1].unbind.identity: want one of setup.identities"},
		{"system identity", "    bind: {identity: system, selector: chaos-x}", "timeline[1].bind.identity: want one of setup.identities"},
		{"no selector", "    bind: {identity: id-a}", "timeline[1].bind.selector: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(string(base), step, tc.with, 1)
			_, err := Parse("p.yaml", []byte(src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestBoundIdentityCountsBindSteps: a pod bound by a bind step during the
// run may get that identity, so own-identity judges it by that binding;
// before bind steps counted, the late-bound pod's tokens were all "another
// identity's".
func TestBoundIdentityCountsBindSteps(t *testing.T) {
	s, err := LoadFile("../../scenarios/podidentity-apiserver-partition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	idA, _ := s.Identity("id-a")
	for _, tc := range []struct{ label, want string }{
		{"chaos-kept", idA.ClientID},
		{"chaos-revoked", idA.ClientID},
		{"chaos-late", idA.ClientID},
		{"chaos-nobody", ""},
	} {
		g := ClientGroup{Labels: map[string]string{"aadpodidbinding": tc.label}}
		if got := s.boundIdentity(g); got != tc.want {
			t.Errorf("%s: bound to %q, want %q", tc.label, got, tc.want)
		}
	}
}

// TestNeedsHost: the shipped scenarios that act on the machine behind a
// node are exactly those an in-cluster run must leave out, and NeedsHost
// names the step.
func TestNeedsHost(t *testing.T) {
	all, err := LoadFS(scenarios.FS(), "scenarios")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"podidentity-apiserver-partition": ".partition enters the node's network namespace",
		"podidentity-node-restart":        ".restartNode restarts the kind node's container",
		"wi-reinvocation":                 ".wiPod creates mutating webhook configurations",
		"wi-slow-webhook-fail":            ".wiPod creates mutating webhook configurations",
		"wi-slow-webhook-ignore":          ".wiPod creates mutating webhook configurations",
		"wi-token-rotation-fast":          "tokenFile: secret writes the pods' token into Secrets",
	}
	for _, s := range all {
		got := s.NeedsHost()
		w, ok := want[s.ID]
		switch {
		case ok && !strings.Contains(got, w):
			t.Errorf("%s: NeedsHost() = %q, want it to contain %q", s.ID, got, w)
		case !ok && got != "":
			t.Errorf("%s: NeedsHost() = %q, want empty: it only acts through the API server, within the in-cluster runner's rights", s.ID, got)
		}
		delete(want, s.ID)
	}
	for id := range want {
		t.Errorf("scenario %s is not shipped any more: update the test", id)
	}
}
