package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func TestResolveAndValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    []Option
		wantErr string
		check   func(t *testing.T, o Options)
	}{
		{"defaults", []Option{WithCacheDir(dir)}, "", func(t *testing.T, o Options) {
			if o.Name != DefaultName || o.NodeImage != NodeImageAuto || !o.Reuse || o.Workers != 0 || o.KubernetesVersion != "v1.34.4" {
				t.Errorf("defaults: %+v", o)
			}
			if o.Kubeconfig != filepath.Join(dir, "clusters", DefaultName, "kubeconfig") {
				t.Errorf("kubeconfig %s", o.Kubeconfig)
			}
		}},
		{"explicit kubeconfig", []Option{WithCacheDir(dir), WithKubeconfig("/tmp/k")}, "", func(t *testing.T, o Options) {
			if o.Kubeconfig != "/tmp/k" {
				t.Errorf("kubeconfig %s", o.Kubeconfig)
			}
		}},
		{"existing mode skips kind checks", []Option{WithExistingKubeconfig("/etc/aks.yaml"), WithName("NOT valid"), WithWorkers(-3)}, "", func(t *testing.T, o Options) {
			if o.Kubeconfig != "/etc/aks.yaml" {
				t.Errorf("kubeconfig %s", o.Kubeconfig)
			}
		}},
		{"upper-case name", []Option{WithName("Bad")}, "cluster name", nil},
		{"long name", []Option{WithName(strings.Repeat("a", 51))}, "at most 50", nil},
		{"negative workers", []Option{WithWorkers(-1)}, "workers -1", nil},
		{"too many workers", []Option{WithWorkers(11)}, "use 0 to 10", nil},
		{"empty image", []Option{WithNodeImage("")}, "node image", nil},
		{"bad version", []Option{WithKubernetesVersion("1.34")}, "v1.34.4", nil},
		{"zero wait", []Option{WithWaitTimeout(0)}, "wait timeout", nil},
		{"no cache", []Option{WithCacheDir("")}, "cache directory", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := resolve(tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestKindConfig(t *testing.T) {
	o := defaults()
	o.Name, o.Workers = "idh-x", 2
	cfg := KindConfig(o, "idharness.local/kind-node:v1.34.4-abc")
	if cfg.Name != "idh-x" || len(cfg.Nodes) != 3 {
		t.Fatalf("config %+v", cfg)
	}
	roles := []v1alpha4.NodeRole{cfg.Nodes[0].Role, cfg.Nodes[1].Role, cfg.Nodes[2].Role}
	if roles[0] != v1alpha4.ControlPlaneRole || roles[1] != v1alpha4.WorkerRole || roles[2] != v1alpha4.WorkerRole {
		t.Errorf("roles %v", roles)
	}
	b, err := KindConfigYAML(o, "img:1")
	if err != nil {
		t.Fatal(err)
	}
	// The rendered file is what kind itself would read.
	var back v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(b, &back); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if back.APIVersion != "kind.x-k8s.io/v1alpha4" || back.Kind != "Cluster" || back.Nodes[2].Image != "img:1" {
		t.Errorf("round trip: %+v", back)
	}
}

func node(name string, ready corev1.ConditionStatus) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
}

func pod(name string, phase corev1.PodPhase, ready corev1.ConditionStatus) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{
		Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}}
}

func TestEvaluateHealth(t *testing.T) {
	tests := []struct {
		name     string
		nodes    []corev1.Node
		pods     []corev1.Pod
		healthy  bool
		notReady string
	}{
		{"all good", []corev1.Node{node("cp", "True")},
			[]corev1.Pod{pod("etcd", corev1.PodRunning, "True"), pod("job", corev1.PodSucceeded, "False")}, true, ""},
		{"node not ready", []corev1.Node{node("cp", "True"), node("w1", "False")},
			[]corev1.Pod{pod("etcd", corev1.PodRunning, "True")}, false, "node/w1"},
		{"pod running but not ready", []corev1.Node{node("cp", "True")},
			[]corev1.Pod{pod("coredns", corev1.PodRunning, "False")}, false, "pod/coredns"},
		{"pod pending", []corev1.Node{node("cp", "True")},
			[]corev1.Pod{pod("coredns", corev1.PodPending, "False"), pod("etcd", corev1.PodRunning, "True")}, false, "pod/coredns"},
		{"no nodes yet", nil, []corev1.Pod{pod("etcd", corev1.PodRunning, "True")}, false, ""},
		{"no system pods yet", []corev1.Node{node("cp", "True")}, nil, false, ""},
		{"node without conditions", []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "new"}}},
			[]corev1.Pod{pod("etcd", corev1.PodRunning, "True")}, false, "node/new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := evaluate(tt.nodes, tt.pods)
			if h.Healthy() != tt.healthy {
				t.Fatalf("Healthy = %v: %s", h.Healthy(), h)
			}
			if got := strings.Join(h.NotReady, ","); got != tt.notReady {
				t.Errorf("NotReady = %q, want %q", got, tt.notReady)
			}
		})
	}
	h := evaluate([]corev1.Node{node("cp", "True")}, []corev1.Pod{pod("a", corev1.PodPending, "False")})
	if s := h.String(); s != "nodes 1/1 Ready, kube-system pods 0/1 Running (waiting for pod/a)" {
		t.Errorf("String = %q", s)
	}
}

func TestPublishedImage(t *testing.T) {
	def := kindDefaultImage
	tag := strings.SplitN(strings.TrimPrefix(def, "kindest/node:"), "@", 2)[0]
	if got := PublishedImage(tag); got != def {
		t.Errorf("PublishedImage(%s) = %s, want kind's default %s", tag, got, def)
	}
	if got := PublishedImage("v1.34.4"); tag != "v1.34.4" && got != "kindest/node:v1.34.4" {
		t.Errorf("PublishedImage(v1.34.4) = %s", got)
	}
}

func TestSelectImage(t *testing.T) {
	pullErr := errors.New("no registry")
	tests := []struct {
		name     string
		image    string
		pull     error
		want     string
		wantHow  string
		wantErr  string
		wantPull bool
	}{
		{"explicit image", "example.local/node:1", nil, "example.local/node:1", "given image", "", false},
		{"published pulls", NodeImagePublished, nil, PublishedImage("v1.34.4"), "pulled", "", true},
		{"published cannot pull", NodeImagePublished, pullErr, "", "", "--node-image offline", true},
		{"auto pulls", NodeImageAuto, nil, PublishedImage("v1.34.4"), "pulled", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pulled := false
			c, err := New(WithCacheDir(t.TempDir()), WithNodeImage(tt.image), WithPuller(func(string) error {
				pulled = true
				return tt.pull
			}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if localImage(ctx, PublishedImage("v1.34.4")) {
				t.Skip("kind's published image is present locally")
			}
			got, how, err := c.selectImage(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !strings.Contains(how, tt.wantHow) {
				t.Errorf("got %q (%s), want %q (%s)", got, how, tt.want, tt.wantHow)
			}
			if pulled != tt.wantPull {
				t.Errorf("pulled = %v, want %v", pulled, tt.wantPull)
			}
		})
	}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a"} {
		if err := writeRecord(dir, Record{Name: n, NodeImage: "img", Created: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := Records(dir)
	if err != nil || len(recs) != 2 || recs[0].Name != "a" || recs[1].Name != "b" {
		t.Fatalf("records %+v, %v", recs, err)
	}
	if err := removeRecord(dir, "a"); err != nil {
		t.Fatal(err)
	}
	recs, _ = Records(dir)
	if len(recs) != 1 || recs[0].Name != "b" {
		t.Fatalf("after remove: %+v", recs)
	}
}

func TestExistingModeDeletesNothing(t *testing.T) {
	c, err := New(WithExistingKubeconfig(filepath.Join(t.TempDir(), "kubeconfig")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Existing() {
		t.Fatal("not in existing mode")
	}
	if err := c.Delete(context.Background()); err != nil {
		t.Fatalf("delete in existing mode: %v", err)
	}
	if err := c.LoadImageArchive("x.tar"); err == nil {
		t.Error("loading images into an existing cluster must fail with advice")
	}
	if _, err := c.RESTConfig(); err == nil {
		t.Error("missing kubeconfig must fail")
	}
}
