package sut

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/mod/module"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/images/imagestest"
	"github.com/idharness/idharness/pkg/api/podidentity"
	"github.com/idharness/idharness/pkg/yamlfile"
)

const goodSUT = `apiVersion: idharness.io/v1alpha1
kind: Implementation
name: vendor-agent
version: "1.0"
claims: [pod-identity]
intercepts: opted-in
images:
  - name: agent
    ref: vendor.example/agent:1.0
manifests: manifests
readiness:
  daemonSets: [vendor-agent]
`

// buildSUT declares its image as a build.
const buildSUT = `apiVersion: idharness.io/v1alpha1
kind: Implementation
name: vendor-agent
version: "1.0"
claims: [pod-identity]
intercepts: opted-in
images:
  - name: agent
    build:
      module: github.com/vendor/agent
      version: v1.2.3
      package: ./cmd/agent
      nodeTools: [iptables]
manifests: manifests
readiness:
  daemonSets: [vendor-agent]
`

const goodManifest = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: vendor-agent
  namespace: {{ .Namespace }}
  labels: {app: vendor-agent}
spec:
  template:
    spec:
      containers:
        - name: agent
          image: {{ .Images.agent }}
          args: [--upstream={{ .Upstream }}, --opt-in={{ .OptInLabel }}={{ .OptInValue }}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vendor-agent, namespace: {{ .Namespace }}}
`

// writeSUT writes a sut.yaml and a manifests directory with one file.
func writeSUT(t *testing.T, sut, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "manifests", "agent.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "sut.yaml")
	if err := os.WriteFile(p, []byte(sut), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		sut      string
		manifest string
		line     int
		want     string
	}{
		{name: "good", sut: goodSUT, manifest: goodManifest},
		{name: "unknown field", sut: goodSUT + "upsteam: x\n", manifest: goodManifest, line: 13, want: "upsteam"},
		{name: "wrong kind", sut: strings.Replace(goodSUT, "kind: Implementation", "kind: Profile", 1), manifest: goodManifest, line: 2, want: "want \"Implementation\""},
		{name: "unknown mode", sut: strings.Replace(goodSUT, "[pod-identity]", "[pod-identity, msi]", 1), manifest: goodManifest, line: 5, want: `"msi" is not a mode`},
		{name: "no claims", sut: strings.Replace(goodSUT, "claims: [pod-identity]", "claims: []", 1), manifest: goodManifest, line: 5, want: "is empty"},
		{name: "bad intercepts", sut: strings.Replace(goodSUT, "opted-in", "some", 1), manifest: goodManifest, line: 6, want: "use all"},
		{name: "image with archive and ref", sut: strings.Replace(goodSUT, "    ref: vendor.example/agent:1.0\n", "    ref: vendor.example/agent:1.0\n    archive: agent.tar\n", 1), manifest: goodManifest, line: 8, want: "exactly one of"},
		{name: "archive missing", sut: strings.Replace(goodSUT, "ref: vendor.example/agent:1.0", "archive: agent.tar", 1), manifest: goodManifest, line: 9, want: "agent.tar"},
		{name: "no manifests", sut: goodSUT, line: 10, want: "no *.yaml"},
		{name: "pod identity without an agent", sut: strings.Replace(goodSUT, "  daemonSets: [vendor-agent]\n", "  deployments: [x]\n", 1), manifest: goodManifest, line: 11, want: "name its node agent"},
		{name: "name not a DNS label", sut: strings.Replace(goodSUT, "name: vendor-agent", "name: Vendor_Agent", 1), manifest: goodManifest, line: 3, want: "DNS label"},
		// A template error is found at load, before a cluster is built.
		{name: "manifest variable unknown", sut: goodSUT, manifest: strings.Replace(goodManifest, ".Images.agent", ".Images.agnet", 1), line: 10, want: ".Images.NAME for agent"},
		{name: "manifest template syntax", sut: goodSUT, manifest: strings.Replace(goodManifest, "{{ .Namespace }}", "{{ .Namespace }", 1), line: 10, want: "agent.yaml:5"},
		{name: "build", sut: buildSUT, manifest: goodManifest},
		{name: "build and ref", sut: strings.Replace(buildSUT, "    build:\n", "    ref: x:1\n    build:\n", 1), manifest: goodManifest, line: 8, want: "exactly one of archive"},
		{name: "build module", sut: strings.Replace(buildSUT, "github.com/vendor/agent", "github.com/vendor agent", 1), manifest: goodManifest, line: 10, want: "images[0].build.module: "},
		{name: "build version latest", sut: strings.Replace(buildSUT, "v1.2.3", "latest", 1), manifest: goodManifest, line: 11, want: "images[0].build.version: \"latest\" is not a version: pin"},
		{name: "build version of another major", sut: strings.Replace(buildSUT, "v1.2.3", "v2.0.0", 1), manifest: goodManifest, line: 11, want: "images[0].build.version: "},
		{name: "build package", sut: strings.Replace(buildSUT, "./cmd/agent", "cmd/agent", 1), manifest: goodManifest, line: 12, want: "images[0].build.package: \"cmd/agent\" is not a package of the module"},
		{name: "build without package", sut: strings.Replace(buildSUT, "      package: ./cmd/agent\n", "", 1), manifest: goodManifest, line: 9, want: "images[0].build.package: "},
		{name: "build node tool", sut: strings.Replace(buildSUT, "[iptables]", "[iptables, nft]", 1), manifest: goodManifest, line: 13, want: `images[0].build.nodeTools[1]: "nft" is not a node tool: use iptables`},
		{name: "program", sut: strings.Replace(goodSUT, "ref: vendor.example/agent:1.0", "program: nodeagent", 1), manifest: goodManifest},
		{name: "program and ref", sut: strings.Replace(goodSUT, "    ref: vendor.example/agent:1.0\n", "    ref: vendor.example/agent:1.0\n    program: nodeagent\n", 1), manifest: goodManifest, line: 8, want: "or program (one of idharness's own programs)"},
		{name: "program name", sut: strings.Replace(goodSUT, "ref: vendor.example/agent:1.0", "program: ./cmd/nodeagent", 1), manifest: goodManifest, line: 9, want: `images[0].program: "./cmd/nodeagent" is not a program name`},
		{name: "build unknown field", sut: strings.Replace(buildSUT, "      package:", "      pkg: x\n      package:", 1), manifest: goodManifest, line: 12, want: "pkg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeSUT(t, tt.sut, tt.manifest))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %v, want a located error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || ye.Line != tt.line {
				t.Errorf("error %q at line %d, want %q at line %d", err, ye.Line, tt.want, tt.line)
			}
		})
	}
}

func TestRender(t *testing.T) {
	s, err := Load(writeSUT(t, goodSUT, goodManifest))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Component([]Loaded{{Name: "agent", Ref: "vendor.example/agent:1.0", ID: "sha256:1"}})
	objs, err := c.Objects(fixtures.Params{Namespace: "idh"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	ds := objs[0]
	if ds.GetNamespace() != "idh" || ds.GetLabels()["app"] != "vendor-agent" || ds.GetLabels()[Label] != "vendor-agent" || ds.GetLabels()["app.kubernetes.io/part-of"] != "idharness" {
		t.Errorf("namespace %q labels %v: want the manifest's labels, idharness's and %s", ds.GetNamespace(), ds.GetLabels(), Label)
	}
	b, _ := json.Marshal(ds.Object)
	for _, want := range []string{`"image":"vendor.example/agent:1.0"`, `--upstream=http://169.254.169.254`, `--opt-in=idharness.io/pod-identity=true`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("rendered DaemonSet lacks %s: %s", want, b)
		}
	}
	if got := s.Agents(); len(got) != 1 || got[0] != "vendor-agent" {
		t.Errorf("agents %v", got)
	}
	if s.LabelFilter() != "" {
		t.Errorf("an opted-in agent narrows the specs: %q", s.LabelFilter())
	}
}

// TestShipped loads and renders the implementations idharness ships as
// declarations, from the copies embedded in the binary.
func TestShipped(t *testing.T) {
	cache := t.TempDir()
	tests := []struct {
		name   string
		images []Loaded
		kinds  map[string]int
		filter string
		check  func(t *testing.T, s *SUT, objs []*unstructured.Unstructured)
	}{
		{name: "aad-pod-identity", images: []Loaded{{Name: "nmi", Ref: "idharness.local/aad-pod-identity-nmi:v1.8.17"}},
			kinds: map[string]int{"CustomResourceDefinition": 3, "DaemonSet": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "ServiceAccount": 1}, filter: "pod-identity",
			check: func(t *testing.T, s *SUT, _ []*unstructured.Unstructured) {
				// NMI's image is built by the run, with the nodes' iptables.
				if b := s.Images[0].Build; b == nil || s.BuildRef(s.Images[0]) != "idharness.local/aad-pod-identity-nmi:v1.8.17" || len(b.NodeTools) != 1 {
					t.Errorf("NMI's image %+v: want a build with nodeTools [iptables], referenced as idharness.local/aad-pod-identity-nmi:v1.8.17", s.Images[0])
				}
			}},
		{name: "reference", images: []Loaded{{Name: "nodeagent", Ref: "idharness.local/nodeagent:dev"}},
			kinds: map[string]int{"CustomResourceDefinition": 3, "DaemonSet": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "ServiceAccount": 1},
			check: func(t *testing.T, s *SUT, _ []*unstructured.Unstructured) {
				// The agent is idharness's own program: the run builds it.
				if got := s.Programs(); len(got) != 1 || got["nodeagent"] != "nodeagent" {
					t.Errorf("programs %v, want nodeagent", got)
				}
				if l, err := s.PrepareImages(context.Background(), ImageOptions{Dir: t.TempDir()}); err != nil || len(l) != 0 {
					t.Errorf("PrepareImages: %v, %v; want nothing to prepare (the run builds programs)", l, err)
				}
				if got := s.Agents(); len(got) != 1 || got[0] != "nodeagent" {
					t.Errorf("agents %v, want [nodeagent]", got)
				}
			}},
		{name: ReferenceWebhook, images: []Loaded{{Name: "wiwebhook", Ref: "idharness.local/wiwebhook:dev"}},
			kinds: map[string]int{"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Secret": 1, "Deployment": 1, "Service": 1, "MutatingWebhookConfiguration": 1},
			check: checkReferenceWebhook},
	}
	crds := map[string][]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadShipped(tt.name, cache)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := s.Component(tt.images).Objects(fixtures.Params{Namespace: "idharness-system", Identities: fixtures.DefaultIdentities("")})
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if o.GetKind() == "CustomResourceDefinition" {
					crds[tt.name] = append(crds[tt.name], o.GetName())
				}
				if o.GetLabels()[Label] != tt.name || o.GetLabels()["app.kubernetes.io/part-of"] != "idharness" {
					t.Errorf("%s %s: labels %v, want idharness's and %s=%s", o.GetKind(), o.GetName(), o.GetLabels(), Label, tt.name)
				}
			}
			if !maps.Equal(kinds, tt.kinds) {
				t.Errorf("objects by kind %v, want %v", kinds, tt.kinds)
			}
			if s.LabelFilter() != tt.filter {
				t.Errorf("label filter %q, want %q", s.LabelFilter(), tt.filter)
			}
			tt.check(t, s, objs)
		})
	}
	// Both agents read the contract's CRDs (pkg/api/podidentity): each
	// ships the same three.
	want := []string{podidentity.AzureIdentityGVR.GroupResource().String(), podidentity.AzureIdentityBindingGVR.GroupResource().String(), podidentity.AzurePodIdentityExceptionGVR.GroupResource().String()}
	for name, got := range crds {
		if !slices.Equal(got, want) {
			t.Errorf("%s ships CRDs %v, want %v (pkg/api/podidentity)", name, got, want)
		}
	}
}

// TestLoadShipped: the files are written once per content, under the
// cache, and an unknown name lists the shipped ones.
func TestLoadShipped(t *testing.T) {
	cache := t.TempDir()
	a, err := LoadShipped("reference", cache)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadShipped("reference", cache)
	if err != nil || a.File() != b.File() || !strings.HasPrefix(a.File(), filepath.Join(cache, "sut", "reference-")) {
		t.Fatalf("files %s and %v (%v): want the same copy under %s/sut", a.File(), b, err, cache)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "sut")); len(entries) != 1 {
		t.Errorf("%d entries under the cache, want the one copy", len(entries))
	}
	if _, err := LoadShipped("nope", cache); err == nil || !strings.Contains(err.Error(), "use one of aad-pod-identity, reference") {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := LoadShipped("reference", "/proc/no-such-cache"); err == nil || !strings.Contains(err.Error(), "--cache-dir") {
		t.Errorf("unwritable cache: %v", err)
	}
}

func TestArchiveImage(t *testing.T) {
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	dir := t.TempDir()
	docker := filepath.Join(dir, "docker.tar")
	tag, _ := name.NewTag("vendor.example/agent:1.0")
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	// An OCI image layout archive, as buildah or `docker save` of
	// Docker 25 write it (index.json and blobs/).
	man, _ := img.RawManifest()
	md, _ := img.Digest()
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md.String() + `","size":1,"annotations":{"io.containerd.image.name":"vendor.example/agent:oci"}}]}`
	oci := writeTar(t, filepath.Join(dir, "oci.tar"), map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": []byte(index), "blobs/sha256/" + md.Hex: man})
	noName := writeTar(t, filepath.Join(dir, "noname.tar"), map[string][]byte{"index.json": []byte(strings.Replace(index, "io.containerd.image.name", "other", 1))})
	tests := []struct {
		path, ref, want string
	}{
		{docker, "vendor.example/agent:1.0", ""},
		{oci, "vendor.example/agent:oci", ""},
		{noName, "", "no full image name"},
		{writeTar(t, filepath.Join(dir, "empty.tar"), map[string][]byte{"x": []byte("y")}), "", "neither manifest.json"},
	}
	for _, tt := range tests {
		ref, id, err := archiveImage(tt.path)
		if tt.want != "" {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want %q", tt.path, err, tt.want)
			}
			continue
		}
		if err != nil || ref != tt.ref || id != cfg.String() {
			t.Errorf("%s: %s %s %v, want %s %s", tt.path, ref, id, err, tt.ref, cfg)
		}
	}
	s := &SUT{file: filepath.Join(dir, "sut.yaml"), Images: []Image{{Name: "agent", Archive: "docker.tar"}}}
	got, err := s.PrepareImages(context.Background(), ImageOptions{Dir: dir})
	if err != nil || len(got) != 1 || got[0].Ref != "vendor.example/agent:1.0" || got[0].ID != cfg.String() || got[0].Archive != docker {
		t.Errorf("PrepareImages: %+v, %v", got, err)
	}
}

func writeTar(t *testing.T, path string, files map[string][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrepareBuild builds an image declared as a build, from a module
// proxy of the test's own, with iptables copied from this machine standing
// in for a node.
func TestPrepareBuild(t *testing.T) {
	mod := module.Version{Path: "example.test/agent", Version: "v1.2.3"}
	imagestest.GoProxy(t, mod, map[string]string{
		"go.mod":            "module example.test/agent\n\ngo 1.22\n",
		"cmd/agent/main.go": "package main\n\nfunc main() {}\n",
	})
	decl := strings.Replace(buildSUT, "github.com/vendor/agent", mod.Path, 1)
	cache := t.TempDir()
	tests := []struct {
		name  string
		sut   string
		node  kindexec.Cmder
		want  string
		files []string
	}{
		{name: "no node tools", sut: strings.Replace(decl, "      nodeTools: [iptables]\n", "", 1), files: []string{"usr/local/bin/agent", "etc/passwd"}},
		{name: "node tools without a node", sut: decl, want: "this run has none (--kubeconfig)"},
		{name: "node tools", sut: decl, node: kindexec.DefaultCmder, files: []string{"usr/local/bin/agent", "usr/sbin/xtables-nft-multi", "usr/sbin/iptables"}},
		{name: "unknown version", sut: strings.Replace(strings.Replace(decl, "      nodeTools: [iptables]\n", "", 1), "v1.2.3", "v1.2.4", 1), want: "image agent: build example.test/agent@v1.2.4 ./cmd/agent: go mod download"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.node != nil {
				if _, err := exec.LookPath("xtables-nft-multi"); err != nil {
					t.Skip("this machine has no xtables-nft-multi to copy")
				}
			}
			s, err := Load(writeSUT(t, tt.sut, goodManifest))
			if err != nil {
				t.Fatal(err)
			}
			o := ImageOptions{Dir: t.TempDir(), CacheDir: cache, Node: tt.node}
			got, err := s.PrepareImages(context.Background(), o)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := got[0]
			if l.Ref != "idharness.local/vendor-agent-agent:v1.2.3" {
				t.Errorf("ref %s, want idharness.local/IMPLEMENTATION-IMAGE:VERSION", l.Ref)
			}
			tag, _ := name.NewTag(l.Ref)
			img, err := tarball.ImageFromPath(l.Archive, &tag)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := img.ConfigFile()
			id, _ := img.ConfigName()
			if l.ID != id.String() || strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/agent" || cfg.Config.User != "" {
				t.Errorf("ID %s (config %s), entrypoint %v, user %q: want the program as the entrypoint, run as root", l.ID, id, cfg.Config.Entrypoint, cfg.Config.User)
			}
			have := map[string]bool{}
			layers, _ := img.Layers()
			for _, layer := range layers {
				rc, _ := layer.Uncompressed()
				tr := tar.NewReader(rc)
				for h, err := tr.Next(); err == nil; h, err = tr.Next() {
					have[h.Name] = true
				}
				rc.Close()
			}
			for _, f := range tt.files {
				if !have[f] {
					t.Errorf("the image lacks %s", f)
				}
			}
			// Again: the program comes from the cache and the image is
			// the same, so the report's ID does not change.
			again, err := s.PrepareImages(context.Background(), ImageOptions{Dir: t.TempDir(), CacheDir: cache, Node: tt.node})
			if err != nil || again[0].ID != l.ID {
				t.Errorf("second build: ID %v (%v), want %s", again, err, l.ID)
			}
		})
	}
}
