//go:build e2e

package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/images"
)

// TestSmoke is the cluster smoke test (issue 3, item 5). It needs Docker
// (make prereqs) and builds or reuses the offline node image, so it runs only
// with -tags e2e:
//
//	go test -tags e2e -run TestSmoke -v -timeout 40m ./internal/cluster/
//
// IDHARNESS_NODE_IMAGE picks the node image (default offline);
// IDHARNESS_SMOKE_KEEP=1 keeps the cluster afterwards.
func TestSmoke(t *testing.T) {
	// Beside TestMultiNode: see there.
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	nodeImage := os.Getenv("IDHARNESS_NODE_IMAGE")
	if nodeImage == "" {
		nodeImage = cluster.NodeImageOffline
	}
	name := "idh-smoke"

	// Images first: a broken program should fail before a cluster exists.
	work := t.TempDir()
	server, err := images.BuildGo(ctx, images.GoProgram{
		Package: "./cmd/fakeimds", ModuleDir: "../..", Image: "idharness.local/fakeimds:smoke", WorkDir: work,
	})
	if err != nil {
		t.Fatalf("fakeimds image: %v", err)
	}
	probe, err := images.BuildGo(ctx, images.GoProgram{
		Package: "./internal/cluster/testdata/probe", ModuleDir: "../..", Image: "idharness.local/probe:smoke", WorkDir: work,
	})
	if err != nil {
		t.Fatalf("probe image: %v", err)
	}
	archive := filepath.Join(work, "images.tar")
	if err := images.WriteBuiltArchive(archive, server, probe); err != nil {
		t.Fatal(err)
	}

	// The images go in while the nodes become ready (WithWhileWaiting), as
	// idharness run loads its own: the pods below never pull, so they
	// start only if the load really happened.
	var c *cluster.Cluster
	var loadTook time.Duration
	c, err = cluster.New(cluster.WithName(name), cluster.WithNodeImage(nodeImage),
		cluster.WithReuse(false), cluster.WithLogger(log),
		cluster.WithWhileWaiting(func(context.Context) error {
			start := time.Now()
			if err := c.LoadImageArchive(archive); err != nil {
				return err
			}
			loadTook = time.Since(start)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	info, err := c.Create(ctx)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, d := range info.Durations {
		t.Logf("create action %-32s %s", d.Action, d.Duration.Round(100*time.Millisecond))
	}
	t.Logf("FIGURE cluster create (node image ready, until nodes Ready and kube-system Running): %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if os.Getenv("IDHARNESS_SMOKE_KEEP") != "" {
			t.Logf("keeping cluster %s (kubeconfig %s)", name, c.Kubeconfig())
			return
		}
		logPeakMemory(t, c)
		start := time.Now()
		if err := c.Delete(context.Background()); err != nil {
			t.Errorf("delete: %v", err)
		}
		t.Logf("FIGURE cluster delete: %s", time.Since(start).Round(100*time.Millisecond))
		if ok, _ := clusterExists(name); ok {
			t.Errorf("cluster %s still exists after delete", name)
		}
	})

	if loadTook == 0 {
		t.Fatal("the images were not loaded beside the readiness wait")
	}
	t.Logf("images loaded in %s, beside the readiness wait", loadTook.Round(100*time.Millisecond))

	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "idh-smoke"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// fakeimds in the pod network behind a Service.
	labels := map[string]string{"app": "fakeimds"}
	mustCreatePod(ctx, t, cs, ns, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fakeimds", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "fakeimds", Image: server.Name, ImagePullPolicy: corev1.PullNever,
			Args:  []string{"--imds-addr", ":8080"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	})
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "fakeimds"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{
			Port: 80, TargetPort: intstr.FromInt32(8080),
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// fakeimds in the node's network namespace, as pod identity agents run.
	const hostPort = "18080"
	mustCreatePod(ctx, t, cs, ns, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fakeimds-hostnet"},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name: "fakeimds", Image: server.Name, ImagePullPolicy: corev1.PullNever,
				Args: []string{"--imds-addr", ":" + hostPort, "--control-addr", "127.0.0.1:18079"},
			}},
		},
	})
	waitPodRunning(ctx, t, cs, ns, "fakeimds")
	hostPod := waitPodRunning(ctx, t, cs, ns, "fakeimds-hostnet")
	nodeIP := hostPod.Status.HostIP

	nodes, err := c.Nodes()
	if err != nil || len(nodes) == 0 {
		t.Fatalf("kind nodes: %v", err)
	}
	node := nodes[0]
	iptables := func(args ...string) {
		t.Helper()
		var out strings.Builder
		if err := node.Command("iptables", args...).SetStdout(&out).SetStderr(&out).Run(); err != nil {
			t.Fatalf("iptables %s on %s: %v: %s", strings.Join(args, " "), node, err, out.String())
		}
	}
	// Nothing may leave the node for 169.254.169.254 (the host may have a
	// real metadata service): reject it in FORWARD. DNAT happens before
	// FORWARD, so redirected traffic is not affected.
	iptables("-I", "FORWARD", "-d", "169.254.169.254/32", "-j", "REJECT")

	svcURL := fmt.Sprintf("http://fakeimds.%s.svc.cluster.local/metadata/versions", ns)
	runProbe(ctx, t, cs, ns, "probe-before",
		"service-by-dns 200 "+svcURL,
		"apiserver-via-kubernetes-service 200 https://kubernetes.default.svc/api",
		"metadata-without-dnat fail http://169.254.169.254/metadata/versions",
	)

	iptables("-t", "nat", "-I", "PREROUTING", "-d", "169.254.169.254/32", "-p", "tcp", "--dport", "80",
		"-j", "DNAT", "--to-destination", nodeIP+":"+hostPort)
	runProbe(ctx, t, cs, ns, "probe-dnat",
		"metadata-dnat-to-host-network-pod 200 http://169.254.169.254/metadata/versions",
	)
}

func mustCreatePod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, p *corev1.Pod) {
	t.Helper()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
}

// waitPodRunning waits until the pod runs with every container ready.
func waitPodRunning(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			ready := len(p.Status.ContainerStatuses) > 0
			for _, s := range p.Status.ContainerStatuses {
				ready = ready && s.Ready
			}
			if ready {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s not running: %v %+v", ns, name, err, podState(p))
		}
		time.Sleep(time.Second)
	}
}

func podState(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var s []string
	for _, c := range p.Status.ContainerStatuses {
		s = append(s, fmt.Sprintf("%s ready=%v state=%+v", c.Name, c.Ready, c.State))
	}
	return string(p.Status.Phase) + " " + strings.Join(s, "; ")
}

// runProbe runs the probe image with the checks and fails the test unless
// every check passes; the probe's output is logged.
func runProbe(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, checks ...string) {
	t.Helper()
	runPod(ctx, t, cs, ns, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "probe", Image: "idharness.local/probe:smoke", ImagePullPolicy: corev1.PullNever,
				Args: append([]string{"-timeout", "90s"}, checks...),
			}},
		},
	})
}

// runPod runs a pod to completion, logs its output and fails the test
// unless it succeeded.
func runPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, pod *corev1.Pod) {
	t.Helper()
	name := pod.Name
	mustCreatePod(ctx, t, cs, ns, pod)
	deadline := time.Now().Add(4 * time.Minute)
	var p *corev1.Pod
	for {
		var err error
		p, err = cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s did not finish: %v %s", name, err, podState(p))
		}
		time.Sleep(time.Second)
	}
	logs, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).Do(ctx).Raw()
	if err != nil {
		t.Fatalf("pod %s logs: %v", name, err)
	}
	t.Logf("%s:\n%s", name, strings.TrimSpace(string(logs)))
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s failed", name)
	}
}

func clusterExists(name string) (bool, error) {
	c, err := cluster.New(cluster.WithName(name))
	if err != nil {
		return false, err
	}
	s, err := c.Status(context.Background())
	return s.Exists, err
}

// logPeakMemory logs the node containers' peak memory use (cgroup v1
// max_usage, or v2 memory.peak) where the host exposes it.
func logPeakMemory(t *testing.T, c *cluster.Cluster) {
	nodes, err := c.Nodes()
	if err != nil {
		return
	}
	for _, n := range nodes {
		id, err := dockerID(n.String())
		if err != nil {
			continue
		}
		for _, p := range []string{
			"/sys/fs/cgroup/memory/docker/" + id + "/memory.max_usage_in_bytes",
			"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/memory.peak",
		} {
			if b, err := os.ReadFile(p); err == nil {
				var v int64
				fmt.Sscan(strings.TrimSpace(string(b)), &v)
				t.Logf("FIGURE node %s peak memory: %d MiB", n, v>>20)
				break
			}
		}
	}
}
