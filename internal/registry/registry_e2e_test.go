//go:build e2e

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestRegistryE2E is issue 17's "second cluster pulling from the
// registry": the registry of `idharness registry start` on the kind
// network, a kind cluster whose containerd pulls from it
// (`idharness cluster create --registry-mirror`), and `idharness run
// --image-registry`, which pushes every image and loads none. It checks
// the verdict and that the pods ran the registry's images by digest, as
// the pod specs, their statuses and the nodes' containerd show them.
//
//	IDHARNESS_E2E_REGISTRY=1 go test -tags e2e -run TestRegistryE2E -v -timeout 40m ./internal/registry/
//
// IDHARNESS_E2E_REGISTRY_CLIENTS sets --client-images (default none: the
// Go clients only, the quickest run); IDHARNESS_E2E_REGISTRY_KEEP=1 keeps
// the cluster and the registry. IDHARNESS_E2E_REGISTRY_CLUSTER=NAME uses
// a kind cluster created already with --registry-mirror
// localhost:5002=http://idh-registry-e2e:5000 (a CI cluster kept for
// other steps, with IDHARNESS_E2E_REGISTRY_WORKERS workers) instead of
// creating reg-a, and leaves it.
func TestRegistryE2E(t *testing.T) {
	if os.Getenv("IDHARNESS_E2E_REGISTRY") == "" {
		t.Skip("set IDHARNESS_E2E_REGISTRY=1 to run (needs Docker and the offline node image)")
	}
	clusterName, workers := "reg-a", "1"
	if n := os.Getenv("IDHARNESS_E2E_REGISTRY_CLUSTER"); n != "" {
		clusterName = n
	}
	if n := os.Getenv("IDHARNESS_E2E_REGISTRY_WORKERS"); n != "" {
		workers = n
	}
	given := os.Getenv("IDHARNESS_E2E_REGISTRY_CLUSTER") != ""
	const (
		container = "idh-registry-e2e"
		port      = "5002"
		push      = "localhost:" + port
		repo      = push + "/idharness"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 38*time.Minute)
	defer cancel()
	keep := os.Getenv("IDHARNESS_E2E_REGISTRY_KEEP") != ""
	clients := os.Getenv("IDHARNESS_E2E_REGISTRY_CLIENTS")
	if clients == "" {
		clients = "none"
	}
	moduleDir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "idharness")
	idh := func(args ...string) string {
		t.Helper()
		start := time.Now()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = moduleDir
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		t.Logf("FIGURE idharness %s: %s", args[0]+" "+args[1], time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			t.Fatalf("idharness %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/idharness")
	build.Dir, build.Env = moduleDir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build idharness: %v\n%s", err, out)
	}

	total := time.Now()
	flags := idh("registry", "start", "--name", container, "--port", port)
	mirror := push + "=http://" + container + ":5000"
	if !strings.Contains(flags, "--registry-mirror "+mirror) {
		t.Fatalf("registry start printed %q, want the flag --registry-mirror %s", flags, mirror)
	}
	// A given cluster is reused only if its nodes have the mirror
	// (otherwise `cluster create` recreates it with one).
	kubeconfig := strings.TrimSpace(idh("cluster", "create", "--name", clusterName, "--node-image", "offline", "--workers", workers, "--reuse="+strconv.FormatBool(given), "--registry-mirror", mirror))
	t.Cleanup(func() {
		if keep {
			t.Logf("keeping cluster %s and registry %s", clusterName, container)
			return
		}
		cleanup := [][]string{{"registry", "stop", "--name", container}}
		if !given {
			cleanup = append(cleanup, []string{"cluster", "delete", "--name", clusterName})
		}
		for _, args := range cleanup {
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Errorf("idharness %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	reportDir := filepath.Join(work, "report")
	out := idh("run", "--cluster", clusterName, "--workers", workers, "--node-image", "offline", "--keep-cluster",
		"--image-registry", repo, "--label-filter", "imds", "--client-images", clients, "--report-dir", reportDir)
	t.Logf("FIGURE registry e2e total (registry start, cluster create, run): %s", time.Since(total).Round(time.Second))
	// --label-filter imds leaves the claimed modes' other MUST specs
	// unrun: the verdict is Partial (a filtered run never says
	// Conformant), and every spec that ran must have passed.
	if !(strings.Contains(out, "\nConformant:") || strings.Contains(out, "\nPartial:")) || !strings.Contains(out, " 0 failed (0 MUST)") {
		t.Fatalf("run: a spec failed or no verdict:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "images") || strings.HasPrefix(l, "total") {
			t.Logf("run: %s", strings.TrimSpace(l))
		}
	}

	// The report records every image by its registry digest.
	var rep struct {
		Images []struct{ Name, Ref, ID string }
	}
	b, err := os.ReadFile(filepath.Join(reportDir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) < 3 {
		t.Fatalf("report.json records %d pushed images, want fakeimds, probe and vault at least: %s", len(rep.Images), b)
	}
	refs := map[string]string{} // program → digest ref
	for _, im := range rep.Images {
		if !strings.HasPrefix(im.Ref, repo+"/") || !strings.Contains(im.Ref, "@sha256:") || !strings.HasPrefix(im.ID, "sha256:") {
			t.Errorf("report image %+v: want %s/NAME@sha256:… and a config digest", im, repo)
		}
		refs[strings.SplitN(strings.TrimPrefix(im.Ref, repo+"/"), "@", 2)[0]] = im.Ref
	}

	// The pods' specs name those digests and nothing preloaded; their
	// statuses say the image came from the registry.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kc.CoreV1().Pods("idharness-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=fakeimds"})
	if err != nil {
		t.Fatal(err)
	}
	nodeList, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != len(nodeList.Items) {
		t.Fatalf("%d fakeimds pods, want one per node (%d)", len(pods.Items), len(nodeList.Items))
	}
	for _, p := range pods.Items {
		checkPod(t, p, refs["fakeimds"])
	}

	// Each node's containerd holds the registry's images, and no
	// idharness.local/ image but the node image's own.
	var all []string
	for _, n := range nodeList.Items {
		node := n.Name // a kind node's container is named as the node
		have := strings.Fields(mustOut(t, "docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"))
		all = append(all, have...)
		if !contains(have, refs["fakeimds"]) {
			t.Errorf("node %s: containerd lacks %s; it has:\n%s", node, refs["fakeimds"], strings.Join(have, "\n"))
		}
		for _, img := range have {
			// A given cluster may have had images loaded by earlier runs.
			if !given && strings.HasPrefix(img, "idharness.local/") && !strings.HasPrefix(img, "idharness.local/kind-") {
				t.Errorf("node %s: containerd has the preloaded-style image %s: the run loaded images instead of pulling them", node, img)
			}
		}
	}
	if !contains(all, refs["probe"]) {
		t.Errorf("no node's containerd has the probe image %s that the specs' pods ran", refs["probe"])
	}
}

func checkPod(t *testing.T, p corev1.Pod, want string) {
	t.Helper()
	if want == "" {
		t.Fatal("the report records no fakeimds image")
	}
	for _, c := range p.Spec.Containers {
		if c.Image != want {
			t.Errorf("pod %s container %s: image %s, want %s", p.Name, c.Name, c.Image, want)
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		digest := want[strings.Index(want, "@"):]
		if !strings.HasSuffix(s.ImageID, digest) || !strings.Contains(s.ImageID, "localhost:") {
			t.Errorf("pod %s container %s: image ID %s, want the registry's %s", p.Name, s.Name, s.ImageID, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}
