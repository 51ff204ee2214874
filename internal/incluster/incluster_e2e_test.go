//go:build e2e

package incluster_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/idharness/idharness/internal/images"
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
	run := func(name string, args ...string) string {
		t.Helper()
		start := time.Now()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = moduleDir
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, os.Stderr)
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		t.Logf("FIGURE %s %s: %s", filepath.Base(name), strings.Join(args[:min(2, len(args))], " "), time.Since(start).Round(100*time.Millisecond))
		// A failed spec is a non-zero exit too: the comparison judges.
		if err != nil && !strings.Contains(out.String(), "passed,") {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
		}
		return out.String()
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
	local := readReport(t, filepath.Join(localDir, "report.json"))

	inDir := filepath.Join(work, "incluster")
	out := run(bin, append([]string{"run", "--in-cluster", "--report-dir", inDir}, common...)...)
	in := readReport(t, filepath.Join(inDir, "report.json"))
	if !strings.Contains(out, "in-cluster runner: Job idharness-system/idharness-runner-") {
		t.Errorf("the in-cluster run did not say its Job:\n%s", out)
	}
	compare(t, "in-cluster", local, in)
	if _, err := os.Stat(filepath.Join(inDir, "runner.log")); err != nil {
		t.Errorf("runner.log: %v", err)
	}

	sonobuoy := os.Getenv("IDHARNESS_E2E_SONOBUOY")
	if sonobuoy == "" {
		t.Log("IDHARNESS_E2E_SONOBUOY unset: the Sonobuoy plugin is not run")
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
		return run(sonobuoy, append(args, "--kubeconfig", kubeconfig)...)
	}
	defer sb("delete", "--wait")
	// Sonobuoy v0.57.3 advertises its aggregator as https://[IPv4]:8080,
	// which the url package of the Go it is built with here refuses
	// ("invalid IP-literal"): its Service's name is advertised instead.
	config := filepath.Join(work, "sonobuoy-config.json")
	if err := os.WriteFile(config, []byte(`{"Server":{"bindaddress":"0.0.0.0","bindport":8080,"advertiseaddress":"sonobuoy-aggregator.sonobuoy.svc:8080","timeoutseconds":3600}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sb("run", "--config", config, "--plugin", plugin, "--sonobuoy-image", image, "--image-pull-policy", "IfNotPresent", "--wait", "--wait-output", "progress")
	retrieved := strings.TrimSpace(sb("retrieve", work))
	detailed := run(sonobuoy, "results", retrieved, "--plugin", "idharness", "--mode", "detailed")
	summary := run(sonobuoy, "results", retrieved, "--plugin", "idharness")
	sr := sonobuoyReport(t, detailed, retrieved)
	compare(t, "sonobuoy", local, sr)
	wantStatus := "passed"
	if local.Verdict == "Not conformant" {
		wantStatus = "failed"
	}
	if !strings.Contains(summary, "Status: "+wantStatus) {
		t.Errorf("sonobuoy results: want Status: %s for a %s run:\n%s", wantStatus, local.Verdict, summary)
	}
}

// result is what the comparison looks at: the verdict and each spec's
// outcome, by ID.
type result struct {
	Verdict string
	Specs   map[string]string
}

func readReport(t *testing.T, path string) result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Verdict string
		Specs   []struct{ ID, State string }
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	r := result{Verdict: rep.Verdict, Specs: map[string]string{}}
	for _, s := range rep.Specs {
		r.Specs[s.ID] = s.State
	}
	return r
}

// compare fails unless got has local's verdict and spec outcomes.
func compare(t *testing.T, what string, local, got result) {
	t.Helper()
	t.Logf("%s: verdict %q, %d specs; local: verdict %q, %d specs", what, got.Verdict, len(got.Specs), local.Verdict, len(local.Specs))
	if got.Verdict != local.Verdict {
		t.Errorf("%s verdict %q, local %q", what, got.Verdict, local.Verdict)
	}
	var ids []string
	for id := range local.Specs {
		ids = append(ids, id)
	}
	for id := range got.Specs {
		if _, ok := local.Specs[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if local.Specs[id] != got.Specs[id] {
			t.Errorf("%s %s: %q, local %q", what, id, got.Specs[id], local.Specs[id])
		}
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

var specID = regexp.MustCompile(`IDH-[A-Z]+-\d{4}`)

// sonobuoyReport reads the spec outcomes from `sonobuoy results --mode
// detailed` (a JSON object per test) and the verdict from the JUnit file
// the plugin left in the retrieved archive.
func sonobuoyReport(t *testing.T, detailed, archive string) result {
	t.Helper()
	r := result{Specs: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(detailed))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var item struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &item) != nil {
			continue
		}
		if id := specID.FindString(item.Name); id != "" {
			r.Specs[id] = item.Status
		}
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if !strings.HasPrefix(h.Name, "plugins/idharness/") || !strings.HasSuffix(h.Name, "junit.xml") {
			continue
		}
		var j struct {
			Suites []struct {
				Properties []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"properties>property"`
			} `xml:"testsuite"`
		}
		if err := xml.NewDecoder(tr).Decode(&j); err != nil {
			t.Fatalf("%s in %s: %v", h.Name, archive, err)
		}
		for _, s := range j.Suites {
			for _, p := range s.Properties {
				if p.Name == "verdict" {
					r.Verdict = p.Value
				}
			}
		}
	}
	if r.Verdict == "" {
		t.Errorf("no junit.xml with a verdict under plugins/idharness/ in %s", archive)
	}
	return r
}
