// Package stack deploys idharness's components into a cluster — fakeimds
// on every node, the protected resource — and gives suites handles on
// them: each node's fakeimds control API (through the API server's proxy,
// so it works on any cluster), the run's identities, the images.
package stack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/token"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/deploy"
)

// Options configure a deployment.
type Options struct {
	Namespace  string
	Images     fixtures.Images
	Identities fixtures.Identities
	// AppServiceSecret is the IDENTITY_HEADER value (default generated).
	AppServiceSecret string
	Seed             int64
	Throttle         bool
	// Components are the stack components to deploy besides fakeimds and
	// the protected resource (see Register).
	Components []Component
	// ShadowMetadata lets fakeimds take 169.254.169.254 on nodes where a
	// metadata service already answers (idharness run --allow-azure-nodes).
	ShadowMetadata bool
	// Claims are the identity modes the deployed profile claims
	// (Profile.Modes), recorded in the run's ConfigMap: a spec of a
	// claimed mode whose component is missing fails instead of skipping.
	Claims []string
	// ImageIDs maps image names to their content's ID (its config
	// digest). A pod template whose images changed under the same name
	// (a rebuilt image loaded into a reused cluster) gets a new
	// annotation, so its pods are replaced instead of running the old
	// image until they happen to restart.
	ImageIDs map[string]string
	// Agents are the pod identity agents' DaemonSets of the
	// implementations declared as data (--sut, or a profile's shipped
	// declarations).
	Agents []string
	// SUTs name the implementations declared as data that Components
	// include: the objects of others are removed (SUTLabel).
	SUTs []string
	// WIWebhook names the workload identity webhook under test
	// (Stack.WIWebhook): WIWebhookReference, an implementation's name, or
	// WIWebhookNone (the default when empty).
	WIWebhook string
}

// Stack is a deployed idharness stack.
type Stack struct {
	Namespace string
	// Nodes maps node names to their fakeimds configuration.
	Nodes  map[string]config.Config
	Images fixtures.Images
	// Identities is the run's identity set.
	Identities fixtures.Identities
	Seed       int64
	// AppServiceSecret is what App Service clients must send.
	AppServiceSecret string
	// Claims are the modes the deployed profile claims (Options.Claims);
	// nil when the stack does not say (deployed before claims existed).
	Claims []string
	// Agents are the DaemonSets of the deployed implementation's pod
	// identity agents (Options.Agents).
	Agents []string
	// WIWebhook names the workload identity webhook under test
	// (Options.WIWebhook): WIWebhookReference, the name of an
	// implementation declared as data that claims workload identity, or
	// WIWebhookNone; empty when the stack does not say (deployed before
	// this was recorded).
	WIWebhook string

	rest   *rest.Config
	deploy *deploy.Client
	log    *slog.Logger
	// controlToken opens the control APIs of fakeimds and the authority.
	controlToken string
	// controlHTTP is the control APIs' HTTP client, made once: one made
	// per call opened a TLS connection to the API server every time, a
	// dozen at once when a spec's probe pods finish.
	controlHTTP struct {
		sync.Mutex
		c *http.Client
	}
}

// runInfo is stored in the cluster so that suites run later (go test
// ./suites/...) can connect to a stack deployed by `idharness run`.
type runInfo struct {
	Images           fixtures.Images     `json:"images"`
	Identities       fixtures.Identities `json:"identities"`
	Seed             int64               `json:"seed"`
	AppServiceSecret string              `json:"appServiceSecret"`
	Claims           []string            `json:"claims,omitempty"`
	Agents           []string            `json:"agents,omitempty"`
	WIWebhook        string              `json:"wiWebhook,omitempty"`
}

const runInfoName = "idharness-run"

// Deploy applies the stack for opts and waits until it is ready.
func Deploy(ctx context.Context, cfg *rest.Config, opts Options, log *slog.Logger) (*Stack, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.Namespace == "" {
		opts.Namespace = fixtures.DefaultNamespace
	}
	if opts.AppServiceSecret == "" {
		opts.AppServiceSecret = "idharness-identity-header"
	}
	dc, err := deploy.New(cfg, log)
	if err != nil {
		return nil, err
	}
	nodes, err := dc.NodeNames(ctx)
	if err != nil {
		return nil, err
	}
	if !opts.ShadowMetadata {
		nl, err := dc.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		if az := azureNodes(nl.Items); len(az) > 0 {
			return nil, fmt.Errorf("nodes %s are Azure VMs (providerID azure://…): fakeimds would take 169.254.169.254 from their real IMDS for every pod on them; use a test cluster, or pass --allow-azure-nodes if that is what you want", strings.Join(az, ", "))
		}
	}
	key, err := signingKey(ctx, dc, opts.Namespace)
	if err != nil {
		return nil, err
	}
	tok, err := controlToken(ctx, dc, opts.Namespace)
	if err != nil {
		return nil, err
	}
	p := fixtures.Params{Namespace: opts.Namespace, Images: opts.Images, Nodes: nodes, Identities: opts.Identities,
		SigningKeyPEM: key, AppServiceSecret: opts.AppServiceSecret, Seed: opts.Seed, Throttle: opts.Throttle,
		ControlToken: tok, ShadowMetadata: opts.ShadowMetadata}
	cm, hash, err := fixtures.FakeIMDSConfig(p)
	if err != nil {
		return nil, err
	}
	p.ConfigHash = hash
	ns, err := fixtures.Render(p, "namespace")
	if err != nil {
		return nil, err
	}
	if opts.WIWebhook == "" {
		opts.WIWebhook = WIWebhookNone
	}
	info, _ := json.Marshal(runInfo{Images: opts.Images, Identities: opts.Identities, Seed: opts.Seed, AppServiceSecret: opts.AppServiceSecret, Claims: opts.Claims, Agents: opts.Agents, WIWebhook: opts.WIWebhook})
	infoCM := fixtures.ConfigMap(opts.Namespace, runInfoName, map[string]string{"run.json": string(info)})
	manifests := []string{"fakeimds"}
	if opts.Images.Vault != "" {
		manifests = append(manifests, "vault")
	}
	rest, err := fixtures.Render(p, manifests...)
	if err != nil {
		return nil, err
	}
	acl, err := yaml.Marshal(opts.Identities.VaultACL(nodes))
	if err != nil {
		return nil, err
	}
	aclCM := fixtures.ConfigMap(opts.Namespace, "vault-acl", map[string]string{"acl.yaml": string(acl)})
	start := time.Now()
	log.Info("deploying", "namespace", opts.Namespace, "nodes", len(nodes))
	objs := append(ns, fixtures.SigningKeySecret(p), fixtures.ControlTokenSecret(p), cm, infoCM, aclCM)
	stampImages(rest, opts.ImageIDs)
	if err := dc.Apply(ctx, append(objs, rest...)...); err != nil {
		return nil, err
	}
	var comps []rendered
	for _, c := range opts.Components {
		objs, err := c.Objects(p)
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", c.Name, err)
		}
		comps = append(comps, rendered{c, objs})
	}
	// The rollouts are waited for side by side: each takes seconds (a
	// DaemonSet's pods on every node, a Deployment's one pod), and waited
	// for one after another they added up (the example agent's redeploy
	// on the 9-node chaos cluster: 20 s, against 8 s side by side). The
	// components are still applied in their order, after what an earlier
	// run left is removed, so that a run's agent never starts beside
	// another's.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := dc.WaitDaemonSet(gctx, opts.Namespace, "fakeimds"); err != nil {
			return fmt.Errorf("%w (look at: kubectl -n %s describe ds/fakeimds; kubectl -n %s logs ds/fakeimds)", err, opts.Namespace, opts.Namespace)
		}
		return nil
	})
	if opts.Images.Vault != "" {
		g.Go(func() error {
			if err := dc.WaitDeployment(gctx, opts.Namespace, "vault"); err != nil {
				return fmt.Errorf("%w (look at: kubectl -n %s logs deploy/vault)", err, opts.Namespace)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := pruneOthers(gctx, dc, p, comps, log); err != nil {
			return err
		}
		if err := pruneSUTs(gctx, dc, opts.Namespace, opts.SUTs, comps, log); err != nil {
			return err
		}
		for _, rc := range comps {
			stampImages(rc.objs, opts.ImageIDs)
			if err := dc.Apply(gctx, rc.objs...); err != nil {
				return fmt.Errorf("component %s: %w", rc.Name, err)
			}
			g.Go(func() error {
				if rc.Wait != nil {
					if err := rc.Wait(gctx, dc, opts.Namespace); err != nil {
						return fmt.Errorf("component %s: %w", rc.Name, err)
					}
				}
				log.Info("component deployed", "name", rc.Name)
				return nil
			})
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	log.Info("deployed", "elapsed", time.Since(start).Round(time.Millisecond))
	return Connect(ctx, cfg, opts.Namespace, log)
}

// imagesAnnotation on a pod template records the IDs of its images.
const imagesAnnotation = "idharness.io/images"

// stampImages annotates the pod template of each workload in objs with a
// digest of its containers' image IDs (ids: by image name), so that a
// workload whose images were rebuilt under the same name rolls out.
// Images without a known ID leave the template as it is.
func stampImages(objs []*unstructured.Unstructured, ids map[string]string) {
	if len(ids) == 0 {
		return
	}
	for _, o := range objs {
		var parts []string
		for _, field := range []string{"initContainers", "containers"} {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
			for _, c := range cs {
				img, _, _ := unstructured.NestedString(c.(map[string]any), "image")
				if id, ok := ids[img]; ok {
					parts = append(parts, img+"="+id)
				}
			}
		}
		if len(parts) == 0 {
			continue
		}
		sort.Strings(parts)
		sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
		_ = unstructured.SetNestedField(o.Object, hex.EncodeToString(sum[:8]), "spec", "template", "metadata", "annotations", imagesAnnotation)
	}
}

// signingKey returns the key of an existing deployment, so that a
// redeploy keeps tokens valid, or a new one.
func signingKey(ctx context.Context, dc *deploy.Client, ns string) ([]byte, error) {
	s, err := dc.Kube.CoreV1().Secrets(ns).Get(ctx, "fakeimds-signing-key", metav1.GetOptions{})
	if err == nil && len(s.Data["signing.pem"]) > 0 {
		return s.Data["signing.pem"], nil
	}
	k, err := token.GenerateKey()
	if err != nil {
		return nil, err
	}
	return token.EncodeKeyPEM(k), nil
}

// azureNodes returns the names of the nodes that are Azure VMs, whose
// metadata address a real IMDS answers.
func azureNodes(nodes []corev1.Node) []string {
	var out []string
	for _, n := range nodes {
		if strings.HasPrefix(strings.ToLower(n.Spec.ProviderID), "azure://") {
			out = append(out, n.Name)
		}
	}
	return out
}

// controlToken returns the control token of an existing deployment, so
// that a redeploy keeps the running pods' token valid, or a new random one.
func controlToken(ctx context.Context, dc *deploy.Client, ns string) (string, error) {
	s, err := dc.Kube.CoreV1().Secrets(ns).Get(ctx, fixtures.ControlTokenSecretName, metav1.GetOptions{})
	if err == nil && len(s.Data["token"]) >= 32 {
		return string(s.Data["token"]), nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("control token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Connect returns the stack deployed in ns.
func Connect(ctx context.Context, cfg *rest.Config, ns string, log *slog.Logger) (*Stack, error) {
	if log == nil {
		log = slog.Default()
	}
	dc, err := deploy.New(cfg, log)
	if err != nil {
		return nil, err
	}
	info, err := dc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, runInfoName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("no idharness stack in namespace %s (run `idharness run` or deploy first): %w", ns, err)
	}
	var ri runInfo
	if err := json.Unmarshal([]byte(info.Data["run.json"]), &ri); err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", ns, runInfoName, err)
	}
	cm, err := dc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "fakeimds-config", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read fakeimds config: %w", err)
	}
	sec, err := dc.Kube.CoreV1().Secrets(ns).Get(ctx, fixtures.ControlTokenSecretName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the control token (Secret %s/%s; redeploy with idharness run): %w", ns, fixtures.ControlTokenSecretName, err)
	}
	nodes := map[string]config.Config{}
	for k, v := range cm.Data {
		var c config.Config
		if err := yaml.Unmarshal([]byte(v), &c); err != nil {
			return nil, fmt.Errorf("fakeimds config %s: %w", k, err)
		}
		nodes[c.Host.Name] = c
	}
	return &Stack{Namespace: ns, Nodes: nodes, Images: ri.Images, Identities: ri.Identities, Seed: ri.Seed,
		AppServiceSecret: ri.AppServiceSecret, Claims: ri.Claims, Agents: ri.Agents, WIWebhook: ri.WIWebhook, rest: cfg, deploy: dc, log: log, controlToken: string(sec.Data["token"])}, nil
}

// Deployer returns the stack's Kubernetes client.
func (s *Stack) Deployer() *deploy.Client { return s.deploy }

// REST returns the cluster's REST configuration.
func (s *Stack) REST() *rest.Config { return s.rest }

// VaultURL is the protected resource's URL inside the cluster.
func (s *Stack) VaultURL() string { return "http://vault." + s.Namespace + ".svc" }

// AppServiceEndpoint is the App Service face's IDENTITY_ENDPOINT inside
// the cluster: the fakeimds Service, answered by the pod's own node.
func (s *Stack) AppServiceEndpoint() string {
	return "http://fakeimds." + s.Namespace + ".svc/msi/token"
}

// NodeNames returns the nodes, sorted.
func (s *Stack) NodeNames() []string {
	out := make([]string, 0, len(s.Nodes))
	for n := range s.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Workers returns the nodes with a fakeimds that are not control-plane
// nodes, sorted: where specs and scenarios run, each owning one at a
// time. A cluster of one node (its control plane) returns that node.
func (s *Stack) Workers(ctx context.Context) ([]string, error) {
	list, err := s.deploy.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "!" + controlPlaneLabel})
	if err != nil {
		return nil, fmt.Errorf("list the cluster's worker nodes: %w", err)
	}
	var out []string
	for _, n := range list.Items {
		if _, ok := s.Nodes[n.Name]; ok {
			out = append(out, n.Name)
		}
	}
	if len(out) == 0 {
		if all := s.NodeNames(); len(all) > 0 {
			return all[len(all)-1:], nil
		}
	}
	sort.Strings(out)
	return out, nil
}

// controlPlaneLabel marks control-plane nodes (kubeadm's, so kind's).
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// NewForTest returns a stack in namespace ns whose Kubernetes client is
// kube (a fake clientset) and whose profile claims claims: for tests of
// code that reads a stack, with no cluster. It has no nodes, and no
// REST config or dynamic client.
func NewForTest(ns string, kube kubernetes.Interface, claims []string) *Stack {
	return &Stack{Namespace: ns, Claims: claims, deploy: &deploy.Client{Kube: kube}, log: slog.Default()}
}

// Claimed reports whether the deployed profile claims mode: a spec of
// that mode must then find its component, and fails without it. A stack
// that does not record its claims claims nothing.
func (s *Stack) Claimed(mode string) bool { return contains(s.Claims, mode) }

// FakeIMDS returns a control API client for node's fakeimds, reached
// through the API server's pod proxy.
func (s *Stack) FakeIMDS(ctx context.Context, node string) (*client.Client, error) {
	pods, err := s.deploy.PodsOf(ctx, s.Namespace, "app.kubernetes.io/name=fakeimds")
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.Spec.NodeName != node {
			continue
		}
		return s.controlClient(p.Name)
	}
	return nil, fmt.Errorf("no fakeimds pod on node %s", node)
}

// controlClient returns a control API client for pod (a fakeimds or the
// authority), reached through the API server's pod proxy with the run's
// control token.
func (s *Stack) controlClient(pod string) (*client.Client, error) {
	hc, err := s.controlHTTPClient()
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s:%d/proxy", s.rest.Host, s.Namespace, pod, fixtures.ControlPort)
	return client.New(base, client.WithHTTPClient(hc))
}

// controlHTTPClient returns the control APIs' HTTP client: the API
// server's, with the control token and a bound on each call.
func (s *Stack) controlHTTPClient() (*http.Client, error) {
	s.controlHTTP.Lock()
	defer s.controlHTTP.Unlock()
	if s.controlHTTP.c != nil {
		return s.controlHTTP.c, nil
	}
	hc, err := rest.HTTPClientFor(s.rest)
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	hc.Transport = client.TokenTransport(s.controlToken, hc.Transport)
	// A hung proxy or fakeimds must not hang a spec (journal streams
	// drop the bound themselves).
	hc.Timeout = client.DefaultTimeout
	s.controlHTTP.c = hc
	return hc, nil
}

// PodIdentityAgents are the DaemonSets of the pod identity agents the
// stack runs, in its namespace: those of the implementation declared as
// data (the reference node agent, aad-pod-identity's NMI, a vendor's),
// none when it claims no pod identity. Specs and scenario steps that act
// on "the agent" look for these.
func (s *Stack) PodIdentityAgents() []string {
	return slices.Clone(s.Agents)
}
