//go:build e2e

package incluster_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/pkg/report"
)

// TestInClusterE2E is issue 17's "the in-cluster runner and the Sonobuoy
// plugin give the same verdict as a local run on the same cluster": on
// one kind cluster, `idharness run --label-filter imds` from this
// machine, then `idharness run --in-cluster` with the same selection and
// seed, then (when IDHARNESS_E2E_SONOBUOY names a sonobuoy binary) the
// Sonobuoy plugin through the real Sonobuoy, its image built here from
// that binary and loaded into the nodes. Each must list the same spec
// IDs with the same outcomes, and the same verdict.
//
//	IDHARNESS_E2E_INCLUSTER=1 [IDHARNESS_E2E_SONOBUOY=/path/to/sonobuoy] \
//	  go test -tags e2e -run TestInClusterE2E -v -timeout 60m ./internal/incluster/
//
// IDHARNESS_E2E_INCLUSTER_CLUSTER names the kind cluster (default
// ic-e2e; kept with IDHARNESS_E2E_INCLUSTER_KEEP=1, else deleted).
// IDHARNESS_E2E_SONOBUOY is a static sonobuoy v0.57.3 (buildSonobuoy
// says how to build it; a wrong one fails the test at its start). The
// judging is e2ecompare_test.go's, tested there.
func TestInClusterE2E(t *testing.T) {
	if os.Getenv("IDHARNESS_E2E_INCLUSTER") == "" {
		t.Skip("set IDHARNESS_E2E_INCLUSTER=1 to run (needs Docker and the offline node image)")
	}
	clusterName := "ic-e2e"
	if n := os.Getenv("IDHARNESS_E2E_INCLUSTER_CLUSTER"); n != "" {
		clusterName = n
	}
	keep := os.Getenv("IDHARNESS_E2E_INCLUSTER_KEEP") != ""
	ctx, cancel := context.WithTimeout(context.Background(), 58*time.Minute)
	defer cancel()
	// A wrong sonobuoy binary fails now, not after the two runs.
	sonobuoy := os.Getenv("IDHARNESS_E2E_SONOBUOY")
	if sonobuoy != "" {
		version, err := checkSonobuoyBinary(ctx, sonobuoy)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("sonobuoy %s (%s)", version, sonobuoy)
		if version != sonobuoyVersion {
			t.Logf("sonobuoy %s is not %s, which this test was checked with", version, sonobuoyVersion)
		}
	} else {
		t.Logf("IDHARNESS_E2E_SONOBUOY unset: the Sonobuoy plugin will not run (%s)", buildSonobuoy)
	}
	moduleDir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "idharness")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/idharness")
	build.Dir, build.Env = moduleDir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build idharness: %v\n%s", err, out)
	}
	// run returns the command's standard output and error (progress
	// lines, such as the in-cluster runner's, go to the latter).
	run := func(name string, args ...string) (string, string) {
		t.Helper()
		start := time.Now()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = moduleDir
		var out, errOut bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, os.Stderr)
		cmd.Stderr = io.MultiWriter(&errOut, os.Stderr)
		err := cmd.Run()
		t.Logf("FIGURE %s %s: %s", filepath.Base(name), strings.Join(args[:min(2, len(args))], " "), time.Since(start).Round(100*time.Millisecond))
		// A failed spec is a non-zero exit too: the comparison judges.
		if err != nil && !strings.Contains(out.String(), "passed,") {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
		}
		return out.String(), errOut.String()
	}
	t.Cleanup(func() {
		if keep {
			t.Logf("keeping cluster %s", clusterName)
			return
		}
		if out, err := exec.Command(bin, "cluster", "delete", "--name", clusterName).CombinedOutput(); err != nil {
			t.Errorf("delete cluster: %v\n%s", err, out)
		}
	})
	common := []string{"--cluster", clusterName, "--keep-cluster", "--node-image", "offline", "--label-filter", "imds", "--client-images", "none", "--seed", "4242"}

	localDir := filepath.Join(work, "local")
	run(bin, append([]string{"run", "--report-dir", localDir}, common...)...)
	local := mustReadReport(t, filepath.Join(localDir, "report.json"))
	t.Logf("local: verdict %q, %d specs, %d passed, %d failed", local.Verdict, len(local.Specs), local.count(report.Passed), local.count(report.Failed))
	if err := checkReference(local); err != nil {
		t.Fatal(err)
	}

	inDir := filepath.Join(work, "incluster")
	_, progress := run(bin, append([]string{"run", "--in-cluster", "--report-dir", inDir}, common...)...)
	in := mustReadReport(t, filepath.Join(inDir, "report.json"))
	if !strings.Contains(progress, "in-cluster runner: Job idharness-system/idharness-runner-") {
		t.Errorf("the in-cluster run did not say its Job on standard error:\n%s", progress)
	}
	checkSame(t, "in-cluster", local, in)
	if _, err := os.Stat(filepath.Join(inDir, "runner.log")); err != nil {
		t.Errorf("runner.log: %v", err)
	}

	if sonobuoy == "" {
		return
	}
	kc, err := kindcluster.NewProvider().KubeConfig(clusterName, false)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	image := sonobuoyImage(t, sonobuoy, clusterName, work)
	plugin := filepath.Join(work, "idharness-plugin.yaml")
	run(bin, "sonobuoy", "plugin", "--kubeconfig", kubeconfig, "--label-filter", "imds", "-o", plugin)
	sb := func(args ...string) string {
		out, _ := run(sonobuoy, append(args, "--kubeconfig", kubeconfig)...)
		return out
	}
	t.Cleanup(func() {
		// Before the cluster's deletion (cleanups run last first), and
		// also when kept: the next run starts without Sonobuoy's namespace.
		if out, err := exec.Command(sonobuoy, "delete", "--wait", "--kubeconfig", kubeconfig).CombinedOutput(); err != nil {
			t.Errorf("sonobuoy delete: %v\n%s", err, out)
		}
	})
	// Sonobuoy v0.57.3 advertises its aggregator as https://[IPv4]:8080,
	// which the url package of the Go it is built with here refuses
	// ("invalid IP-literal"): its Service's name is advertised instead.
	config := filepath.Join(work, "sonobuoy-config.json")
	if err := os.WriteFile(config, []byte(`{"Server":{"bindaddress":"0.0.0.0","bindport":8080,"advertiseaddress":"sonobuoy-aggregator.sonobuoy.svc:8080","timeoutseconds":3600}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sb("run", "--config", config, "--plugin", plugin, "--sonobuoy-image", image, "--image-pull-policy", "IfNotPresent", "--wait", "--wait-output", "progress")
	retrieved := strings.TrimSpace(sb("retrieve", work))
	detailed, _ := run(sonobuoy, "results", retrieved, "--plugin", "idharness", "--mode", "detailed")
	summary, _ := run(sonobuoy, "results", retrieved, "--plugin", "idharness")
	archive, err := os.Open(retrieved)
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	sr, err := sonobuoyReport(detailed, archive)
	if err != nil {
		t.Error(err)
	}
	checkSame(t, "sonobuoy", local, sr)
	for _, d := range checkSonobuoySummary(summary, local) {
		t.Error(d)
	}
}

func mustReadReport(t *testing.T, path string) result {
	t.Helper()
	r, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkSame fails unless got has local's verdict and spec outcomes.
func checkSame(t *testing.T, what string, local, got result) {
	t.Helper()
	t.Logf("%s: verdict %q, %d specs, %d passed, %d failed; local: verdict %q, %d specs", what, got.Verdict, len(got.Specs),
		got.count(report.Passed), got.count(report.Failed), local.Verdict, len(local.Specs))
	for _, d := range compare(what, local, got) {
		t.Error(d)
	}
}

// sonobuoyImage builds Sonobuoy's image (its binary at /sonobuoy, as its
// aggregator and worker pods run it) with no registry and loads it into
// the cluster's nodes.
func sonobuoyImage(t *testing.T, binary, clusterName, work string) string {
	t.Helper()
	root, err := images.Layer(images.MinimalRoot())
	if err != nil {
		t.Fatal(err)
	}
	app, err := images.Layer([]images.File{{Path: "/sonobuoy", Source: binary, Mode: 0o755}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Assemble(images.Spec{Layers: []v1.Layer{root, app}, Entrypoint: []string{"/sonobuoy"}})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "idharness.local/sonobuoy:e2e"
	archive := filepath.Join(work, "sonobuoy.tar")
	if err := images.WriteArchive(archive, map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := images.LoadArchive(kindcluster.NewProvider(), clusterName, archive); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE sonobuoy image built and loaded: %s", time.Since(start).Round(100*time.Millisecond))
	return ref
}
