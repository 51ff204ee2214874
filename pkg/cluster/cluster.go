// Package cluster is idharness's public cluster provider: kind clusters
// created through kind's Go library (no kind binary), on kind's published
// node image or on idharness's offline one, built where nothing can be
// pulled; or, in existing mode, any cluster reached by a kubeconfig (AKS,
// say), which is only checked and used. It also plugs these clusters into
// sigs.k8s.io/e2e-framework (Provider, EnvSetup, EnvFinish).
//
// It is the whole of what other modules may use of idharness's cluster
// code, kept small on purpose, as kind's own pkg/cluster is: the work is
// done by the module's internal cluster package, which this one wraps, so
// that there is one implementation and the harness's own knobs (node image
// builder options, test hooks) stay out of the public surface.
package cluster

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/kind/pkg/cluster/nodes"

	icluster "github.com/idharness/idharness/internal/cluster"
)

// DefaultName is the cluster name when WithName is not given.
const DefaultName = icluster.DefaultName

// Node image choices for WithNodeImage, besides an explicit image name.
const (
	// NodeImageAuto uses kind's published node image when it is present
	// or can be pulled, and builds the offline image otherwise (the
	// default).
	NodeImageAuto = icluster.NodeImageAuto
	// NodeImageOffline builds (or reuses from the cache) the offline node
	// image and pulls nothing: for machines without a registry.
	NodeImageOffline = icluster.NodeImageOffline
	// NodeImagePublished uses kind's published node image and fails if it
	// cannot be pulled.
	NodeImagePublished = icluster.NodeImagePublished
)

// Option configures a Cluster (or a Provider).
type Option func(*options)

// options collects the internal options the public ones stand for.
type options struct{ internal []icluster.Option }

func with(o icluster.Option) Option {
	return func(s *options) { s.internal = append(s.internal, o) }
}

// WithName sets the cluster name (default DefaultName). kind derives
// container and network names from it, so it takes lower-case letters,
// digits, '-' and '.'.
func WithName(name string) Option { return with(icluster.WithName(name)) }

// WithNodeImage sets the node image: NodeImageAuto (default),
// NodeImageOffline, NodeImagePublished or an image name.
func WithNodeImage(image string) Option { return with(icluster.WithNodeImage(image)) }

// WithWorkers sets the number of worker nodes beside the control plane
// (default 0, at most 10).
func WithWorkers(n int) Option { return with(icluster.WithWorkers(n)) }

// WithKubernetesVersion sets the nodes' Kubernetes release, such as
// "v1.34.4" (the default).
func WithKubernetesVersion(v string) Option { return with(icluster.WithKubernetesVersion(v)) }

// WithKubeconfig sets where the kubeconfig is written (default
// <cache>/clusters/<name>/kubeconfig).
func WithKubeconfig(path string) Option { return with(icluster.WithKubeconfig(path)) }

// WithKeepOnFailure keeps the nodes of a failed creation for inspection.
func WithKeepOnFailure(keep bool) Option { return with(icluster.WithKeepOnFailure(keep)) }

// WithReuse keeps an existing healthy cluster of the same name instead of
// recreating it (default true): a suite rerun then starts in seconds.
func WithReuse(reuse bool) Option { return with(icluster.WithReuse(reuse)) }

// WithWaitTimeout bounds the wait for Ready nodes and Running kube-system
// pods (default 5 minutes).
func WithWaitTimeout(d time.Duration) Option { return with(icluster.WithWaitTimeout(d)) }

// WithExistingKubeconfig selects existing mode: the cluster behind this
// kubeconfig is used as it is, never created or deleted.
func WithExistingKubeconfig(path string) Option {
	return with(icluster.WithExistingKubeconfig(path))
}

// WithCacheDir sets the cache of node image products and cluster records
// (default IDHARNESS_CACHE_DIR, else /var/cache/idharness for root and
// ~/.cache/idharness otherwise).
func WithCacheDir(dir string) Option { return with(icluster.WithCacheDir(dir)) }

// WithLogger sets the progress logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return with(icluster.WithLogger(l)) }

// internalOptions turns public options into the internal package's.
func internalOptions(opts []Option) []icluster.Option {
	var s options
	for _, o := range opts {
		o(&s)
	}
	return s.internal
}

// Cluster is one kind cluster (or, in existing mode, any cluster reached
// by a kubeconfig). Create one with New.
type Cluster struct {
	c *icluster.Cluster
}

// New returns a Cluster for the options. It checks the options, saying
// what to change, but touches nothing.
func New(opts ...Option) (*Cluster, error) {
	c, err := icluster.New(internalOptions(opts)...)
	if err != nil {
		return nil, err
	}
	return &Cluster{c: c}, nil
}

// Name returns the cluster name.
func (c *Cluster) Name() string { return c.c.Name() }

// Kubeconfig returns the path of the cluster's kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.c.Kubeconfig() }

// Existing tells whether the cluster is used in existing mode.
func (c *Cluster) Existing() bool { return c.c.Existing() }

// RESTConfig returns a client configuration for the cluster; it fails,
// saying so, until the cluster has been created.
func (c *Cluster) RESTConfig() (*rest.Config, error) { return c.c.RESTConfig() }

// Create makes the cluster ready for use: it reuses a healthy cluster of
// the same name (WithReuse) or clears an unhealthy one, picks the node
// image, creates the nodes and waits until every node is Ready and every
// kube-system pod Running. In existing mode it only waits for health.
// Cancelling ctx deletes partly created nodes (unless WithKeepOnFailure).
func (c *Cluster) Create(ctx context.Context) (*Info, error) {
	in, err := c.c.Create(ctx)
	if err != nil {
		return nil, err
	}
	return &Info{Name: in.Name, Kubeconfig: in.Kubeconfig, NodeImage: in.NodeImage, Reused: in.Reused, Health: Health(in.Health)}, nil
}

// Delete deletes the cluster and the kubeconfig Create wrote. In existing
// mode it deletes nothing.
func (c *Cluster) Delete(ctx context.Context) error { return c.c.Delete(ctx) }

// Status reports whether the cluster exists, its nodes and its health.
// An error means it could not be asked (is Docker running?); a cluster
// that is missing or unhealthy is a Status, not an error.
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	s, err := c.c.Status(ctx)
	out := Status{Name: s.Name, Exists: s.Exists, Managed: s.Managed, Nodes: s.Nodes, NodeImage: s.NodeImage,
		Kubeconfig: s.Kubeconfig, HealthErr: s.HealthErr}
	if s.Health != nil {
		h := Health(*s.Health)
		out.Health = &h
	}
	return out, err
}

// LoadImageArchive loads a Docker image archive (docker save) into every
// node, so that pods can run its images with imagePullPolicy Never.
func (c *Cluster) LoadImageArchive(path string) error { return c.c.LoadImageArchive(path) }

// Nodes returns the cluster's kind nodes (for node.Command(...)); in
// existing mode there are none, and it says so.
func (c *Cluster) Nodes() ([]nodes.Node, error) { return c.c.Nodes() }

// Info describes the outcome of Create.
type Info struct {
	// Name is the cluster name.
	Name string
	// Kubeconfig is the path of its kubeconfig.
	Kubeconfig string
	// NodeImage is the node image used ("" in existing mode).
	NodeImage string
	// Reused tells that an existing healthy cluster was kept.
	Reused bool
	// Health is the state seen at the end of Create.
	Health Health
}

// Status describes a cluster, as `idharness cluster status` shows it.
type Status struct {
	// Name is the cluster name.
	Name string
	// Exists tells whether kind knows the cluster (always true in existing mode).
	Exists bool
	// Managed tells whether idharness created it (labelled nodes or a record).
	Managed bool
	// Nodes are the node container names.
	Nodes []string
	// NodeImage is the image of the first node.
	NodeImage string
	// Kubeconfig is the kubeconfig path.
	Kubeconfig string
	// Health is the cluster's health, when it could be read.
	Health *Health
	// HealthErr says why Health could not be read.
	HealthErr string
}

// Health is a snapshot of a cluster's readiness. Its fields are the
// internal package's, in the same order, so that the two convert into
// each other and the judgement below stays written once.
type Health struct {
	// Nodes and ReadyNodes count the nodes and those whose Ready condition is True.
	Nodes, ReadyNodes int
	// SystemPods and RunningSystemPods count the kube-system pods and those
	// Running with every container ready (or Succeeded).
	SystemPods, RunningSystemPods int
	// NotReady names what is not ready yet ("node/x", "pod/y").
	NotReady []string
}

// Healthy tells whether every node is Ready and every kube-system pod runs.
func (h Health) Healthy() bool { return icluster.Health(h).Healthy() }

// String summarises h for logs.
func (h Health) String() string { return icluster.Health(h).String() }

// CheckHealth reads the cluster's nodes and kube-system pods once.
func CheckHealth(ctx context.Context, cfg *rest.Config) (Health, error) {
	h, err := icluster.CheckHealth(ctx, cfg)
	return Health(h), err
}
