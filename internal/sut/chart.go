package sut

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Chart is a local Helm chart that deploys the implementation, rendered
// here with Helm's own library as `helm template` would (no cluster
// lookups), the release named after the implementation in the stack's
// namespace.
type Chart struct {
	// Path is the chart's directory or packaged .tgz.
	Path string `json:"path"`
	// ValuesFiles are merged over the chart's values.yaml in order, as
	// `helm -f` does.
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// Values are merged last, over the files.
	Values map[string]any `json:"values,omitempty"`
}

// ValuesKey is the top-level value idharness sets for every chart (a
// chart written for idharness reads .Values.idharness.namespace, …); a
// user's values may not set it.
const ValuesKey = "idharness"

// loadChart loads the chart, refusing one that installs nothing.
func (s *SUT) loadChart() (*chart.Chart, error) {
	ch, err := loader.Load(s.Path(s.Chart.Path))
	if err != nil {
		return nil, fmt.Errorf("load the chart: %w", err)
	}
	if ch.Metadata.Type == "library" {
		return nil, fmt.Errorf("chart %s is a library chart, which installs nothing: name the application chart", ch.Name())
	}
	return ch, nil
}

// chartValues returns the user's values for v: each values file and each
// string of the inline values expanded as a template with v (so that an
// unmodified chart gets, say, image: "{{ .Images.agent }}"), merged in
// order, with .Values.idharness added. field errors name the sut.yaml
// field at fault.
func (s *SUT) chartValues(v Values) (vals map[string]any, field string, err error) {
	vals = map[string]any{}
	for i, f := range s.Chart.ValuesFiles {
		field = fmt.Sprintf("chart.valuesFiles[%d]", i)
		body, err := os.ReadFile(s.Path(f))
		if err != nil {
			return nil, field, err
		}
		text, err := expand(s.Path(f), string(body), v)
		if err != nil {
			return nil, field, err
		}
		fv, err := chartutil.ReadValues([]byte(text))
		if err != nil {
			return nil, field, fmt.Errorf("%s: %w", s.Path(f), err)
		}
		if _, ok := fv[ValuesKey]; ok {
			return nil, field, fmt.Errorf("%s sets %s, which idharness sets: rename the key", s.Path(f), ValuesKey)
		}
		merge(vals, fv)
	}
	inline, field, err := expandValues("chart.values", s.Chart.Values, v)
	if err != nil {
		return nil, field, err
	}
	if m, _ := inline.(map[string]any); m != nil {
		merge(vals, m)
	}
	labels := map[string]any{}
	if err := yaml.Unmarshal([]byte(v.Labels), &labels); err != nil {
		return nil, "", fmt.Errorf("idharness's labels %q: %w", v.Labels, err)
	}
	images := map[string]any{}
	for k, ref := range v.Images {
		images[k] = ref
	}
	certs := map[string]any{}
	for k, c := range v.Certificates {
		certs[k] = map[string]any{"cert": string(c.certPEM), "key": string(c.keyPEM), "ca": string(c.caPEM), "caBundle": c.CABundle, "hash": c.Hash}
	}
	vals[ValuesKey] = map[string]any{"name": s.Name, "namespace": v.Namespace, "upstream": v.Upstream, "images": images,
		"labels": labels, "optInLabel": v.OptInLabel, "optInValue": v.OptInValue, "certificates": certs, "tenantID": v.TenantID,
		"authorityHost": v.AuthorityHost, "authorityCAConfigMap": v.AuthorityCAConfigMap, "ownWebhookLabel": v.OwnWebhookLabel,
		"clusterSuffix": v.ClusterSuffix}
	return vals, "", nil
}

// expandValues expands every string in the inline values, keys included,
// as a template with v; field is where a failure is.
func expandValues(field string, in any, v Values) (any, string, error) {
	switch x := in.(type) {
	case string:
		out, err := expand(field, x, v)
		return out, field, err
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			f := field + "." + k
			if field == "chart.values" && k == ValuesKey {
				return nil, f, fmt.Errorf("idharness sets .Values.%s itself: rename the key", ValuesKey)
			}
			val, ef, err := expandValues(f, x[k], v)
			if err != nil {
				return nil, ef, err
			}
			out[k] = val
		}
		return out, "", nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			val, ef, err := expandValues(fmt.Sprintf("%s[%d]", field, i), e, v)
			if err != nil {
				return nil, ef, err
			}
			out[i] = val
		}
		return out, "", nil
	}
	return in, "", nil
}

// merge merges src into dst as Helm merges values files: maps key by key,
// anything else replaced.
func merge(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
}

// renderChart renders the chart with v: its CRDs (crds/, applied first
// and not templated, as Helm installs them), then install hooks
// (pre-install), manifests and post-install hooks in Helm's install order.
// Other hooks (test, delete, upgrade, rollback) are not applied: a run
// installs once. Namespaced objects without a namespace get the stack's,
// as Helm puts them in the release's namespace.
func (s *SUT) renderChart(v Values) ([]*unstructured.Unstructured, error) {
	ch, err := s.loadChart()
	if err != nil {
		return nil, err
	}
	vals, field, err := s.chartValues(v)
	if err != nil {
		if field != "" {
			return nil, s.fail(field, "%v", err)
		}
		return nil, err
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: s.Name, Namespace: v.Namespace, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("chart %s: values: %w (check chart.values and chart.valuesFiles against the chart's values.schema.json)", ch.Name(), err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", ch.Name(), err)
	}
	// NOTES.txt is the text `helm install` prints, not a manifest.
	for f := range files {
		if strings.HasSuffix(f, "NOTES.txt") {
			delete(files, f)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", ch.Name(), err)
	}
	type doc struct{ name, body string }
	var docs []doc
	clusterKinds := clusterScopedKinds()
	for _, c := range ch.CRDObjects() {
		docs = append(docs, doc{c.Filename, string(c.File.Data)})
	}
	install := func(e release.HookEvent) {
		var hs []*release.Hook
		for _, h := range hooks {
			if slices.Contains(h.Events, e) {
				hs = append(hs, h)
			}
		}
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].Weight < hs[j].Weight })
		for _, h := range hs {
			docs = append(docs, doc{h.Path, h.Manifest})
		}
	}
	install(release.HookPreInstall)
	for _, m := range manifests {
		docs = append(docs, doc{m.Name, m.Content})
	}
	install(release.HookPostInstall)
	var out []*unstructured.Unstructured
	for _, d := range docs {
		objs, err := decodeObjects(d.name, strings.NewReader(d.body))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				if scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope"); scope == "Cluster" {
					kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
					clusterKinds = append(clusterKinds, kind)
				}
			}
		}
		out = append(out, objs...)
	}
	for _, o := range out {
		if o.GetNamespace() == "" && !slices.Contains(clusterKinds, o.GetKind()) {
			o.SetNamespace(v.Namespace)
		}
	}
	return out, nil
}

// clusterScopedKinds are the built-in kinds that have no namespace, which
// a chart's objects may be.
func clusterScopedKinds() []string {
	return []string{"Namespace", "Node", "PersistentVolume", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "PriorityClass", "StorageClass", "CSIDriver", "CSINode",
		"VolumeAttachment", "RuntimeClass", "IngressClass", "APIService", "PodSecurityPolicy", "FlowSchema", "PriorityLevelConfiguration",
		"CertificateSigningRequest", "DeviceClass", "ClusterTrustBundle"}
}
