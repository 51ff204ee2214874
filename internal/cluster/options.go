// Package cluster creates, reuses and deletes the kind clusters idharness
// runs its suites on, through kind's Go library (sigs.k8s.io/kind/pkg/cluster).
// It is the implementation behind the public pkg/cluster, which wraps it
// for other modules and adapts it to sigs.k8s.io/e2e-framework; the
// harness's own knobs (WithNodeImageOptions, WithPuller, DeleteAll,
// records) stay here.
//
// A Cluster is configured with functional options. Create runs an ordered
// list of actions (reuse or clear a cluster of the same name, pick the node
// image, create, wait until the nodes are Ready and kube-system is Running),
// each logged with its duration. In existing mode (WithExistingKubeconfig)
// nothing is created or deleted: the cluster behind the kubeconfig, such as
// an AKS cluster, is only checked and used.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"time"

	"github.com/idharness/idharness/internal/nodeimage"
)

// Node image choices besides an explicit image name.
const (
	// NodeImageAuto uses kind's published node image when it is present
	// or can be pulled, and the offline image otherwise.
	NodeImageAuto = "auto"
	// NodeImageOffline builds (or reuses) the offline node image.
	NodeImageOffline = "offline"
	// NodeImagePublished uses kind's published node image and fails if it
	// cannot be had.
	NodeImagePublished = "published"
)

// DefaultName is the cluster name used when none is given.
const DefaultName = "idharness"

// Options configure a Cluster. Use the With… functions to set them.
type Options struct {
	// Name is the kind cluster name.
	Name string
	// NodeImage is NodeImageAuto, NodeImageOffline, NodeImagePublished or
	// an image name.
	NodeImage string
	// Workers is the number of worker nodes besides the control plane.
	Workers int
	// KubernetesVersion is the Kubernetes release of the nodes.
	KubernetesVersion string
	// Kubeconfig is where the cluster's kubeconfig is written.
	Kubeconfig string
	// KeepOnFailure leaves the nodes of a failed creation for inspection.
	KeepOnFailure bool
	// Reuse keeps an existing healthy cluster of the same name instead of
	// recreating it.
	Reuse bool
	// WaitTimeout bounds the wait for Ready nodes and Running system pods.
	WaitTimeout time.Duration
	// ExistingKubeconfig, when set, selects existing mode: the cluster behind
	// this kubeconfig is used as it is and never created or deleted.
	ExistingKubeconfig string
	// CacheDir holds the node image products and cluster records.
	CacheDir string
	// Logger receives progress.
	Logger *slog.Logger
	// NodeImageOptions are extra options for the offline node image builder.
	NodeImageOptions []nodeimage.Option
	// Puller tries to make a published image available locally; nil means
	// `docker pull`. Tests replace it.
	Puller func(image string) error
	// Mirrors are registries the nodes pull from elsewhere than their
	// names say (WithRegistryMirror).
	Mirrors []Mirror
	// WhileWaiting runs beside the readiness wait of a cluster Create
	// made (WithWhileWaiting).
	WhileWaiting func(ctx context.Context) error
}

// Option sets one of the Options.
type Option func(*Options)

// WithName sets the cluster name (default "idharness").
func WithName(name string) Option { return func(o *Options) { o.Name = name } }

// WithNodeImage sets the node image: "auto" (default), "offline",
// "published", or an image name.
func WithNodeImage(image string) Option { return func(o *Options) { o.NodeImage = image } }

// WithWorkers sets the number of worker nodes (default 0).
func WithWorkers(n int) Option { return func(o *Options) { o.Workers = n } }

// WithKubernetesVersion sets the Kubernetes release (default v1.34.4).
func WithKubernetesVersion(v string) Option { return func(o *Options) { o.KubernetesVersion = v } }

// WithKubeconfig sets where the kubeconfig is written (default
// <cache>/clusters/<name>/kubeconfig).
func WithKubeconfig(path string) Option { return func(o *Options) { o.Kubeconfig = path } }

// WithKeepOnFailure keeps the nodes of a failed creation for inspection.
func WithKeepOnFailure(keep bool) Option { return func(o *Options) { o.KeepOnFailure = keep } }

// WithReuse reuses an existing healthy cluster of the same name (default true).
func WithReuse(reuse bool) Option { return func(o *Options) { o.Reuse = reuse } }

// WithWaitTimeout bounds the readiness wait (default 5 minutes).
func WithWaitTimeout(d time.Duration) Option { return func(o *Options) { o.WaitTimeout = d } }

// WithExistingKubeconfig selects existing mode with the given kubeconfig.
func WithExistingKubeconfig(path string) Option {
	return func(o *Options) { o.ExistingKubeconfig = path }
}

// WithCacheDir sets the cache directory (default nodeimage.DefaultCacheDir()).
func WithCacheDir(dir string) Option { return func(o *Options) { o.CacheDir = dir } }

// WithLogger sets the progress logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithNodeImageOptions passes options to the offline node image builder.
func WithNodeImageOptions(opts ...nodeimage.Option) Option {
	return func(o *Options) { o.NodeImageOptions = append(o.NodeImageOptions, opts...) }
}

// WithPuller replaces the function that pulls a published node image.
func WithPuller(pull func(image string) error) Option {
	return func(o *Options) { o.Puller = pull }
}

// WithWhileWaiting runs fn beside the readiness wait of a cluster that
// Create makes: its nodes exist and their containerd answers, while the
// kubelets register and kube-system starts. It is where a run loads its
// images into the nodes, which waited for the whole cluster before (a
// 9-node cluster waits about 45 s). Create returns once both are done,
// with fn's error if it fails, and cancels fn's context if the wait fails.
// fn is not called for a reused or an existing cluster: the caller tells
// by whether it ran.
func WithWhileWaiting(fn func(ctx context.Context) error) Option {
	return func(o *Options) { o.WhileWaiting = fn }
}

// defaults returns the default options.
func defaults() Options {
	return Options{
		Name:              DefaultName,
		NodeImage:         NodeImageAuto,
		KubernetesVersion: nodeimage.DefaultVersions().Kubernetes,
		Reuse:             true,
		WaitTimeout:       5 * time.Minute,
		CacheDir:          nodeimage.DefaultCacheDir(),
	}
}

// resolve applies opts to the defaults and fills derived values.
func resolve(opts ...Option) (Options, error) {
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Kubeconfig == "" && o.ExistingKubeconfig == "" {
		o.Kubeconfig = filepath.Join(o.CacheDir, "clusters", o.Name, "kubeconfig")
	}
	if o.ExistingKubeconfig != "" {
		o.Kubeconfig = o.ExistingKubeconfig
	}
	return o, o.Validate()
}

// kind cluster names become container and network names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// Validate reports options that cannot work, saying what to change.
func (o Options) Validate() error {
	if o.ExistingKubeconfig != "" {
		return nil
	}
	if !nameRE.MatchString(o.Name) || len(o.Name) > 50 {
		return fmt.Errorf("cluster name %q: use lower-case letters, digits, '-' and '.', at most 50 characters", o.Name)
	}
	if o.Workers < 0 || o.Workers > 10 {
		return fmt.Errorf("workers %d: use 0 to 10", o.Workers)
	}
	if o.NodeImage == "" {
		return fmt.Errorf("node image: give auto, offline, published or an image name")
	}
	v := nodeimage.DefaultVersions()
	v.Kubernetes = o.KubernetesVersion
	if err := v.Validate(); err != nil {
		return err
	}
	if o.WaitTimeout <= 0 {
		return fmt.Errorf("wait timeout %s: must be positive", o.WaitTimeout)
	}
	if o.CacheDir == "" {
		return fmt.Errorf("no cache directory: set IDHARNESS_CACHE_DIR")
	}
	return nil
}
