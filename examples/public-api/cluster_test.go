package publicapi

import (
	"context"
	"os"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/idharness/idharness/pkg/cluster"
)

// TestClusterWithE2EFramework is docs/cluster.md's snippet in an
// e2e-framework test. It builds always; it creates a kind cluster (and
// the offline node image, if there is none: minutes on a cold machine)
// only when IDH_EXAMPLE_CLUSTER=1, since `make test` runs no clusters.
func TestClusterWithE2EFramework(t *testing.T) {
	tests := []struct {
		name   string
		setup  env.Func
		finish env.Func
	}{
		{"e2e-framework's env funcs with cluster.Provider",
			envfuncs.CreateClusterWithOpts(cluster.NewProvider(cluster.WithNodeImage(cluster.NodeImageOffline)), "idh-example"),
			envfuncs.DestroyCluster("idh-example")},
		{"cluster.EnvSetup and EnvFinish",
			cluster.EnvSetup(cluster.WithName("idh-example-2"), cluster.WithNodeImage(cluster.NodeImageOffline)),
			cluster.EnvFinish()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Getenv("IDH_EXAMPLE_CLUSTER") != "1" {
				t.Skip("set IDH_EXAMPLE_CLUSTER=1 to create a kind cluster (needs Docker: make prereqs)")
			}
			testenv := env.New()
			testenv.Setup(tt.setup)
			testenv.Finish(tt.finish)
			nodesReady := features.New("cluster").Assess("every node is Ready", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				h, err := cluster.CheckHealth(ctx, cfg.Client().RESTConfig())
				if err != nil {
					t.Fatal(err)
				}
				if !h.Healthy() {
					t.Errorf("cluster not healthy: %s", h)
				}
				return ctx
			}).Feature()
			testenv.Test(t, nodesReady)
		})
	}
}

// TestClusterOptions needs no cluster: New checks the options and says
// what to change.
func TestClusterOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    []cluster.Option
		wantErr bool
	}{
		{"defaults", []cluster.Option{cluster.WithCacheDir(t.TempDir())}, false},
		{"two workers", []cluster.Option{cluster.WithCacheDir(t.TempDir()), cluster.WithName("idh2"), cluster.WithWorkers(2)}, false},
		{"existing kubeconfig", []cluster.Option{cluster.WithExistingKubeconfig("/etc/aks.yaml")}, false},
		{"bad name", []cluster.Option{cluster.WithName("Not Valid")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cluster.New(tt.opts...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && c.Kubeconfig() == "" {
				t.Error("no kubeconfig path")
			}
		})
	}
}
