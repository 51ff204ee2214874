package scenario

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/journal"
)

// TestWorkloadOptionErrors checks the validation of parallel, useToken,
// podIdentity, labels and setup.podIdentity: each case changes base.
func TestWorkloadOptionErrors(t *testing.T) {
	const group = "- {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}"
	const setup = "setup:\n  seed: 1\n"
	withGroup := func(extra string) string {
		return "- {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web, " + extra + "}"
	}
	podGroup := withGroup("podIdentity: true, labels: {aadpodidbinding: web}")
	cases := []struct {
		name     string
		old, new string
		want     string
	}{
		{"parallel negative", group, withGroup("parallel: -1"), "t.yaml:16: workload.clients[0].parallel: -1: want 1 to 64"},
		{"parallel over the bound", group, withGroup("parallel: 65"), "t.yaml:16: workload.clients[0].parallel: 65: want 1 to 64"},
		{"too many calls at once", group, "- {name: mi, client: azidentity-mi, count: 20, every: 1s, parallel: 64}", "t.yaml:16: workload.clients[0]: brings the workload to 1280 calls at once"},
		{"useToken unknown", group, withGroup("useToken: keyvault"), `t.yaml:16: workload.clients[0].useToken: want vault (read a secret at the protected resource with each token), got "keyvault"`},
		{"useToken with another resource", group, withGroup("useToken: vault, resource: https://storage.azure.com"), `t.yaml:16: workload.clients[0].resource: "https://storage.azure.com": with useToken: vault`},
		{"label name", group, withGroup("podIdentity: true, labels: {'bad key!': x}"), `t.yaml:16: workload.clients[0].labels.bad key!: "bad key!" is not a label name`},
		{"label value", group, withGroup("podIdentity: true, labels: {aadpodidbinding: 'not a value'}"), `t.yaml:16: workload.clients[0].labels.aadpodidbinding: "not a value" is not a label value`},
		{"harness label", group, withGroup("labels: {idharness.io/scenario: x}"), "t.yaml:16: workload.clients[0].labels.idharness.io/scenario: idharness.io/scenario is the probe pods' own label"},
		{"binding label without podIdentity", group, withGroup("labels: {aadpodidbinding: web}"), "t.yaml:16: workload.clients[0].labels.aadpodidbinding: a pod identity agent reads aadpodidbinding only in a namespace opted in"},
		{"podIdentity on some groups only", group, podGroup + "\n    - {name: other, client: azidentity-mi, every: 1s}", "t.yaml:17: workload.clients[1]: the run's pods share one namespace"},
		{"bindings without podIdentity groups", setup, setup + "  podIdentity: {bindings: [{identity: web, selector: web}]}\n", "t.yaml:6: setup.podIdentity: no group runs in the pod identity namespace"},
		{"no bindings", setup, setup + "  podIdentity: {bindings: []}\n", "t.yaml:6: setup.podIdentity.bindings: required"},
		{"binding of an unknown identity", setup, setup + "  podIdentity: {bindings: [{identity: api, selector: web}]}\n", `t.yaml:6: setup.podIdentity.bindings[0].identity: "api" is not one of setup.identities`},
		{"binding of the system identity", setup, setup + "  podIdentity: {bindings: [{identity: system, selector: web}]}\n", "t.yaml:6: setup.podIdentity.bindings[0].identity: required: one of setup.identities"},
		{"selector not a label value", setup, setup + "  podIdentity: {bindings: [{identity: web, selector: 'a b'}]}\n", `t.yaml:6: setup.podIdentity.bindings[0].selector: "a b" is not a label value`},
		{"binding twice", setup, setup + "  podIdentity: {bindings: [{identity: web, selector: web}, {identity: web, selector: web}]}\n", "t.yaml:6: setup.podIdentity.bindings[1]: binds web to web a second time"},
		{"unknown binding field", setup, setup + "  podIdentity: {bindings: [{identity: web, selector: web, namespace: x}]}\n", "t.yaml:6: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("base lacks %q", tc.old)
			}
			_, err := Parse("t.yaml", []byte(strings.Replace(base, tc.old, tc.new, 1)))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant prefix\n  %s", err, tc.want)
			}
		})
	}
}

// TestPodIdentityLocalAndCluster checks that pod identity fields pass an
// in-cluster run's checks and are refused locally, with their line.
func TestPodIdentityLocalAndCluster(t *testing.T) {
	for _, tc := range []struct {
		file, local string
	}{
		{"podidentity-upstream-500.yaml", "setup.podIdentity: pod identity objects are read by a node agent in a cluster"},
		{"podidentity-agent-restart.yaml", "setup.podIdentity: pod identity objects are read by a node agent in a cluster"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s, err := LoadFile(filepath.Join("..", "..", "scenarios", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CheckCluster(); err != nil {
				t.Errorf("CheckCluster: %v", err)
			}
			err = s.checkLocalWorkload()
			if err == nil || !strings.Contains(err.Error(), tc.local) || !strings.Contains(err.Error(), tc.file+":") {
				t.Errorf("checkLocalWorkload: %v, want %q with the file's line", err, tc.local)
			}
			_, err = Run(context.Background(), s, Options{})
			if err == nil || !strings.Contains(err.Error(), "run this scenario in a cluster") {
				t.Errorf("Run: %v, want a refusal", err)
			}
		})
	}
	// Without setup.podIdentity, a group's podIdentity and labels are
	// refused on their own.
	s := mustParse(t, strings.Replace(base, "- {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}",
		"- {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web, podIdentity: true}", 1))
	if err := s.checkLocalWorkload(); err == nil || !strings.Contains(err.Error(), "workload.clients[0].podIdentity: a local run has no pod identity agent") {
		t.Errorf("checkLocalWorkload: %v", err)
	}
}

// TestUseTokenInCluster checks what a cluster run can honour of useToken.
func TestUseTokenInCluster(t *testing.T) {
	for _, tc := range []struct {
		name, group, want string
	}{
		{"system identity", "- {name: mi, client: azidentity-mi, every: 1s, useToken: vault}", ""},
		{"user-assigned identity", "- {name: mi, client: azidentity-mi, every: 1s, identity: web, useToken: vault}", "workload.clients[0].identity: useToken: vault in a cluster reads node-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, strings.Replace(base, "- {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}", tc.group, 1))
			err := s.CheckCluster()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckCluster: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPlanPodsOptions checks the probe flags and labels of parallel,
// useToken and labels, and the identity a bound pod should get.
func TestPlanPodsOptions(t *testing.T) {
	s := mustParse(t, `id: t
title: t
links: [https://example.com/x]
setup:
  identities:
    - {name: web, clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01, objectId: 4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02}
  podIdentity: {bindings: [{identity: web, selector: web-pods}]}
workload:
  duration: 10s
  clients:
    - {name: fan, client: azidentity-mi, every: 1s, parallel: 8, useToken: vault, podIdentity: true, labels: {aadpodidbinding: web-pods, tier: a}}
    - {name: stray, client: raw, every: 1s, podIdentity: true, labels: {aadpodidbinding: nobody}}
    - {name: asks, client: raw, every: 1s, identity: web, podIdentity: true}
expect:
  - {kind: own-identity}
`)
	cfg, system, err := s.clusterConfig(nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{s: s, cfg: cfg, nonce: "n1", system: system, kube: &kubeEnv{vaultURL: "http://vault.idharness.svc"}}
	plans := r.planPods()
	for _, tc := range []struct {
		i                 int
		has, lacks        []string
		expect            string
		label, labelValue string
	}{
		{0, []string{"--parallel=8", "--vault-url=http://vault.idharness.svc", "--secret=node-secret", "--resource=https://vault.azure.net"}, nil,
			"3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", "tier", "a"},
		// Bound to nothing: no token is its own.
		{1, nil, []string{"--parallel=8", "--secret=node-secret"}, "", "aadpodidbinding", "nobody"},
		{2, []string{"--identity=client_id=3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01"}, nil, "", "", ""},
	} {
		p := plans[tc.i]
		for _, a := range tc.has {
			if !slices.Contains(p.args, a) {
				t.Errorf("%s: args %q lack %s", p.pod, p.args, a)
			}
		}
		for _, a := range tc.lacks {
			if slices.Contains(p.args, a) {
				t.Errorf("%s: args %q have %s", p.pod, p.args, a)
			}
		}
		if p.client.Identity != tc.expect {
			t.Errorf("%s: expects identity %q, want %q", p.pod, p.client.Identity, tc.expect)
		}
		labels := podLabels(p.labels, s.ID)
		if labels[scenarioLabel] != "t" || (tc.label != "" && labels[tc.label] != tc.labelValue) {
			t.Errorf("%s: labels %v", p.pod, labels)
		}
	}
	if got := s.namespaceLabels()["idharness.io/pod-identity"]; got != "true" {
		t.Errorf("namespace labels %v: not opted in to pod identity", s.namespaceLabels())
	}
}

// TestAttributeFanOut checks that the requests of a fan-out are counted
// once each, for the lowest-numbered call running.
func TestAttributeFanOut(t *testing.T) {
	ms := func(d int) Millis { return Millis(time.Duration(d) * time.Millisecond) }
	res := &Result{
		Clients: []ClientResult{{Name: "c-1", Attempts: []Attempt{
			{Start: ms(0), End: ms(100), Call: 1},
			{Start: ms(0), End: ms(300), Call: 2},
			{Start: ms(1), End: ms(300), Call: 3},
			{Start: ms(1000), End: ms(1100)},
		}}},
	}
	for _, at := range []int{10, 50, 200, 250, 1050} {
		res.Requests = append(res.Requests, Request{At: ms(at), Client: "c-1", Entry: journal.Entry{}})
	}
	attribute(res)
	var got []int
	for _, a := range res.Clients[0].Attempts {
		got = append(got, a.Requests)
	}
	if want := []int{2, 2, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("requests per attempt %v, want %v", got, want)
	}
}

// TestRunParallelUseToken runs fan-outs whose tokens are used at the
// run's vault: every call is numbered and each group's token reads its
// secret.
func TestRunParallelUseToken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clients for about 4 s")
	}
	clearIdentityEnv(t)
	s := mustParse(t, `id: t
title: t
links: [https://example.com/x]
setup:
  identities:
    - {name: web, clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01, objectId: 4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02}
workload:
  duration: 4s
  clients:
    - {name: sys, client: azidentity-mi, every: 2s, parallel: 4, useToken: vault}
    - {name: web, client: msal-mi, every: 2s, identity: web, parallel: 3, useToken: vault}
    - {name: plain, client: raw, every: 2s}
expect:
  - {kind: resource-ok, clients: sys}
  - {kind: resource-ok, clients: web}
  - {kind: own-identity}
`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed {
		t.Errorf("not passed: %+v", res.Verdicts)
	}
	for _, c := range res.Clients {
		n := map[string]int{"sys-1": 4, "web-1": 3, "plain-1": 1}[c.Name]
		if len(c.Attempts) < n {
			t.Fatalf("%s: %d attempts, want at least one fan-out of %d", c.Name, len(c.Attempts), n)
		}
		for i, a := range c.Attempts[:n] {
			wantCall, wantStatus := i+1, 200
			if n == 1 {
				wantCall, wantStatus = 0, 0
			}
			if a.Call != wantCall || a.ResourceStatus != wantStatus || !a.OK {
				t.Errorf("%s attempt %d: call %d resource %d ok %v (%s %s), want call %d resource %d", c.Name, i, a.Call, a.ResourceStatus, a.OK, a.Error, a.ResourceError, wantCall, wantStatus)
			}
		}
	}
}
