//go:build e2e

package scenario

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/idharness/idharness/internal/stack/stacktest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRunInClusterE2E runs the shipped expires-on-numeric scenario (15 s)
// in the kind cluster IDHARNESS_E2E_CLUSTER names, where `idharness run
// --cluster NAME --keep-cluster` deployed the stack:
//
//	IDHARNESS_E2E_CLUSTER=idh-scn go test -tags e2e -run InClusterE2E ./internal/scenario/
//
// Without the variable it is skipped.
func TestRunInClusterE2E(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, st := stacktest.Connect(ctx, t, "idharness run --cluster NAME --keep-cluster")
	name := os.Getenv(stacktest.EnvCluster)
	s, err := LoadFile("../../scenarios/expires-on-numeric.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := RunInCluster(ctx, s, ClusterOptions{Stack: st, Cluster: name, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Verdicts {
		t.Logf("%s: %s (%s)", v.Outcome, v.Expectation, v.Detail)
	}
	if !res.Passed {
		t.Error("the scenario did not pass in the cluster")
	}
	if res.InCluster == nil || res.InCluster.Node == "" || len(res.InCluster.Pods) != 5 {
		t.Errorf("in-cluster record %+v: want the node and 5 pods", res.InCluster)
	}
	unattributed := false
	for _, cl := range res.Clients {
		if len(cl.Attempts) == 0 || cl.Attempts[0].Requests == 0 {
			t.Errorf("client %s: attempts %+v, want a first attempt with its requests attributed", cl.Name, cl.Attempts)
			unattributed = true
		}
	}
	if unattributed {
		// What the attribution saw: each request's time from the start,
		// its client and the User-Agent it came with.
		for _, q := range res.Requests {
			t.Logf("request %d at %s: client %q, remote %s, latency %.3f ms, User-Agent %q", q.Seq, q.At.D(), q.Client, q.Remote, q.LatencyMS, q.Headers["User-Agent"])
		}
	}
	for _, q := range res.Requests {
		if q.Client == "" {
			t.Errorf("request %d (%s) attributed to no client", q.Seq, q.Headers["User-Agent"])
		}
	}
	// Nothing is left behind: no rules on the node, the namespace going.
	fc, err := st.FakeIMDS(ctx, res.InCluster.Node)
	if err != nil {
		t.Fatal(err)
	}
	if rules, err := fc.Faults(ctx); err != nil || len(rules) != 0 {
		t.Errorf("rules left on %s: %+v (%v)", res.InCluster.Node, rules, err)
	}
	ns, err := st.Deployer().Kube.CoreV1().Namespaces().Get(ctx, res.InCluster.Namespace, metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("namespace %s is not being deleted", ns.Name)
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	}
}
