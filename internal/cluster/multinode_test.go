//go:build e2e

package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"

	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/pkg/cluster"
)

// TestMultiNode checks the offline image's pod network across nodes: a
// control-plane and one worker, fakeimds pinned to the control plane, and a
// probe pinned to the worker reaching it by Service DNS name and by pod IP
// (CoreDNS runs on the control plane too, so DNS crosses nodes as well). The
// cluster is created, loaded and destroyed through e2e-framework's env funcs
// with cluster.Provider, as suites use it.
func TestMultiNode(t *testing.T) {
	if os.Getenv("IDHARNESS_SKIP_MULTINODE") != "" {
		t.Skip("IDHARNESS_SKIP_MULTINODE set")
	}
	// Beside TestSmoke (a cluster of its own each): most of a creation
	// is waiting for the nodes, so two at once take less than two after
	// each other. TestInterrupt, not parallel, runs before both.
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	name := "idh-multinode"

	work := t.TempDir()
	server, err := images.BuildGo(ctx, images.GoProgram{Package: "./cmd/fakeimds", ModuleDir: "../..", Image: "idharness.local/fakeimds:smoke", WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := images.BuildGo(ctx, images.GoProgram{Package: "./internal/cluster/testdata/probe", ModuleDir: "../..", Image: "idharness.local/probe:smoke", WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(work, "images.tar")
	if err := images.WriteBuiltArchive(archive, server, probe); err != nil {
		t.Fatal(err)
	}

	// Through e2e-framework's own env funcs, as suites do.
	provider := cluster.NewProvider(cluster.WithNodeImage(cluster.NodeImageOffline),
		cluster.WithWorkers(1), cluster.WithReuse(false), cluster.WithLogger(log))
	envCfg := envconf.New()
	start := time.Now()
	ctx, err = envfuncs.CreateClusterWithOpts(provider, name)(ctx, envCfg)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Logf("FIGURE 2-node cluster create: %s", time.Since(start).Round(100*time.Millisecond))
	envCtx := ctx // holds the cluster for DestroyCluster
	t.Cleanup(func() {
		if os.Getenv("IDHARNESS_SMOKE_KEEP") == "" {
			if _, err := envfuncs.DestroyCluster(name)(context.WithoutCancel(envCtx), envCfg); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
	})
	if _, err := envfuncs.LoadImageArchiveToCluster(name, archive)(ctx, envCfg); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(envCfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	const ns = "default"
	cp, worker := name+"-control-plane", name+"-worker"
	// The control plane keeps its NoSchedule taint when there are workers.
	tolerate := []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	mustCreatePod(ctx, t, cs, ns, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fakeimds", Labels: map[string]string{"app": "fakeimds"}},
		Spec: corev1.PodSpec{NodeName: cp, Tolerations: tolerate, Containers: []corev1.Container{{
			Name: "fakeimds", Image: server.Name, ImagePullPolicy: corev1.PullNever, Args: []string{"--imds-addr", ":8080"},
		}}},
	})
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "fakeimds"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "fakeimds"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An echo of the client address, to see pod addresses kept across nodes.
	mustCreatePod(ctx, t, cs, ns, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "whoami"},
		Spec: corev1.PodSpec{NodeName: cp, Tolerations: tolerate, Containers: []corev1.Container{{
			Name: "whoami", Image: probe.Name, ImagePullPolicy: corev1.PullNever, Args: []string{"serve", ":8080"},
		}}},
	})
	whoami := waitPodRunning(ctx, t, cs, ns, "whoami")
	p := waitPodRunning(ctx, t, cs, ns, "fakeimds")
	if p.Spec.NodeName != cp {
		t.Fatalf("fakeimds runs on %s, want %s", p.Spec.NodeName, cp)
	}
	probePod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-cross-node"},
		Spec: corev1.PodSpec{NodeName: worker, RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "probe", Image: probe.Name, ImagePullPolicy: corev1.PullNever,
			Args: []string{"-timeout", "90s",
				"cross-node-service-dns 200 http://fakeimds.default.svc.cluster.local/metadata/versions",
				fmt.Sprintf("cross-node-pod-ip 200 http://%s:8080/metadata/versions", p.Status.PodIP),
				"apiserver 200 https://kubernetes.default.svc/api",
				// Kubernetes expands $(POD_IP) from the env below.
				fmt.Sprintf("cross-node-source-address-kept 200~$(POD_IP) http://%s:8080/whoami", whoami.Status.PodIP),
			},
			Env: []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
		}}},
	}
	runPod(ctx, t, cs, ns, probePod)
}
