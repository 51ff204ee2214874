package main

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestSonobuoyPlugin: the definition is what Sonobuoy's worker expects
// (a Job driver, JUnit results, the results volume) and runs run-job
// with the run's selection and the results directory.
func TestSonobuoyPlugin(t *testing.T) {
	b, err := SonobuoyPlugin("idharness.local/idharness:abc", "idharness-system", "conformance", "imds", "")
	if err != nil {
		t.Fatal(err)
	}
	var p sonobuoyPlugin
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if p.Config.Driver != "Job" || p.Config.ResultFormat != "junit" || p.Config.PluginName != SonobuoyPluginName {
		t.Errorf("sonobuoy-config %+v", p.Config)
	}
	c := p.Spec
	if c.Image != "idharness.local/idharness:abc" || c.Name != "plugin" {
		t.Errorf("container %s %s", c.Name, c.Image)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != "results" || c.VolumeMounts[0].MountPath != SonobuoyResultsDir {
		t.Errorf("volume mounts %+v, want results at %s", c.VolumeMounts, SonobuoyResultsDir)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"run-job ", "--label-filter imds", "--idh-namespace idharness-system", "--sonobuoy-results " + SonobuoyResultsDir} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if !slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") || *c.SecurityContext.RunAsUser == 0 {
		t.Errorf("security context %+v: want nonroot with no capabilities", c.SecurityContext)
	}
}

// TestSonobuoyResults: the report goes into the results directory as one
// tarball, and the done file names it.
func TestSonobuoyResults(t *testing.T) {
	rep, res := t.TempDir(), t.TempDir()
	for _, f := range []string{"junit.xml", "report.json", "summary.md"} {
		if err := os.WriteFile(filepath.Join(rep, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := sonobuoyResults(rep, res); err != nil {
		t.Fatal(err)
	}
	done, err := os.ReadFile(filepath.Join(res, "done"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(string(done))
	if err != nil {
		t.Fatalf("done names %q: %v", done, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "junit.xml report.json summary.md" {
		t.Errorf("tarball holds %v", names)
	}
	if err := sonobuoyResults(filepath.Join(rep, "none"), res); err == nil {
		t.Error("no report directory: want an error")
	}
}
