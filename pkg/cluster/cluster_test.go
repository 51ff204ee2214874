package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	icluster "github.com/idharness/idharness/internal/cluster"
)

// The public options must reach the implementation unchanged, and its
// advice on bad options must reach the caller.
func TestNewOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    []Option
		wantErr string
		check   func(t *testing.T, c *Cluster)
	}{
		{"defaults", []Option{WithCacheDir(dir)}, "", func(t *testing.T, c *Cluster) {
			if c.Name() != DefaultName || c.Existing() || c.Kubeconfig() != filepath.Join(dir, "clusters", DefaultName, "kubeconfig") {
				t.Errorf("name %q existing %v kubeconfig %q", c.Name(), c.Existing(), c.Kubeconfig())
			}
		}},
		{"every option", []Option{WithCacheDir(dir), WithName("idh2"), WithWorkers(2), WithNodeImage(NodeImageOffline),
			WithKubernetesVersion("v1.34.4"), WithKubeconfig("/tmp/k"), WithKeepOnFailure(true), WithReuse(false),
			WithWaitTimeout(90e9), WithLogger(nil)}, "", func(t *testing.T, c *Cluster) {
			o := c.c.Options()
			if o.Name != "idh2" || o.Workers != 2 || o.NodeImage != NodeImageOffline || o.Kubeconfig != "/tmp/k" ||
				!o.KeepOnFailure || o.Reuse || o.WaitTimeout.Seconds() != 90 || o.Logger == nil {
				t.Errorf("options %+v", o)
			}
		}},
		{"existing mode", []Option{WithExistingKubeconfig("/etc/aks.yaml")}, "", func(t *testing.T, c *Cluster) {
			if !c.Existing() || c.Kubeconfig() != "/etc/aks.yaml" {
				t.Errorf("existing %v kubeconfig %q", c.Existing(), c.Kubeconfig())
			}
		}},
		{"bad name", []Option{WithName("Bad Name")}, "cluster name", nil},
		{"too many workers", []Option{WithWorkers(11)}, "use 0 to 10", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// Health is the internal judgement under a public name.
func TestHealth(t *testing.T) {
	tests := []struct {
		h       Health
		healthy bool
		text    string
	}{
		{Health{Nodes: 2, ReadyNodes: 2, SystemPods: 8, RunningSystemPods: 8}, true, "nodes 2/2 Ready, kube-system pods 8/8 Running"},
		{Health{Nodes: 2, ReadyNodes: 1, SystemPods: 8, RunningSystemPods: 8, NotReady: []string{"node/w"}}, false, "(waiting for node/w)"},
		{Health{}, false, "nodes 0/0"},
	}
	for _, tt := range tests {
		if got := tt.h.Healthy(); got != tt.healthy || got != icluster.Health(tt.h).Healthy() {
			t.Errorf("%+v: Healthy() = %v, want %v", tt.h, got, tt.healthy)
		}
		if !strings.Contains(tt.h.String(), tt.text) {
			t.Errorf("%+v: String() = %q, want it to contain %q", tt.h, tt.h.String(), tt.text)
		}
	}
}

// Without a cluster, RESTConfig says to create one first.
func TestRESTConfigBeforeCreate(t *testing.T) {
	c, err := New(WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RESTConfig(); err == nil || !strings.Contains(err.Error(), "create the cluster first") {
		t.Errorf("err = %v, want advice to create the cluster", err)
	}
	// Port 1 on loopback refuses at once.
	if _, err := CheckHealth(context.Background(), &rest.Config{Host: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "list nodes") {
		t.Errorf("CheckHealth of no server: err = %v, want a failed node list", err)
	}
}
