// Package stacktest connects end-to-end tests (-tags e2e) to the stack
// that `idharness run --cluster NAME --keep-cluster` deployed on the kind
// cluster IDHARNESS_E2E_CLUSTER names, and skips them without it.
package stacktest

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/stack"
)

// EnvCluster names the kind cluster the e2e tests use.
const EnvCluster = "IDHARNESS_E2E_CLUSTER"

// Connect returns the cluster and its stack, or skips t when EnvCluster
// is unset; want says what the test needs deployed, for the skip message.
func Connect(ctx context.Context, t testing.TB, want string) (*cluster.Cluster, *stack.Stack) {
	t.Helper()
	name := os.Getenv(EnvCluster)
	if name == "" {
		t.Skipf("set %s to a kind cluster where `%s` deployed the stack", EnvCluster, want)
	}
	c, err := cluster.New(cluster.WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.Connect(ctx, cfg, fixtures.DefaultNamespace, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}
