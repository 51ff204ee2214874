package scenario

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
)

// TestAuthorityFaultRouting checks which rules go to the stack's
// authority in a workload identity run: those matching its face alone.
func TestAuthorityFaultRouting(t *testing.T) {
	for _, tc := range []struct {
		faces []string
		want  bool
	}{
		{[]string{"authority"}, true},
		{nil, false},
		{[]string{"imds"}, false},
		{[]string{"authority", "imds"}, false},
	} {
		if got := onlyAuthority(tc.faces); got != tc.want {
			t.Errorf("onlyAuthority(%v) = %v, want %v", tc.faces, got, tc.want)
		}
	}
}

// TestAddAuthorityFault checks that a workload identity run's authority
// rule reaches the authority scoped to the run's pods and named after
// its namespace, that its undo removes it, and that a run with no pod
// addresses refuses to add one rather than fault every client.
func TestAddAuthorityFault(t *testing.T) {
	_, addrs := fakeimdstest.Start(t, nil)
	ctl, err := client.New("http://" + addrs.Control)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{authority: ctl, kube: &kubeEnv{runNamespace: "idh-scenario-abcde"}, source: map[string]string{}}
	ctx := context.Background()
	var rule chaos.Rule
	if err := json.Unmarshal([]byte(`{"name":"exchange-503","match":{"faces":["authority"],"methods":["POST"]},"action":{"type":"status","status":503}}`), &rule); err != nil {
		t.Fatal(err)
	}
	if _, err := r.addAuthorityFault(ctx, rule); err == nil || !strings.Contains(err.Error(), "no addresses") {
		t.Errorf("without pods: %v, want a refusal", err)
	}
	r.source["10.244.1.7"], r.source["10.244.1.5"] = "go-1", "py-1"
	undo, err := r.addAuthorityFault(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	state, err := ctl.Chaos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Rules) != 1 {
		t.Fatalf("rules at the authority: %+v", state.Rules)
	}
	got := state.Rules[0].Rule
	if got.Name != "idh-scenario-abcde.exchange-503" || strings.Join(got.Match.Sources, ",") != "10.244.1.5,10.244.1.7" {
		t.Errorf("rule %s for %v, want idh-scenario-abcde.exchange-503 for the pods' addresses", got.Name, got.Match.Sources)
	}
	if len(r.authorityRules) != 1 || r.authorityRules[0] != got.Name {
		t.Errorf("rules for the cleanup: %v", r.authorityRules)
	}
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if state, _ := ctl.Chaos(ctx); len(state.Rules) != 0 {
		t.Errorf("rules left after the undo: %+v", state.Rules)
	}
}
