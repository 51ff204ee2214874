package sut

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// hookSUT is a webhook declared with a certificate for its Service.
const hookSUT = `apiVersion: idharness.io/v1alpha1
kind: Implementation
name: acme-wi
claims: [workload-identity]
intercepts: none
certificates:
  - name: serving
    service: acme
manifests: manifests
readiness:
  deployments: [acme]
`

// hookManifest uses every variable a webhook needs.
const hookManifest = `apiVersion: v1
kind: Secret
metadata: {name: acme-tls, namespace: {{ .Namespace }}}
stringData: {tls.crt: {{ .Certificates.serving.Cert }}, tls.key: {{ .Certificates.serving.Key }}, ca.crt: {{ .Certificates.serving.CA }}}
---
apiVersion: v1
kind: Service
metadata: {name: acme, namespace: {{ .Namespace }}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: acme, namespace: {{ .Namespace }}}
spec:
  template:
    metadata: {annotations: {cert: "{{ .Certificates.serving.Hash }}"}}
    spec:
      containers:
        - name: acme
          image: acme.example/wi:1
          args: [--tenant={{ .TenantID }}, --authority={{ .AuthorityHost }}, --ca-configmap={{ .AuthorityCAConfigMap }}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: acme{{ .ClusterSuffix }}}
webhooks:
  - name: wi.acme.example
    clientConfig:
      service: {name: acme, namespace: {{ .Namespace }}}
      caBundle: {{ .Certificates.serving.CABundle }}
    namespaceSelector:
      matchExpressions: [{key: {{ .OwnWebhookLabel }}, operator: DoesNotExist}]
`

// servedCert checks that the Secret named secret among objs holds, in
// tls.crt, a certificate for Service svc of namespace ns that the
// caBundle of the first webhook of the MutatingWebhookConfiguration
// among objs verifies, and returns it.
func servedCert(t *testing.T, objs []*unstructured.Unstructured, secret, svc, ns string) *x509.Certificate {
	t.Helper()
	var certPEM, bundle string
	for _, o := range objs {
		switch {
		case o.GetKind() == "Secret" && o.GetName() == secret:
			certPEM, _, _ = unstructured.NestedString(o.Object, "stringData", "tls.crt")
			if key, _, _ := unstructured.NestedString(o.Object, "stringData", "tls.key"); !strings.Contains(key, "PRIVATE KEY") {
				t.Errorf("Secret %s: tls.key %q is no PEM private key", secret, key)
			}
		case o.GetKind() == "MutatingWebhookConfiguration":
			wh, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			bundle, _, _ = unstructured.NestedString(wh[0].(map[string]any), "clientConfig", "caBundle")
		}
	}
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil {
		t.Fatalf("Secret %s: tls.crt %q is no PEM", secret, certPEM)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"} {
		if !slices.Contains(cert.DNSNames, want) {
			t.Errorf("certificate names %v lack %s", cert.DNSNames, want)
		}
	}
	caPEM, err := base64.StdEncoding.DecodeString(bundle)
	if err != nil {
		t.Fatalf("caBundle %q is not base64: %v", bundle, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("caBundle holds no PEM certificate: %q", caPEM)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: svc + "." + ns + ".svc"}); err != nil {
		t.Errorf("the caBundle does not verify the served certificate for %s.%s.svc (the name the API server calls): %v", svc, ns, err)
	}
	return cert
}

// TestCertificateValues renders a declaration with a certificate and the
// webhook variables: the certificate covers the Service's names, the
// caBundle verifies it, each deploy makes a new one, and the other
// variables are the run's.
func TestCertificateValues(t *testing.T) {
	s, err := Load(writeSUT(t, hookSUT, hookManifest))
	if err != nil {
		t.Fatal(err)
	}
	p := fixtures.Params{Namespace: "idh", Identities: fixtures.DefaultIdentities("")}
	render := func() []*unstructured.Unstructured {
		objs, err := s.Component(nil).Objects(p)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	objs := render()
	first := servedCert(t, objs, "acme-tls", "acme", "idh")
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			want := []string{"--tenant=" + p.Identities.TenantID, "--authority=" + stack.WIAuthorityHost("idh"), "--ca-configmap=" + stack.WIAuthorityCAConfigMap}
			if !slices.Equal(args, want) {
				t.Errorf("args %v, want %v", args, want)
			}
			if h, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", "cert"); len(h) != 16 {
				t.Errorf("hash annotation %q, want 16 hex digits", h)
			}
		case "MutatingWebhookConfiguration":
			if o.GetName() != "acme"+stack.ClusterSuffix("idh") {
				t.Errorf("configuration %s: .ClusterSuffix is not the stack's", o.GetName())
			}
			wh, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			exprs, _, _ := unstructured.NestedSlice(wh[0].(map[string]any), "namespaceSelector", "matchExpressions")
			if exprs[0].(map[string]any)["key"] != stack.WIOwnWebhookLabel {
				t.Errorf("namespaceSelector %v: .OwnWebhookLabel is not %s", exprs, stack.WIOwnWebhookLabel)
			}
		case "Secret":
			ca, _, _ := unstructured.NestedString(o.Object, "stringData", "ca.crt")
			if !strings.HasPrefix(ca, "-----BEGIN CERTIFICATE-----") {
				t.Errorf(".CA = %q, want the CA's PEM", ca)
			}
		}
	}
	// A new deploy, a new certificate (and a new hash: the pods restart).
	if second := servedCert(t, render(), "acme-tls", "acme", "idh"); slices.Equal(second.Raw, first.Raw) {
		t.Error("two deploys served the same certificate")
	}
}

// TestCertificateErrors: a bad certificates entry is an error at its
// line, before any cluster is built.
func TestCertificateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, sut, manifest string
		line                int
		want                string
	}{
		{"name not a template key", strings.Replace(hookSUT, "name: serving", "name: my-cert", 1), hookManifest, 7, `certificates[0].name: "my-cert" is not a template key`},
		{"name given twice", strings.Replace(hookSUT, "    service: acme\n", "    service: acme\n  - name: serving\n    service: acme\n", 1), hookManifest, 9, `certificates[1].name: "serving" is given twice`},
		{"service missing", strings.Replace(hookSUT, "    service: acme\n", "", 1), hookManifest, 7, `certificates[0].service: "" is not a Service name`},
		{"service not a DNS label", strings.Replace(hookSUT, "service: acme", "service: Acme_Hook", 1), hookManifest, 8, `certificates[0].service: "Acme_Hook" is not a Service name`},
		{"service not in the manifests", strings.Replace(hookSUT, "service: acme", "service: acme-hook", 1), hookManifest, 8, `certificates[0].service: the manifests hold no Service "acme-hook"`},
		{"unknown field", strings.Replace(hookSUT, "service: acme", "service: acme\n    hosts: [x]", 1), hookManifest, 9, "hosts"},
		{"manifest names an unknown certificate", hookSUT, strings.Replace(hookManifest, ".Certificates.serving.Cert", ".Certificates.webhook.Cert", 1), 9, ".Certificates.NAME for serving"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeSUT(t, tc.sut, tc.manifest))
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %v, want a located error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || ye.Line != tc.line {
				t.Errorf("error %q at line %d, want %q at line %d", err, ye.Line, tc.want, tc.line)
			}
		})
	}
}

// checkReferenceWebhook holds the shipped reference webhook's objects to
// the names and behaviour the suites rely on (internal/stack:
// WIWebhookName, WIWebhookConfigName, WIOwnWebhookLabel; ScaleWebhook
// and SetFailurePolicy patch them).
func checkReferenceWebhook(t *testing.T, s *SUT, objs []*unstructured.Unstructured) {
	ns := "idharness-system"
	if got := s.Programs(); len(got) != 1 || got["wiwebhook"] != "wiwebhook" {
		t.Errorf("programs %v, want wiwebhook", got)
	}
	if len(s.Agents()) != 0 || s.Shipped() != ReferenceWebhook || WIWebhook([]*SUT{s}) != stack.WIWebhookReference {
		t.Errorf("agents %v, shipped %q, webhook %q: want no agent, the reference webhook", s.Agents(), s.Shipped(), WIWebhook([]*SUT{s}))
	}
	servedCert(t, objs, "wiwebhook-tls", stack.WIWebhookName, ns)
	for _, o := range objs {
		switch o.GetKind() {
		case "MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding":
			if o.GetName() != stack.WIWebhookConfigName(ns) {
				t.Errorf("%s %s, want %s (per stack)", o.GetKind(), o.GetName(), stack.WIWebhookConfigName(ns))
			}
		case "Deployment", "Service":
			if o.GetName() != stack.WIWebhookName {
				t.Errorf("%s %s, want %s", o.GetKind(), o.GetName(), stack.WIWebhookName)
			}
		}
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			wh, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			w := wh[0].(map[string]any)
			if w["failurePolicy"] != "Fail" || w["sideEffects"] != "None" || w["reinvocationPolicy"] != "IfNeeded" {
				t.Errorf("webhook = %v", w)
			}
			exprs, _, _ := unstructured.NestedSlice(w, "namespaceSelector", "matchExpressions")
			found := false
			for _, e := range exprs {
				m := e.(map[string]any)
				found = found || (m["key"] == stack.WIOwnWebhookLabel && m["operator"] == "DoesNotExist")
			}
			if !found {
				t.Errorf("namespaceSelector %v does not skip namespaces labelled %s: a wiPod step's slow webhook would meet the stack's too", exprs, stack.WIOwnWebhookLabel)
			}
		case "Deployment":
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args := strings.Join(func() []string { a, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args"); return a }(), " ")
			for _, want := range []string{"--test-paths", "--authority-host=" + stack.WIAuthorityHost(ns), "--tenant-id=" + fixtures.DefaultIdentities("").TenantID, "--proxy-image=idharness.local/wiwebhook:dev"} {
				if !strings.Contains(args, want) {
					t.Errorf("the webhook's args %q lack %s", args, want)
				}
			}
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			if cm, _, _ := unstructured.NestedString(vols[1].(map[string]any), "configMap", "name"); cm != stack.WIAuthorityCAConfigMap {
				t.Errorf("the webhook mounts ConfigMap %q, want the authority's CA %s", cm, stack.WIAuthorityCAConfigMap)
			}
		}
	}
}
