package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/support"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	icluster "github.com/idharness/idharness/internal/cluster"
)

// Provider adapts a Cluster to e2e-framework's support.E2EClusterProvider,
// so that suites use envfuncs.CreateClusterWithOpts and
// envfuncs.DestroyCluster the ordinary way:
//
//	testenv.Setup(envfuncs.CreateClusterWithOpts(cluster.NewProvider(cluster.WithNodeImage("offline")), "idh"))
//	testenv.Finish(envfuncs.DestroyCluster("idh"))
type Provider struct {
	opts    []Option
	cluster *Cluster
	rest    *rest.Config
}

var (
	_ support.E2EClusterProvider                = (*Provider)(nil)
	_ support.E2EClusterProviderWithImageLoader = (*Provider)(nil)
)

// NewProvider returns an e2e-framework cluster provider with the options.
func NewProvider(opts ...Option) *Provider {
	return &Provider{opts: append([]Option(nil), opts...)}
}

// WithName sets the cluster name.
func (p *Provider) WithName(name string) support.E2EClusterProvider {
	p.opts = append(p.opts, WithName(name))
	return p
}

// WithVersion sets the Kubernetes version ("v1.34.4").
func (p *Provider) WithVersion(version string) support.E2EClusterProvider {
	p.opts = append(p.opts, WithKubernetesVersion(version))
	return p
}

// WithPath is accepted for the interface; no kind binary is used.
func (p *Provider) WithPath(string) support.E2EClusterProvider { return p }

// WithOpts applies e2e-framework cluster options to the provider.
func (p *Provider) WithOpts(opts ...support.ClusterOpts) support.E2EClusterProvider {
	for _, o := range opts {
		o(p)
	}
	return p
}

// SetDefaults returns the provider; the defaults are Options' defaults.
func (p *Provider) SetDefaults() support.E2EClusterProvider { return p }

// Create creates (or reuses) the cluster and returns its kubeconfig path.
// Extra arguments are not used.
func (p *Provider) Create(ctx context.Context, _ ...string) (string, error) {
	c, err := New(p.opts...)
	if err != nil {
		return "", err
	}
	p.cluster = c
	info, err := c.Create(ctx)
	if err != nil {
		return "", err
	}
	return info.Kubeconfig, nil
}

// CreateWithConfig creates the cluster with the node count of a kind
// configuration file (its workers); the node image still comes from the
// options.
func (p *Provider) CreateWithConfig(ctx context.Context, configFile string) (string, error) {
	b, err := os.ReadFile(configFile)
	if err != nil {
		return "", fmt.Errorf("kind config: %w", err)
	}
	var cfg v1alpha4.Cluster
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("kind config %s: %w", configFile, err)
	}
	workers := 0
	for _, n := range cfg.Nodes {
		if n.Role == v1alpha4.WorkerRole {
			workers++
		}
	}
	p.opts = append(p.opts, WithWorkers(workers))
	return p.Create(ctx)
}

func (p *Provider) ensure() (*Cluster, error) {
	if p.cluster != nil {
		return p.cluster, nil
	}
	c, err := New(p.opts...)
	if err != nil {
		return nil, err
	}
	p.cluster = c
	return c, nil
}

// GetKubeconfig returns the kubeconfig path.
func (p *Provider) GetKubeconfig() string {
	c, err := p.ensure()
	if err != nil {
		return ""
	}
	return c.Kubeconfig()
}

// GenerateKubeconfig writes the cluster's kubeconfig again and returns its path.
func (p *Provider) GenerateKubeconfig(...string) (string, error) {
	c, err := p.ensure()
	if err != nil {
		return "", err
	}
	if c.Existing() {
		return c.Kubeconfig(), nil
	}
	if err := c.c.Provider().ExportKubeConfig(c.Name(), c.Kubeconfig(), false); err != nil {
		return "", fmt.Errorf("export kubeconfig: %w", err)
	}
	return c.Kubeconfig(), nil
}

// GetKubectlContext returns the kubeconfig context name kind uses.
func (p *Provider) GetKubectlContext() string {
	c, err := p.ensure()
	if err != nil {
		return ""
	}
	return "kind-" + c.Name()
}

// ExportLogs collects the nodes' logs into dest.
func (p *Provider) ExportLogs(_ context.Context, dest string) error {
	c, err := p.ensure()
	if err != nil {
		return err
	}
	if c.Existing() {
		return nil
	}
	return c.c.Provider().CollectLogs(c.Name(), dest)
}

// Destroy deletes the cluster (nothing in existing mode).
func (p *Provider) Destroy(ctx context.Context) error {
	c, err := p.ensure()
	if err != nil {
		return err
	}
	return c.Delete(ctx)
}

// WaitForControlPlane waits until nodes are Ready and kube-system is Running.
func (p *Provider) WaitForControlPlane(ctx context.Context, client klient.Client) error {
	c, err := p.ensure()
	if err != nil {
		return err
	}
	_, err = icluster.WaitHealthy(ctx, client.RESTConfig(), c.c.Options().WaitTimeout, nil)
	return err
}

// KubernetesRestConfig returns the cluster's client configuration.
func (p *Provider) KubernetesRestConfig() *rest.Config {
	if p.rest != nil {
		return p.rest
	}
	c, err := p.ensure()
	if err != nil {
		return nil
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil
	}
	p.rest = cfg
	return cfg
}

// LoadImage loads a local Docker image into every node.
func (p *Provider) LoadImage(ctx context.Context, image string, _ ...string) error {
	dir, err := os.MkdirTemp("", "idharness-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if out, err := exec.CommandContext(ctx, "docker", "save", "-o", archive, image).CombinedOutput(); err != nil {
		return fmt.Errorf("docker save %s: %w: %s", image, err, out)
	}
	return p.LoadImageArchive(ctx, archive)
}

// LoadImageArchive loads a Docker image archive into every node.
func (p *Provider) LoadImageArchive(_ context.Context, archivePath string, _ ...string) error {
	c, err := p.ensure()
	if err != nil {
		return err
	}
	return c.LoadImageArchive(archivePath)
}

// EnvSetup returns an env.Func that creates (or reuses, or in existing mode
// just checks) the cluster and points the environment's client at it. Pair
// it with EnvFinish.
func EnvSetup(opts ...Option) env.Func {
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		c, err := New(opts...)
		if err != nil {
			return ctx, err
		}
		info, err := c.Create(ctx)
		if err != nil {
			return ctx, err
		}
		cfg.WithKubeconfigFile(info.Kubeconfig)
		return context.WithValue(ctx, clusterKey{}, c), nil
	}
}

// EnvFinish returns an env.Func that deletes the cluster EnvSetup created
// (nothing in existing mode).
func EnvFinish() env.Func {
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		c, ok := FromContext(ctx)
		if !ok {
			return ctx, fmt.Errorf("no idharness cluster in the context: use cluster.EnvSetup in Setup")
		}
		return ctx, c.Delete(ctx)
	}
}

type clusterKey struct{}

// FromContext returns the Cluster that EnvSetup stored in ctx.
func FromContext(ctx context.Context) (*Cluster, bool) {
	c, ok := ctx.Value(clusterKey{}).(*Cluster)
	return c, ok
}
