package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/support"
)

func TestProviderOptions(t *testing.T) {
	dir := t.TempDir()
	p := NewProvider(WithCacheDir(dir))
	var sp support.E2EClusterProvider = p
	sp = sp.SetDefaults().WithName("idh-e2e").WithVersion("v1.34.4").WithPath("/ignored/kind").
		WithOpts(func(c support.E2EClusterProvider) { c.WithName("idh-opt") })
	if got := sp.GetKubectlContext(); got != "kind-idh-opt" {
		t.Errorf("context = %q", got)
	}
	if got := sp.GetKubeconfig(); got != filepath.Join(dir, "clusters", "idh-opt", "kubeconfig") {
		t.Errorf("kubeconfig = %q", got)
	}
	if sp.KubernetesRestConfig() != nil {
		t.Error("no kubeconfig yet: rest config must be nil")
	}
}

func TestProviderCreateWithConfigCountsWorkers(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "kind.yaml")
	os.WriteFile(cfgFile, []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n"), 0o644)
	// An invalid name makes Create fail before touching Docker, after the
	// config's worker count was applied.
	p := NewProvider(WithName("Invalid Name"), WithCacheDir(t.TempDir()))
	if _, err := p.CreateWithConfig(context.Background(), cfgFile); err == nil {
		t.Fatal("want an error for the invalid name")
	}
	c, err := New(append(p.opts, WithName("ok"))...)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.c.Options().Workers; w != 2 {
		t.Errorf("workers = %d, want 2", w)
	}
	if _, err := p.CreateWithConfig(context.Background(), filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("want an error for a missing config file")
	}
}

func TestEnvFinishWithoutSetup(t *testing.T) {
	if _, err := EnvFinish()(context.Background(), envconf.New()); err == nil {
		t.Fatal("EnvFinish without EnvSetup must fail with advice")
	}
}
