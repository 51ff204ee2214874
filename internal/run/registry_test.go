package run

import (
	"reflect"
	"strings"
	"testing"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/registry"
)

// Every pushed image the manifests name is replaced by its digest; an
// image that was not pushed keeps its name.
func TestRetarget(t *testing.T) {
	const d = "@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pushed := map[string]registry.Pushed{}
	for _, n := range []string{"fakeimds", "probe", "vault", "nodeagent", "client-python"} {
		pushed["idharness.local/"+n+":dev"] = registry.Pushed{Ref: "localhost:5001/idharness/" + n + d}
	}
	imgs := fixtures.Images{
		FakeIMDS: "idharness.local/fakeimds:dev", Probe: "idharness.local/probe:dev", Vault: "idharness.local/vault:dev",
		Extra:   map[string]string{"nodeagent": "idharness.local/nodeagent:dev", "other": "example.com/other:1"},
		Clients: map[string]string{"python": "idharness.local/client-python:dev"},
	}
	retarget(&imgs, pushed)
	want := fixtures.Images{
		FakeIMDS: "localhost:5001/idharness/fakeimds" + d, Probe: "localhost:5001/idharness/probe" + d, Vault: "localhost:5001/idharness/vault" + d,
		Extra:   map[string]string{"nodeagent": "localhost:5001/idharness/nodeagent" + d, "other": "example.com/other:1"},
		Clients: map[string]string{"python": "localhost:5001/idharness/client-python" + d},
	}
	if !reflect.DeepEqual(imgs, want) {
		t.Errorf("retarget:\n got %+v\nwant %+v", imgs, want)
	}
}

// A registry the nodes reach by name needs no mirror; one on this
// machine's loopback does, and a kind cluster without it is refused with
// the flag that fixes it. (The cluster is never created: an existing-mode
// Cluster has no nodes, which HasMirror reports.)
func TestCheckNodesReach(t *testing.T) {
	cl, err := cluster.New(cluster.WithExistingKubeconfig("/nonexistent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo string
		err  string
	}{
		{repo: "registry.example.com/idharness"},
		{repo: "idh-registry:5000/idharness"},
		{repo: "localhost:5001/idharness", err: "no kind nodes"},
		{repo: "127.0.0.1:5001/idharness", err: "no kind nodes"},
	} {
		r, err := registry.ParseRepository(tc.repo, false)
		if err != nil {
			t.Fatal(err)
		}
		err = checkNodesReach(cl, "reg-x", r)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkNodesReach(%s) = %v; want error %q", tc.repo, err, tc.err)
		}
	}
}
