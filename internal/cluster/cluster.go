package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"

	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/nodeimage"
)

// kindClusterLabel is the container label kind puts on every node.
const kindClusterLabel = "io.x-k8s.kind.cluster"

// Cluster is one kind cluster (or, in existing mode, any cluster reached by a
// kubeconfig). Create one with New.
type Cluster struct {
	opts     Options
	provider *kindcluster.Provider
}

// New returns a Cluster for the options. It checks the options but touches
// nothing.
func New(opts ...Option) (*Cluster, error) {
	o, err := resolve(opts...)
	if err != nil {
		return nil, err
	}
	return &Cluster{
		opts:     o,
		provider: kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{o.Logger})),
	}, nil
}

// Options returns the resolved options.
func (c *Cluster) Options() Options { return c.opts }

// Name returns the cluster name.
func (c *Cluster) Name() string { return c.opts.Name }

// Kubeconfig returns the path of the cluster's kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.opts.Kubeconfig }

// Existing tells whether the cluster is used in existing mode.
func (c *Cluster) Existing() bool { return c.opts.ExistingKubeconfig != "" }

// Provider returns kind's provider (nil use in existing mode).
func (c *Cluster) Provider() *kindcluster.Provider { return c.provider }

// RESTConfig returns a client configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.opts.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w (create the cluster first: idharness cluster create)", c.opts.Kubeconfig, err)
	}
	return cfg, nil
}

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
	// Durations of the actions, in order.
	Durations []ActionDuration
}

// ActionDuration is the time one Create action took.
type ActionDuration struct {
	Action   string
	Duration time.Duration
}

// action is one step of Create. It returns done=true to end Create early.
type action struct {
	name string
	run  func(ctx context.Context, st *createState) (done bool, err error)
}

// createState is what the actions share.
type createState struct {
	info  Info
	image string
}

// Create makes the cluster ready for use, as an ordered list of actions:
// reuse a healthy cluster of the same name or clear an unhealthy one; pick
// the node image; create the nodes with kind; wait until nodes are Ready and
// kube-system is Running. In existing mode it only waits for health.
//
// Cancelling ctx during creation deletes the partly created nodes (unless
// KeepOnFailure), so an interrupted Create leaves no containers behind.
func (c *Cluster) Create(ctx context.Context) (*Info, error) {
	st := &createState{info: Info{Name: c.opts.Name, Kubeconfig: c.opts.Kubeconfig}}
	var actions []action
	if c.Existing() {
		actions = []action{{"wait for existing cluster", c.waitAction}}
	} else {
		actions = []action{
			{"check for an existing cluster", c.reuseAction},
			{"select node image", c.imageAction},
			{"create nodes (kind)", c.createAction},
			{"wait for nodes and kube-system", c.waitNewAction},
		}
		if len(c.opts.Mirrors) > 0 {
			actions = slices.Insert(actions, 3, action{"configure registry mirrors", c.mirrorAction})
		}
	}
	for _, a := range actions {
		start := time.Now()
		c.opts.Logger.Info("cluster action", "cluster", c.opts.Name, "action", a.name)
		done, err := a.run(ctx, st)
		d := time.Since(start)
		st.info.Durations = append(st.info.Durations, ActionDuration{a.name, d})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.name, err)
		}
		c.opts.Logger.Info("cluster action done", "cluster", c.opts.Name, "action", a.name, "duration", d.Round(100*time.Millisecond))
		if done {
			break
		}
	}
	return &st.info, nil
}

// exists tells whether kind knows a cluster of this name.
func (c *Cluster) exists() (bool, error) {
	names, err := c.provider.List()
	if err != nil {
		return false, fmt.Errorf("list kind clusters: %w (is Docker running? make prereqs)", err)
	}
	return slices.Contains(names, c.opts.Name), nil
}

func (c *Cluster) reuseAction(ctx context.Context, st *createState) (bool, error) {
	ok, err := c.exists()
	if err != nil || !ok {
		return false, err
	}
	if c.opts.Reuse {
		if have := c.workersOfExisting(); have != c.opts.Workers {
			c.opts.Logger.Info("recreating cluster: its number of workers differs", "cluster", c.opts.Name, "workers", have, "want", c.opts.Workers)
			return false, c.deleteKind()
		}
		if !c.hasMirrors() {
			c.opts.Logger.Info("recreating cluster: its nodes lack the registry mirrors asked for", "cluster", c.opts.Name, "mirrors", c.opts.Mirrors)
			return false, c.deleteKind()
		}
		if err := c.provider.ExportKubeConfig(c.opts.Name, c.opts.Kubeconfig, false); err == nil {
			if cfg, err := c.RESTConfig(); err == nil {
				if h, err := WaitHealthy(ctx, cfg, 20*time.Second, nil); err == nil {
					c.opts.Logger.Info("reusing healthy cluster", "cluster", c.opts.Name, "health", h.String())
					st.info.Reused, st.info.Health = true, h
					st.info.NodeImage = c.nodeImageOfExisting()
					return true, nil
				}
			}
		}
		c.opts.Logger.Warn("existing cluster is not healthy; deleting it", "cluster", c.opts.Name)
	} else {
		c.opts.Logger.Info("deleting existing cluster (reuse disabled)", "cluster", c.opts.Name)
	}
	return false, c.deleteKind()
}

// workersOfExisting returns the number of worker nodes of the existing
// cluster; -1 when they cannot be listed.
func (c *Cluster) workersOfExisting() int {
	ns, err := c.provider.ListNodes(c.opts.Name)
	if err != nil {
		return -1
	}
	n := 0
	for _, node := range ns {
		if r, err := node.Role(); err == nil && r == "worker" {
			n++
		}
	}
	return n
}

// nodeImageOfExisting returns the image of the cluster's first node, if known.
func (c *Cluster) nodeImageOfExisting() string {
	ns, err := c.provider.ListNodes(c.opts.Name)
	if err != nil || len(ns) == 0 {
		return ""
	}
	out, err := exec.Command("docker", "inspect", "--format", "{{.Config.Image}}", ns[0].String()).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// PublishedImage returns kind's published node image for a Kubernetes
// version: kind's default (with its digest) when the versions match, the
// kindest/node tag otherwise.
func PublishedImage(kubeVersion string) string {
	const def = kindDefaultImage
	tag := strings.SplitN(strings.TrimPrefix(def, "kindest/node:"), "@", 2)[0]
	if tag == kubeVersion {
		return def
	}
	return "kindest/node:" + kubeVersion
}

func (c *Cluster) imageAction(ctx context.Context, st *createState) (bool, error) {
	img, how, err := c.selectImage(ctx)
	if err != nil {
		return false, err
	}
	c.opts.Logger.Info("node image", "image", img, "source", how)
	st.image = img
	st.info.NodeImage = img
	return false, nil
}

// selectImage resolves the NodeImage option to an image name and says how.
func (c *Cluster) selectImage(ctx context.Context) (image, how string, err error) {
	switch c.opts.NodeImage {
	case NodeImageOffline:
		img, err := c.buildOffline(ctx)
		return img, "offline build (requested)", err
	case NodeImagePublished, NodeImageAuto:
		pub := PublishedImage(c.opts.KubernetesVersion)
		if localImage(ctx, pub) {
			return pub, "kind's published image (present locally)", nil
		}
		pull := c.opts.Puller
		if pull == nil {
			pull = func(image string) error { return dockerPull(ctx, image) }
		}
		perr := pull(pub)
		if perr == nil {
			return pub, "kind's published image (pulled)", nil
		}
		if c.opts.NodeImage == NodeImagePublished {
			return "", "", fmt.Errorf("pull %s: %w (use --node-image offline where nothing can be pulled)", pub, perr)
		}
		c.opts.Logger.Warn("cannot pull kind's published node image; building the offline one", "image", pub, "err", perr)
		img, err := c.buildOffline(ctx)
		return img, "offline build (published image could not be pulled)", err
	default:
		return c.opts.NodeImage, "given image", nil
	}
}

func (c *Cluster) buildOffline(ctx context.Context) (string, error) {
	v := nodeimage.DefaultVersions()
	v.Kubernetes = c.opts.KubernetesVersion
	opts := append([]nodeimage.Option{
		nodeimage.WithVersions(v),
		nodeimage.WithCacheDir(c.opts.CacheDir),
		nodeimage.WithLogger(c.opts.Logger),
	}, c.opts.NodeImageOptions...)
	b, err := nodeimage.New(opts...)
	if err != nil {
		return "", err
	}
	res, err := b.Build(ctx)
	if err != nil {
		return "", err
	}
	return res.Image, nil
}

func localImage(ctx context.Context, image string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).Run() == nil
}

func dockerPull(ctx context.Context, image string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "pull", image).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) createAction(ctx context.Context, st *createState) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(c.opts.Kubeconfig), 0o755); err != nil {
		return false, fmt.Errorf("kubeconfig directory: %w", err)
	}
	if err := writeRecord(c.opts.CacheDir, Record{
		Name: c.opts.Name, NodeImage: st.image, Kubeconfig: c.opts.Kubeconfig,
		Workers: c.opts.Workers, Created: time.Now().UTC(),
	}); err != nil {
		return false, err
	}
	cfg := KindConfig(c.opts, st.image)
	done := make(chan error, 1)
	go func() {
		done <- c.provider.Create(c.opts.Name,
			kindcluster.CreateWithV1Alpha4Config(cfg),
			kindcluster.CreateWithNodeImage(st.image),
			kindcluster.CreateWithRetain(c.opts.KeepOnFailure),
			kindcluster.CreateWithKubeconfigPath(c.opts.Kubeconfig),
			kindcluster.CreateWithDisplayUsage(false),
			kindcluster.CreateWithDisplaySalutation(false),
		)
	}()
	select {
	case err := <-done:
		if err != nil {
			if c.opts.KeepOnFailure {
				return false, fmt.Errorf("kind create: %w (nodes kept for inspection; idharness cluster delete --name %s removes them)", err, c.opts.Name)
			}
			// kind removes the nodes itself when not retaining.
			removeRecord(c.opts.CacheDir, c.opts.Name)
			return false, fmt.Errorf("kind create: %w (rerun with --keep-on-failure to inspect the nodes)", err)
		}
		return false, nil
	case <-ctx.Done():
		// kind's create cannot be cancelled: remove the nodes under it so it
		// fails fast, wait for it, then remove anything it made meanwhile.
		c.opts.Logger.Warn("interrupted: removing the partly created cluster", "cluster", c.opts.Name)
		c.deleteKind()
		<-done
		if err := c.deleteKind(); err != nil {
			return false, errors.Join(ctx.Err(), err)
		}
		removeRecord(c.opts.CacheDir, c.opts.Name)
		return false, ctx.Err()
	}
}

// waitNewAction is waitAction for the nodes createAction made, with
// Options.WhileWaiting beside it.
func (c *Cluster) waitNewAction(ctx context.Context, st *createState) (bool, error) {
	if c.opts.WhileWaiting == nil {
		return c.waitAction(ctx, st)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	side := make(chan error, 1)
	go func() { side <- c.opts.WhileWaiting(ctx) }()
	_, err := c.waitAction(ctx, st)
	if err != nil {
		cancel()
	}
	if serr := <-side; serr != nil && err == nil {
		err = serr
	}
	return false, err
}

func (c *Cluster) waitAction(ctx context.Context, st *createState) (bool, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return false, err
	}
	h, err := WaitHealthy(ctx, cfg, c.opts.WaitTimeout, func(h Health) {
		c.opts.Logger.Info("waiting", "cluster", c.opts.Name, "health", h.String())
	})
	st.info.Health = h
	if err != nil && !c.Existing() && ctx.Err() != nil && !c.opts.KeepOnFailure {
		// Interrupted before the cluster was usable: leave nothing behind.
		c.opts.Logger.Warn("interrupted: deleting the cluster", "cluster", c.opts.Name)
		c.deleteKind()
		removeRecord(c.opts.CacheDir, c.opts.Name)
	}
	return false, err
}

// deleteKind deletes the kind cluster (its node containers and its context
// in the kubeconfig).
func (c *Cluster) deleteKind() error {
	if err := c.provider.Delete(c.opts.Name, c.opts.Kubeconfig); err != nil {
		return fmt.Errorf("delete kind cluster %s: %w", c.opts.Name, err)
	}
	return nil
}

// Delete deletes the cluster, its kubeconfig and its record. In existing
// mode it deletes nothing.
func (c *Cluster) Delete(ctx context.Context) error {
	if c.Existing() {
		c.opts.Logger.Info("existing cluster: nothing to delete", "kubeconfig", c.opts.Kubeconfig)
		return nil
	}
	start := time.Now()
	if err := c.deleteKind(); err != nil {
		return err
	}
	if filepath.Dir(c.opts.Kubeconfig) == recordDir(c.opts.CacheDir, c.opts.Name) {
		os.Remove(c.opts.Kubeconfig)
	}
	if err := removeRecord(c.opts.CacheDir, c.opts.Name); err != nil {
		return fmt.Errorf("remove record of %s: %w", c.opts.Name, err)
	}
	c.opts.Logger.Info("cluster deleted", "cluster", c.opts.Name, "duration", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Status describes a cluster for `idharness cluster status`.
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

// Status reports whether the cluster exists, its nodes and its health.
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	s := Status{Name: c.opts.Name, Kubeconfig: c.opts.Kubeconfig}
	if !c.Existing() {
		ok, err := c.exists()
		if err != nil {
			return s, err
		}
		s.Exists = ok
		if !ok {
			return s, nil
		}
		ns, err := c.provider.ListNodes(c.opts.Name)
		if err != nil {
			return s, fmt.Errorf("list nodes: %w", err)
		}
		for _, n := range ns {
			s.Nodes = append(s.Nodes, n.String())
		}
		slices.Sort(s.Nodes)
		s.NodeImage = c.nodeImageOfExisting()
		managed, _ := managedClusters(ctx, c.opts.CacheDir)
		s.Managed = slices.Contains(managed, c.opts.Name)
		if _, err := os.Stat(c.opts.Kubeconfig); err != nil {
			c.provider.ExportKubeConfig(c.opts.Name, c.opts.Kubeconfig, false)
		}
	} else {
		s.Exists = true
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		s.HealthErr = err.Error()
		return s, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	h, err := CheckHealth(cctx, cfg)
	if err != nil {
		s.HealthErr = err.Error()
	} else {
		s.Health = &h
	}
	return s, nil
}

// LoadImageArchive loads a Docker image archive into every node.
func (c *Cluster) LoadImageArchive(path string) error {
	if c.Existing() {
		return fmt.Errorf("existing cluster: load images into its registry instead of %s", path)
	}
	return images.LoadArchive(c.provider, c.opts.Name, path)
}

// Nodes returns the cluster's kind nodes.
func (c *Cluster) Nodes() ([]nodes.Node, error) {
	if c.Existing() {
		return nil, fmt.Errorf("existing cluster: no kind nodes")
	}
	return c.provider.ListNodes(c.opts.Name)
}

// managedClusters returns the names of kind clusters idharness created: those
// whose nodes carry idharness's label (the offline node image sets it) and
// those recorded in the cache directory.
func managedClusters(ctx context.Context, cacheDir string) ([]string, error) {
	set := map[string]bool{}
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a",
		"--filter", "label="+images.LabelManaged+"=true",
		"--filter", "label="+kindClusterLabel,
		"--format", `{{.Label "`+kindClusterLabel+`"}}`).Output()
	if err != nil {
		return nil, fmt.Errorf("list idharness containers: %w (is Docker running? make prereqs)", err)
	}
	for _, n := range strings.Fields(string(out)) {
		set[n] = true
	}
	recs, _ := Records(cacheDir)
	for _, r := range recs {
		set[r.Name] = true
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// DeleteAll deletes every cluster idharness created (see managedClusters)
// and any leftover idharness build containers, and returns the deleted
// cluster names.
func DeleteAll(ctx context.Context, opts ...Option) ([]string, error) {
	o, err := resolve(opts...)
	if err != nil {
		return nil, err
	}
	names, err := managedClusters(ctx, o.CacheDir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, n := range names {
		c, err := New(append(opts, WithName(n), WithKubeconfig(""))...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.Delete(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Containers of interrupted node image builds carry the label but no
	// cluster label.
	out, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label="+images.LabelManaged+"=true").Output()
	if err == nil {
		for _, id := range strings.Fields(string(out)) {
			if err := exec.CommandContext(ctx, "docker", "rm", "-f", id).Run(); err != nil {
				errs = append(errs, fmt.Errorf("remove container %s: %w", id, err))
			}
		}
	}
	return names, errors.Join(errs...)
}
