package sut

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// chartSUT is a sut.yaml deploying the chart at %s (testdata/chart)
// with a values file and inline values.
const chartSUT = `apiVersion: idharness.io/v1alpha1
kind: Implementation
name: vendor-agent
claims: [pod-identity]
intercepts: opted-in
images:
  - name: agent
    ref: vendor.example/agent:1.0
chart:
  path: %s
  valuesFiles: [values-idharness.yaml]
  values:
    upstream: "{{ .Upstream }}/"
readiness:
  daemonSets: [vendor-agent]
`

// writeChartSUT writes chartSUT for chart with the values file and
// returns its path.
func writeChartSUT(t *testing.T, chart, sut, values string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "values-idharness.yaml"), []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sut.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(sut, "%s", chart, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testChart(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/chart")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChartRender(t *testing.T) {
	s, err := Load(writeChartSUT(t, testChart(t), chartSUT, "image: \"{{ .Images.agent }}\"\nreplicas: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := s.Component([]Loaded{{Name: "agent", Ref: "idharness.local/agent:built"}}).Objects(fixtures.Params{Namespace: "idh"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
		if o.GetLabels()[Label] != "vendor-agent" || o.GetLabels()["app.kubernetes.io/part-of"] != "idharness" {
			t.Errorf("%s %s: labels %v, want idharness's and %s", o.GetKind(), o.GetName(), o.GetLabels(), Label)
		}
	}
	// CRDs first, then the pre-install hook, then Helm's install order;
	// the test hook and NOTES.txt are not objects to apply; namespaced
	// objects get the release's namespace, cluster-scoped ones (the CRD's
	// Widget included) none.
	want := []string{
		"CustomResourceDefinition /widgets.vendor.example",
		"ConfigMap idh/vendor-agent-setup",
		"ServiceAccount idh/vendor-agent",
		"ClusterRole /vendor-agent",
		"DaemonSet idh/vendor-agent",
		"Widget /vendor-agent-default",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c := objs[4].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if c["image"] != "idharness.local/agent:built" {
		t.Errorf("image %v: want the values file's {{ .Images.agent }}", c["image"])
	}
	args := c["args"].([]any)
	for i, want := range []string{"--upstream=http://169.254.169.254/", "--opt-in=idharness.io/pod-identity=true", "--sidecar-image=idharness.local/agent:built"} {
		if i >= len(args) || args[i] != want {
			t.Errorf("args %v: want %s at %d (inline values over the file's, .Values.idharness)", args, want, i)
		}
	}
}

func TestChartErrors(t *testing.T) {
	good := testChart(t)
	broken := t.TempDir()
	for name, body := range map[string]string{
		"Chart.yaml":           "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
		"templates/ds.yaml":    "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {{ .Release.Name }\n",
		"library/Chart.yaml":   "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
		"required/Chart.yaml":  "apiVersion: v2\nname: req\nversion: 0.1.0\n",
		"required/templates/x": "{{ required \"set token\" .Values.token }}\n",
	} {
		p := filepath.Join(broken, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	okValues := "image: x:1\n"
	tests := []struct {
		name, chart, sut, values string
		line                     int
		want                     []string
	}{
		{name: "no such chart", chart: "/nonexistent/chart", line: 10, want: []string{"chart.path", "/nonexistent/chart"}},
		{name: "not a chart", chart: filepath.Join(broken, "templates"), line: 10, want: []string{"chart.path", "Chart.yaml"}},
		{name: "template syntax", chart: broken, line: 9, want: []string{"render chart broken", "ds.yaml:4"}},
		{name: "library chart", chart: filepath.Join(broken, "library"), line: 10, want: []string{"library chart"}},
		{name: "required value missing", chart: filepath.Join(broken, "required"), line: 9, want: []string{"set token"}},
		{name: "values file YAML", chart: good, values: "image: [x\n", line: 11, want: []string{"chart.valuesFiles[0]", "values-idharness.yaml"}},
		{name: "values file unknown variable", chart: good, values: "image: \"{{ .Images.agnet }}\"\n", line: 11, want: []string{"chart.valuesFiles[0]", "values-idharness.yaml:1", `"agnet"`, ".Images.NAME for agent"}},
		{name: "values file sets idharness", chart: good, values: "idharness: {namespace: x}\n", line: 11, want: []string{"sets idharness"}},
		{name: "values against the schema", chart: good, values: "replicas: two\n", line: 9, want: []string{"values.schema.json", "replicas"}},
		{name: "missing values file", chart: good, sut: strings.Replace(chartSUT, "[values-idharness.yaml]", "[values-idharness.yaml, nope.yaml]", 1), line: 11, want: []string{"chart.valuesFiles[1]", "nope.yaml"}},
		{name: "inline unknown variable", chart: good, sut: strings.Replace(chartSUT, "{{ .Upstream }}", "{{ .Upstrem }}", 1), line: 13, want: []string{"chart.values.upstream", "Upstrem"}},
		{name: "inline sets idharness", chart: good, sut: strings.Replace(chartSUT, "    upstream:", "    idharness: {a: b}\n    upstream:", 1), line: 13, want: []string{"chart.values.idharness", "rename"}},
		{name: "manifests and chart", chart: good, sut: strings.Replace(chartSUT, "chart:\n", "manifests: manifests\nchart:\n", 1), line: 9, want: []string{"exactly one of manifests"}},
		{name: "chart without path", chart: good, sut: strings.Replace(chartSUT, "  path: %s\n", "", 1), line: 9, want: []string{"chart.path", "is empty"}},
		{name: "unknown chart field", chart: good, sut: strings.Replace(chartSUT, "  path:", "  valueFiles: [x]\n  path:", 1), line: 10, want: []string{"valueFiles"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sut, values := tt.sut, tt.values
			if sut == "" {
				sut = chartSUT
			}
			if values == "" {
				values = okValues
			}
			_, err := Load(writeChartSUT(t, tt.chart, sut, values))
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %v, want a located error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if ye.Line != tt.line {
				t.Errorf("error %q at line %d, want line %d", err, ye.Line, tt.line)
			}
		})
	}
}
