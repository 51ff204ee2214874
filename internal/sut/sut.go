// Package sut reads an identity implementation under test declared as data
// (`idharness run --sut sut.yaml`): what it is, the images it brings, the
// manifests that deploy it, what "ready" means for it and the modes it
// claims, so that a vendor plugs in an agent or a webhook with no Go.
//
// A file looks like this (every relative path is relative to the file):
//
//	apiVersion: idharness.io/v1alpha1
//	kind: Implementation
//	name: aad-pod-identity
//	version: v1.8.17
//	vendor: Microsoft
//	url: https://github.com/Azure/aad-pod-identity
//	claims: [pod-identity]
//	intercepts: all
//	images:
//	  - name: nmi                             # built by the images phase
//	    build:
//	      module: github.com/Azure/aad-pod-identity
//	      version: v1.8.17
//	      package: ./cmd/nmi
//	      nodeTools: [iptables]               # copied from a cluster node
//	  - name: other
//	    archive: other.tar                    # a Docker or OCI image archive
//	  - name: third
//	    ref: vendor.example/agent:1.2.3       # an image in the local Docker engine
//	manifests: manifests/                     # *.yaml, Go templates
//	readiness:
//	  daemonSets: [aad-nmi]
//
// Manifests are Go templates (missingkey=error) with .Namespace (the
// stack's namespace), .Upstream (fakeimds's metadata endpoint, which the
// implementation's own token requests go to), .Images.NAME (each image's
// reference), .Labels (idharness's labels, an inline YAML map) and
// .OptInLabel / .OptInValue (the namespace label of pod identity specs).
//
// A workload identity webhook needs more of the run, which any
// declaration may use:
//
//	certificates:
//	  - name: webhook                         # .Certificates.webhook
//	    service: wiwebhook                    # a Service of the manifests
//
// makes, at each deploy, a CA and a serving certificate for the Service
// (its names SERVICE, SERVICE.NAMESPACE, SERVICE.NAMESPACE.svc and
// SERVICE.NAMESPACE.svc.cluster.local): .Certificates.NAME.Cert, .Key and
// .CA are PEM, already quoted as YAML strings (write them bare:
// `tls.crt: {{ .Certificates.webhook.Cert }}`), .CABundle is the CA
// in base64 (a webhook configuration's caBundle) and .Hash a short digest
// of the certificate, for a pod template annotation that restarts the
// pods when it changes. .TenantID is the run's tenant, .AuthorityHost the
// fake authority's URL (the stand-in for Entra ID: AZURE_AUTHORITY_HOST),
// .AuthorityCAConfigMap the ConfigMap in .Namespace whose ca.crt is the
// authority's CA, .OwnWebhookLabel the namespace label of namespaces whose
// pods a chaos step gives a webhook configuration of their own (leave
// them out of yours), and .ClusterSuffix ("-" and the namespace) ends the
// names of cluster-scoped objects, so that two stacks on a cluster do not
// share them.
//
// Instead of manifests, a local Helm chart (chart.go):
//
//	chart:
//	  path: chart/                            # a chart directory or .tgz
//	  valuesFiles: [values-idharness.yaml]    # templates with the variables above
//	  values: {image: "{{ .Images.agent }}"}  # likewise, merged last
//
// The chart also gets the variables as .Values.idharness (namespace,
// upstream, images.NAME, labels, optInLabel, optInValue, name,
// certificates.NAME.{cert,key,ca,caBundle,hash} with the PEM unquoted,
// tenantID, authorityHost, authorityCAConfigMap, ownWebhookLabel,
// clusterSuffix).
package sut

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/podidentity"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// APIVersion and Kind head every file, so that a later format can be told
// apart.
const (
	APIVersion = "idharness.io/v1alpha1"
	Kind       = "Implementation"
)

// Modes returns the identity modes an implementation may claim (spec
// labels).
func Modes() []string { return []string{"imds", "pod-identity", "workload-identity", "app-service"} }

// Intercepts values: which pods an agent answers for.
const (
	// InterceptsAll: every pod's metadata requests reach the agent, so
	// specs of modes it does not claim would judge the agent, not IMDS;
	// a run selects the claimed modes' specs unless told otherwise.
	InterceptsAll = "all"
	// InterceptsOptedIn: only pods in namespaces labelled
	// idharness.io/pod-identity=true; others pass through to IMDS.
	InterceptsOptedIn = "opted-in"
	// InterceptsNone: no agent in pods' path (a webhook, say).
	InterceptsNone = "none"
)

// SUT is one implementation under test.
type SUT struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Name, Version, Vendor and URL identify it in the report.
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	URL     string `json:"url,omitempty"`
	// Claims are the modes it implements: the verdict covers these.
	Claims []string `json:"claims"`
	// Intercepts says which pods its agent answers for (InterceptsAll,
	// InterceptsOptedIn, InterceptsNone).
	Intercepts string `json:"intercepts"`
	// Images are loaded into every node before the manifests are applied.
	Images []Image `json:"images,omitempty"`
	// Manifests is a directory of *.yaml templates, applied in name order;
	// Chart is a Helm chart instead.
	Manifests string `json:"manifests,omitempty"`
	Chart     *Chart `json:"chart,omitempty"`
	// Certificates are serving certificates the run makes for the
	// implementation's Services, at each deploy (.Certificates.NAME).
	Certificates []Certificate `json:"certificates,omitempty"`
	// Readiness is what the run waits for before the suites start.
	Readiness Readiness `json:"readiness"`

	file string
	data []byte
	// shipped is the name of the declaration idharness ships that this
	// is (LoadShipped), empty for a user's file.
	shipped string
}

// Certificate asks for a serving certificate for one of the
// implementation's Services, such as a webhook's: the API server reaches
// a webhook over TLS only, trusting the configuration's caBundle.
type Certificate struct {
	// Name is the certificate's key in .Certificates.
	Name string `json:"name"`
	// Service is the Service, in the stack's namespace, whose DNS names
	// the certificate covers; the manifests must hold it.
	Service string `json:"service"`
}

// Image is an image the implementation brings: exactly one of Archive
// (a Docker or OCI image archive file), Ref (an image in the local
// Docker engine, saved and loaded into the nodes), Build (built by the
// run) or Program (one of idharness's own programs).
type Image struct {
	Name    string `json:"name"`
	Archive string `json:"archive,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Build   *Build `json:"build,omitempty"`
	// Program names one of idharness's own program images (cmd/NAME:
	// nodeagent, for the reference agent): the run builds it from its
	// checkout, or takes it from its release, and loads or pushes it with
	// its other images. The run says which names it knows.
	Program string `json:"program,omitempty"`
}

// Build is an image the images phase builds from a main package of a
// published Go module, fetched through the Go module proxy (no registry,
// no base image): the program, statically linked, as the entrypoint at
// /usr/local/bin/NAME, a minimal root (CA certificates, /tmp, users root
// and nonroot), running as root unless the manifests say otherwise, and
// the node tools it runs. Its reference is
// idharness.local/IMPLEMENTATION-IMAGE:VERSION.
type Build struct {
	// Module and Version name the module ("github.com/Azure/aad-pod-identity",
	// "v1.8.17": a pinned version, as builds are cached by it).
	Module  string `json:"module"`
	Version string `json:"version"`
	// Package is the main package's directory in the module ("./cmd/nmi").
	Package string `json:"package"`
	// NodeTools are programs copied from a node of the cluster, with their
	// libraries, for a program that runs them (images.NodeTools: iptables).
	NodeTools []string `json:"nodeTools,omitempty"`
}

// program is the build as the images package takes it.
func (b *Build) program(cacheDir string) images.ModuleProgram {
	return images.ModuleProgram{Module: b.Module, Version: b.Version, Package: b.Package, CacheDir: cacheDir}
}

// Readiness lists the workloads, in the stack's namespace, that must be
// ready; the DaemonSets of an implementation claiming pod-identity are its
// agents, which the specs restart and look for.
type Readiness struct {
	DaemonSets  []string `json:"daemonSets,omitempty"`
	Deployments []string `json:"deployments,omitempty"`
}

// Load reads and checks the file at path; errors are *yamlfile.Error
// values, "file:line: field: problem".
func Load(path string) (*SUT, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the implementation file: %w (give --sut the path of a sut.yaml)", err)
	}
	s := &SUT{file: path, data: data}
	if err := yamlfile.Decode(path, data, s); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// fail is an error at field of the file.
func (s *SUT) fail(field, format string, a ...any) error {
	return &yamlfile.Error{File: s.file, Line: yamlfile.Line(s.data, field), Field: field, Err: fmt.Errorf(format, a...)}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (s *SUT) validate() error {
	if s.APIVersion != APIVersion {
		return s.fail("apiVersion", "is %q, want %q", s.APIVersion, APIVersion)
	}
	if s.Kind != Kind {
		return s.fail("kind", "is %q, want %q", s.Kind, Kind)
	}
	if !dnsLabel.MatchString(s.Name) || len(s.Name) > 63 {
		return s.fail("name", "%q is not a DNS label (lower-case letters, digits and '-', at most 63): the report and labels use it", s.Name)
	}
	if len(s.Claims) == 0 {
		return s.fail("claims", "is empty: list the modes the implementation implements, of %s", strings.Join(Modes(), ", "))
	}
	for i, m := range s.Claims {
		if !slices.Contains(Modes(), m) {
			return s.fail(fmt.Sprintf("claims[%d]", i), "%q is not a mode: use %s", m, strings.Join(Modes(), ", "))
		}
	}
	switch s.Intercepts {
	case InterceptsAll, InterceptsOptedIn, InterceptsNone:
	default:
		return s.fail("intercepts", "is %q: use %s (every pod's metadata requests reach the agent), %s (pods of namespaces labelled idharness.io/pod-identity=true) or %s", s.Intercepts, InterceptsAll, InterceptsOptedIn, InterceptsNone)
	}
	names := map[string]bool{}
	for i, im := range s.Images {
		f := fmt.Sprintf("images[%d]", i)
		if err := s.uniqueName(f+".name", im.Name, dnsLabel, "is not a DNS label: manifests refer to it as .Images.NAME", names); err != nil {
			return err
		}
		given := 0
		for _, set := range []bool{im.Archive != "", im.Ref != "", im.Build != nil, im.Program != ""} {
			if set {
				given++
			}
		}
		if given != 1 {
			return s.fail(f, "give exactly one of archive (an image archive file), ref (an image in the local Docker engine), build (a Go module's main package) or program (one of idharness's own programs)")
		}
		if im.Program != "" && !dnsLabel.MatchString(im.Program) {
			return s.fail(f+".program", "%q is not a program name (cmd/NAME of idharness, such as nodeagent)", im.Program)
		}
		if im.Archive != "" {
			if _, err := os.Stat(s.Path(im.Archive)); err != nil {
				return s.fail(f+".archive", "%v", err)
			}
		}
		if err := s.validateBuild(f+".build", im.Build); err != nil {
			return err
		}
	}
	if err := s.validateCertificates(); err != nil {
		return err
	}
	ph, err := s.placeholders()
	if err != nil {
		return s.fail("certificates", "%v", err)
	}
	var objs []*unstructured.Unstructured
	switch {
	case (s.Manifests == "") == (s.Chart == nil):
		return s.fail("manifests", "give exactly one of manifests (a directory of manifest templates) or chart (a Helm chart)")
	case s.Chart != nil:
		if objs, err = s.validateChart(ph); err != nil {
			return err
		}
	default:
		if m, _ := filepath.Glob(filepath.Join(s.Path(s.Manifests), "*.yaml")); len(m) == 0 {
			return s.fail("manifests", "%s has no *.yaml file", s.Path(s.Manifests))
		}
		// Rendered now, with placeholder images, so that a template error
		// stops the run before it builds a cluster.
		if objs, err = s.Render(ph, nil); err != nil {
			return s.fail("manifests", "%v", err)
		}
	}
	if err := s.certificatesServed(objs, ph.Namespace); err != nil {
		return err
	}
	if len(s.Readiness.DaemonSets)+len(s.Readiness.Deployments) == 0 {
		return s.fail("readiness", "names no workload: list the DaemonSets and Deployments that must be ready before the specs start")
	}
	if slices.Contains(s.Claims, "pod-identity") && len(s.Readiness.DaemonSets) == 0 {
		return s.fail("readiness.daemonSets", "is empty, but the implementation claims pod-identity: name its node agent's DaemonSet")
	}
	return nil
}

// validateBuild checks an image's build declaration (nil: none).
func (s *SUT) validateBuild(field string, b *Build) error {
	if b == nil {
		return nil
	}
	if err := b.program("").Validate(); err != nil {
		f, msg, _ := strings.Cut(err.Error(), ": ")
		return s.fail(field+"."+f, "%s", msg)
	}
	for i, t := range b.NodeTools {
		if _, ok := images.NodeTools()[t]; !ok {
			return s.fail(fmt.Sprintf("%s.nodeTools[%d]", field, i), "%q is not a node tool: use %s", t, strings.Join(images.NodeToolNames(), ", "))
		}
	}
	return nil
}

// validateChart loads the chart and renders it with the placeholder
// variables ph, so that a broken chart or values fail before the run
// builds a cluster; it returns the chart's objects.
func (s *SUT) validateChart(ph Values) ([]*unstructured.Unstructured, error) {
	if s.Chart.Path == "" {
		return nil, s.fail("chart.path", "is empty: name the chart's directory or .tgz")
	}
	if _, err := s.loadChart(); err != nil {
		return nil, s.fail("chart.path", "%v", err)
	}
	for i, f := range s.Chart.ValuesFiles {
		if _, err := os.Stat(s.Path(f)); err != nil {
			return nil, s.fail(fmt.Sprintf("chart.valuesFiles[%d]", i), "%v", err)
		}
	}
	objs, err := s.renderChart(ph)
	if err != nil {
		var ye *yamlfile.Error
		if errors.As(err, &ye) {
			return nil, err
		}
		return nil, s.fail("chart", "%v", err)
	}
	return objs, nil
}

// templateKey is what a certificate's name must be for a template to
// read it as .Certificates.NAME (a Go template field name).
var templateKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// uniqueName checks the name at field: it must match pattern (else the
// error says it "notMatched") and not be in seen, to which it is added.
func (s *SUT) uniqueName(field, name string, pattern *regexp.Regexp, notMatched string, seen map[string]bool) error {
	if !pattern.MatchString(name) {
		return s.fail(field, "%q %s", name, notMatched)
	}
	if seen[name] {
		return s.fail(field, "%q is given twice", name)
	}
	seen[name] = true
	return nil
}

// validateCertificates checks the certificates' names and Services.
func (s *SUT) validateCertificates() error {
	seen := map[string]bool{}
	for i, c := range s.Certificates {
		f := fmt.Sprintf("certificates[%d]", i)
		if err := s.uniqueName(f+".name", c.Name, templateKey, "is not a template key (a letter, then letters, digits and '_'): the manifests read it as .Certificates.NAME", seen); err != nil {
			return err
		}
		if !dnsLabel.MatchString(c.Service) || len(c.Service) > 63 {
			return s.fail(f+".service", "%q is not a Service name (a DNS label): name the Service, in the stack's namespace, that serves with the certificate", c.Service)
		}
	}
	return nil
}

// certificatesServed checks that each certificate's Service is among
// objs, the manifests rendered in namespace ns: a certificate for a
// Service nobody deploys would never be served, and a webhook
// configuration pointing at it would fail every pod it selects.
func (s *SUT) certificatesServed(objs []*unstructured.Unstructured, ns string) error {
	for i, c := range s.Certificates {
		found := false
		for _, o := range objs {
			found = found || (o.GetKind() == "Service" && o.GetName() == c.Service && (o.GetNamespace() == ns || o.GetNamespace() == ""))
		}
		if !found {
			return s.fail(fmt.Sprintf("certificates[%d].service", i), "the manifests hold no Service %q in the stack's namespace ({{ .Namespace }}): add it, or name the Service the certificate is for", c.Service)
		}
	}
	return nil
}

// placeholders are template variables for checking templates at load:
// each image's reference is a placeholder, the certificates are real.
func (s *SUT) placeholders() (Values, error) {
	refs := map[string]string{}
	for _, n := range s.imageNames() {
		refs[n] = "idharness.local/" + n + ":placeholder"
	}
	return s.values("idharness-system", "00000000-0000-0000-0000-000000000000", refs, "{}", time.Now())
}

// Path resolves p against the file's directory.
func (s *SUT) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.file), p)
}

// File is the path the SUT was loaded from.
func (s *SUT) File() string { return s.file }

// Values are the template variables of the manifests (the package
// doc says what each is).
type Values struct {
	Namespace  string
	Upstream   string
	Images     map[string]string
	Labels     string
	OptInLabel string
	OptInValue string
	// Certificates are the serving certificates of Certificates, by name.
	Certificates         map[string]ServingCert
	TenantID             string
	AuthorityHost        string
	AuthorityCAConfigMap string
	OwnWebhookLabel      string
	ClusterSuffix        string
}

// ServingCert is a serving certificate the run made, as templates read
// it: Cert, Key and CA are PEM quoted as a YAML (JSON) string, so that
// they can stand as a value anywhere; CABundle is the CA's PEM in base64.
type ServingCert struct {
	Cert, Key, CA, CABundle string
	// Hash is a short digest of the certificate: an annotation of the pod
	// template that restarts the pods when the certificate changes.
	Hash string

	certPEM, keyPEM, caPEM []byte
}

// values returns the template variables of a deploy into ns, with a new
// certificate for each of s.Certificates (made at now).
func (s *SUT) values(ns, tenantID string, images map[string]string, labels string, now time.Time) (Values, error) {
	v := Values{Namespace: ns, Upstream: Upstream, Images: images, Labels: labels,
		OptInLabel: podidentity.OptInLabel, OptInValue: podidentity.OptInValue,
		Certificates: map[string]ServingCert{}, TenantID: tenantID, AuthorityHost: stack.WIAuthorityHost(ns),
		AuthorityCAConfigMap: stack.WIAuthorityCAConfigMap, OwnWebhookLabel: stack.WIOwnWebhookLabel, ClusterSuffix: stack.ClusterSuffix(ns)}
	for _, c := range s.Certificates {
		sc, err := newServingCert(c.Service, ns, now)
		if err != nil {
			return Values{}, fmt.Errorf("certificate %s for Service %s: %w", c.Name, c.Service, err)
		}
		v.Certificates[c.Name] = sc
	}
	return v, nil
}

// newServingCert makes a CA and a certificate it signs for the names of
// Service svc in namespace ns.
func newServingCert(svc, ns string, now time.Time) (ServingCert, error) {
	names := []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
	ca, cert, key, err := fakeimds.NewServingCertPEM(names, now)
	if err != nil {
		return ServingCert{}, err
	}
	q := func(b []byte) string { j, _ := json.Marshal(string(b)); return string(j) }
	sum := sha256.Sum256(cert)
	return ServingCert{Cert: q(cert), Key: q(key), CA: q(ca), CABundle: base64.StdEncoding.EncodeToString(ca),
		Hash: hex.EncodeToString(sum[:8]), certPEM: cert, keyPEM: key, caPEM: ca}, nil
}

// Render renders the manifests (or the chart) with v and returns their
// objects, files in name order, each object labelled with labels (so that
// the stack knows them as its own).
func (s *SUT) Render(v Values, labels map[string]string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	if s.Chart != nil {
		objs, err := s.renderChart(v)
		if err != nil {
			return nil, err
		}
		out = objs
	} else {
		files, err := filepath.Glob(filepath.Join(s.Path(s.Manifests), "*.yaml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			body, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			text, err := expand(f, string(body), v)
			if err != nil {
				return nil, err
			}
			objs, err := decodeObjects(f, strings.NewReader(text))
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	for _, o := range out {
		l := o.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, labels)
		o.SetLabels(l)
	}
	return out, nil
}

// expand executes text, named name in errors, as a template with v;
// a variable v lacks is an error that lists those it has.
func expand(name, text string, v Values) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return "", fmt.Errorf("%w (variables: .Namespace, .Upstream, .Images.NAME for %s, .Labels, .OptInLabel, .OptInValue, .Certificates.NAME for %s, .TenantID, .AuthorityHost, .AuthorityCAConfigMap, .OwnWebhookLabel, .ClusterSuffix)", err, listOrNone(slices.Sorted(maps.Keys(v.Images))), listOrNone(slices.Sorted(maps.Keys(v.Certificates))))
	}
	return buf.String(), nil
}

// decodeObjects decodes the YAML documents of r (named name in errors)
// into objects, skipping empty ones.
func decodeObjects(name string, r io.Reader) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(m) == 0 {
			continue
		}
		o := &unstructured.Unstructured{Object: m}
		if o.GetKind() == "" || o.GetName() == "" {
			return nil, fmt.Errorf("%s: an object without kind or metadata.name", name)
		}
		out = append(out, o)
	}
}

// Programs returns the idharness programs the implementation's images
// name (Image.Program), by image name.
func (s *SUT) Programs() map[string]string {
	out := map[string]string{}
	for _, im := range s.Images {
		if im.Program != "" {
			out[im.Name] = im.Program
		}
	}
	return out
}

// listOrNone joins names, or says there are none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (s *SUT) imageNames() []string {
	var n []string
	for _, im := range s.Images {
		n = append(n, im.Name)
	}
	return n
}
