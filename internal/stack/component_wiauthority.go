package stack

// The workload identity authority component: fakeimds with only its
// authority face, over HTTPS, that trusts the cluster's service account
// issuer, the harness's stand-in for Entra ID. The workload identity
// webhook under test (idharness's reference webhook, cmd/wiwebhook,
// declared as data in fixtures/sut/reference-webhook, or a vendor's)
// points pods at it with AZURE_AUTHORITY_HOST; they must trust its CA
// (the wi-authority-ca ConfigMap), which suites copy into their
// namespaces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// Names of workload identity's objects: the authority's, and those of
// the reference webhook's declaration that suites reach it by.
const (
	// WIAuthorityComponent is the fake authority's component.
	WIAuthorityComponent = "wi-authority"
	// WIWebhookName is the reference webhook's Deployment and Service
	// (fixtures/sut/reference-webhook), and the program image the
	// authority's init container runs (wiwebhook issuer-keys).
	WIWebhookName = "wiwebhook"
	// WIAuthorityName is the authority's Deployment and Service.
	WIAuthorityName = "wi-authority"
	// WIAuthorityCAConfigMap holds the authority's CA certificate (ca.crt).
	WIAuthorityCAConfigMap = "wi-authority-ca"
	// WIOwnWebhookLabel on a namespace takes it out of the stack's
	// webhook configuration: a chaos step gives it one of its own, with
	// another timeout or failure policy, without touching other specs'
	// namespaces.
	WIOwnWebhookLabel = "idharness.io/wi-webhook"
)

// Values of Stack.WIWebhook besides an implementation's name.
const (
	// WIWebhookReference: the workload identity webhook under test is
	// the reference one (cmd/wiwebhook, the shipped declaration
	// reference-webhook).
	WIWebhookReference = "reference"
	// WIWebhookNone: the stack deploys no workload identity webhook.
	WIWebhookNone = "none"
	// ClaimWorkloadIdentity is the mode an implementation claims for its
	// webhook (sut.Modes, Profile.Modes).
	ClaimWorkloadIdentity = "workload-identity"
)

//go:embed wiauthority.yaml
var wiManifest string

func init() {
	Register(Component{
		Name: WIAuthorityComponent,
		// The init container that reads the cluster's issuer keys is a
		// subcommand of the webhook's program.
		Programs: map[string]string{WIWebhookName: "./cmd/wiwebhook"},
		Objects:  wiObjects,
		Wait:     waitDeployments(WIAuthorityName),
		Default:  true,
	})
}

// waitDeployments waits for the named Deployments, saying where to look
// when one does not come up.
func waitDeployments(names ...string) func(ctx context.Context, dc *deploy.Client, ns string) error {
	return func(ctx context.Context, dc *deploy.Client, ns string) error {
		for _, d := range names {
			if err := dc.WaitDeployment(ctx, ns, d); err != nil {
				return fmt.Errorf("%w (look at: kubectl -n %s describe deploy/%s; kubectl -n %s logs deploy/%s --all-containers)", err, ns, d, ns, d)
			}
		}
		return nil
	}
}

// WIAuthorityHost is AZURE_AUTHORITY_HOST for pods: the authority's
// Service, whose certificate covers this name.
func WIAuthorityHost(ns string) string { return "https://" + WIAuthorityName + "." + ns + ".svc/" }

// ClusterSuffix ends the names of cluster-scoped objects of the stack
// in ns ("-" and ns), so that two stacks on one cluster do not share
// them (sut.Values.ClusterSuffix).
func ClusterSuffix(ns string) string { return "-" + ns }

// WIWebhookConfigName is the reference webhook's
// MutatingWebhookConfiguration (and RBAC objects) of the stack in ns, as
// its declaration names it.
func WIWebhookConfigName(ns string) string { return "idharness-wiwebhook" + ClusterSuffix(ns) }

// wiObjects renders the authority for p. Its TLS certificate is made
// here, at deploy time, with a CA of its own, which goes into a
// ConfigMap for clients; the authority keeps the CA's key: its
// tls-certificate fault serves an expired certificate from the CA
// clients trust.
func wiObjects(p fixtures.Params) ([]*unstructured.Unstructured, error) {
	image := p.Images.Extra[WIWebhookName]
	if image == "" || p.Images.FakeIMDS == "" {
		return nil, fmt.Errorf("the workload identity authority needs the %s and fakeimds images (build them: idharness run builds ./cmd/%s)", WIWebhookName, WIWebhookName)
	}
	now := time.Now()
	names := []string{WIAuthorityName, WIAuthorityName + "." + p.Namespace, WIAuthorityName + "." + p.Namespace + ".svc", WIAuthorityName + "." + p.Namespace + ".svc.cluster.local"}
	auCA, auCAKey, auCert, auKey, err := fakeimds.NewServingCertWithCAPEM(names, now)
	if err != nil {
		return nil, fmt.Errorf("authority certificate: %w", err)
	}
	cfg, err := yaml.Marshal(wiAuthorityConfig(p))
	if err != nil {
		return nil, fmt.Errorf("authority configuration: %w", err)
	}
	labels := make([]string, 0, len(fixtures.Labels))
	for k, v := range fixtures.Labels {
		labels = append(labels, k+": "+v)
	}
	sort.Strings(labels)
	h := sha256.New()
	for _, b := range [][]byte{auCert, auCAKey, cfg} {
		h.Write(b)
	}
	q := func(b []byte) string { s, _ := json.Marshal(string(b)); return string(s) }
	data := map[string]string{
		"Namespace": p.Namespace, "Labels": "{" + strings.Join(labels, ", ") + "}",
		"IssuerKeysImage": image, "FakeIMDSImage": p.Images.FakeIMDS,
		"AuthorityCert": q(auCert), "AuthorityKey": q(auKey), "AuthorityCA": q(auCA), "AuthorityCAKey": q(auCAKey), "AuthorityConfig": q(cfg),
		"Hash": hex.EncodeToString(h.Sum(nil))[:16],
	}
	t, err := template.New("wiauthority").Option("missingkey=error").Parse(wiManifest)
	if err != nil {
		return nil, fmt.Errorf("parse wiauthority.yaml: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render wiauthority.yaml: %w", err)
	}
	// Strict decoding catches a key given twice in the template.
	var list map[string]any
	if err := yaml.UnmarshalStrict(buf.Bytes(), &list); err != nil {
		return nil, fmt.Errorf("render wiauthority.yaml: %w", err)
	}
	items, _ := list["items"].([]any)
	out := make([]*unstructured.Unstructured, 0, len(items))
	for _, o := range items {
		m, ok := o.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("render wiauthority.yaml: an item is not an object")
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

// wiAuthorityConfig is the authority's fakeimds configuration, but for
// the trusted issuer, which the init container adds once it has read the
// cluster's: the run's user-assigned identities (without federated
// credentials: specs add those for their own namespaces through the
// control API), the shared signing key so that the protected resource
// accepts its tokens, and no face but the authority.
func wiAuthorityConfig(p fixtures.Params) config.Config {
	c := config.Default()
	off := false
	c.TenantID = p.Identities.TenantID
	c.Host.Name = WIAuthorityName
	c.Host.SubscriptionID = p.Identities.SubscriptionID
	c.Host.ResourceGroup = p.Identities.ResourceGroup
	c.SystemAssigned = nil
	for _, u := range p.Identities.UserAssigned {
		c.UserAssigned = append(c.UserAssigned, u.Identity)
	}
	if p.Identities.TokenLifetime.Duration > 0 {
		c.Tokens.Lifetime = p.Identities.TokenLifetime
	}
	c.Tokens.SigningKeyFile = "/etc/fakeimds/key/signing.pem"
	c.Listen.IMDS = ":8080"
	c.Listen.Control = fmt.Sprintf(":%d", fixtures.ControlPort)
	c.Listen.ControlTokenFile = fixtures.ControlTokenPath
	c.Listen.AuthorityTLS = ":8443"
	c.Faces.IMDS.Enabled = &off
	c.Faces.Instance.Enabled = &off
	c.Faces.AppService.Enabled = &off
	c.Faces.Authority.TLSCertFile = "/etc/fakeimds/tls/tls.crt"
	c.Faces.Authority.TLSKeyFile = "/etc/fakeimds/tls/tls.key"
	c.Faces.Authority.TLSCAFile = "/etc/fakeimds/tls/ca.crt"
	c.Faces.Authority.TLSCAKeyFile = "/etc/fakeimds/tls/ca.key"
	c.Faces.Authority.ClockSkew = duration.Of(WIAuthorityLeeway)
	c.Chaos.Seed = p.Seed
	c.Chaos.Throttle.Enabled = &off
	c.Log.Format = "json"
	return c
}

// WIAuthorityLeeway is the clock skew the stack's authority allows on
// assertions (the configuration's clockSkew): an assertion is refused
// this long after its exp, as Azure AD allows five minutes.
const WIAuthorityLeeway = 5 * time.Minute

// WorkloadIdentity is the workload identity part of a deployed stack.
type WorkloadIdentity struct {
	// AuthorityHost is what the webhook sets AZURE_AUTHORITY_HOST to.
	AuthorityHost string
	// Issuer is the cluster's service account issuer, which the authority
	// trusts: the iss of projected tokens.
	Issuer string
	// CAPEM is the authority's CA certificate; clients must trust it.
	CAPEM string
	// Authority is the authority's control API, through the API server.
	Authority *client.Client

	stack *Stack
}

// WorkloadIdentity returns the stack's workload identity authority, with
// handles on the reference webhook, or an error saying how to deploy it.
func (s *Stack) WorkloadIdentity(ctx context.Context) (*WorkloadIdentity, error) {
	kube := s.deploy.Kube
	cm, err := kube.CoreV1().ConfigMaps(s.Namespace).Get(ctx, WIAuthorityCAConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("workload identity is not deployed in %s (idharness run deploys the %s component): %w", s.Namespace, WIAuthorityComponent, err)
	}
	pods, err := s.deploy.PodsOf(ctx, s.Namespace, "app.kubernetes.io/name="+WIAuthorityName)
	if err != nil {
		return nil, err
	}
	var pod string
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			pod = p.Name
		}
	}
	if pod == "" {
		return nil, fmt.Errorf("no running %s pod in %s (look at: kubectl -n %s describe deploy/%s)", WIAuthorityName, s.Namespace, s.Namespace, WIAuthorityName)
	}
	c, err := s.controlClient(pod)
	if err != nil {
		return nil, err
	}
	iss, err := serviceAccountIssuer(ctx, s)
	if err != nil {
		return nil, err
	}
	return &WorkloadIdentity{AuthorityHost: WIAuthorityHost(s.Namespace), Issuer: iss, CAPEM: cm.Data["ca.crt"], Authority: c, stack: s}, nil
}

// serviceAccountIssuer returns the cluster's service account issuer (the
// iss of projected tokens), as the authority's init container read it.
func serviceAccountIssuer(ctx context.Context, s *Stack) (string, error) {
	b, err := s.deploy.Kube.CoreV1().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("read the cluster's service account issuer (/.well-known/openid-configuration): %w", err)
	}
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.Issuer == "" {
		return "", fmt.Errorf("the API server's /.well-known/openid-configuration names no issuer (%v): %s", err, b)
	}
	return d.Issuer, nil
}

// SetFailurePolicy sets the webhook's failurePolicy ("Fail" or "Ignore");
// deploys set Fail, as Azure's webhook ships.
func (w *WorkloadIdentity) SetFailurePolicy(ctx context.Context, policy string) error {
	if policy != "Fail" && policy != "Ignore" {
		return fmt.Errorf("failure policy %q: want Fail or Ignore", policy)
	}
	patch := fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/failurePolicy","value":%q}]`, policy)
	_, err := w.stack.deploy.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx,
		WIWebhookConfigName(w.stack.Namespace), types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("set the webhook's failurePolicy: %w", err)
	}
	return nil
}

// ScaleWebhook sets the webhook's replicas (0 takes it down) and waits
// until that many pods serve, or none is left.
func (w *WorkloadIdentity) ScaleWebhook(ctx context.Context, replicas int32) error {
	kube, ns := w.stack.deploy.Kube, w.stack.Namespace
	s, err := kube.AppsV1().Deployments(ns).GetScale(ctx, WIWebhookName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("scale the webhook: %w", err)
	}
	s.Spec.Replicas = replicas
	if _, err := kube.AppsV1().Deployments(ns).UpdateScale(ctx, WIWebhookName, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scale the webhook: %w", err)
	}
	if replicas > 0 {
		// Available is not reachable: the API server is refused until
		// the endpoint is published and routed (deploy.WaitWebhookCalls).
		if err := w.stack.deploy.WaitDeployment(ctx, ns, WIWebhookName); err != nil {
			return err
		}
		if err := w.stack.deploy.WaitServiceEndpoints(ctx, ns, WIWebhookName); err != nil {
			return err
		}
		return w.stack.deploy.WaitWebhookCalls(ctx, ns, WIWebhookName)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		pods, err := w.stack.deploy.PodsOf(ctx, ns, "app.kubernetes.io/name="+WIWebhookName)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook pods still exist a minute after scaling to 0 (look at: kubectl -n %s get pods -l app.kubernetes.io/name=%s)", ns, WIWebhookName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
