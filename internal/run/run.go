// Package run is `idharness run`, the main job: bring up or reuse a
// cluster, build idharness's images and load them, deploy the stack, run
// the suites and write the report — an ordered list of phases, each timed
// and reported.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/cluster/constants"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/cluster"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/internal/registry"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/sut"
)

// Options configure a run.
type Options struct {
	// ClusterName is the kind cluster to create or reuse.
	ClusterName string
	// Kubeconfig selects an existing cluster; nothing is created or deleted.
	Kubeconfig string
	// Workers is the number of kind worker nodes (1: the node-scoped specs need two nodes).
	Workers int
	// NodeImage is auto, offline, published or an image name.
	NodeImage string
	// KeepCluster leaves a cluster this run created.
	KeepCluster bool
	// ReuseCluster reuses a healthy cluster of the same name.
	ReuseCluster bool
	// Seed is the chaos seed; 0 picks one.
	Seed int64
	// ReportDir receives the report.
	ReportDir string
	// ModuleDir is the idharness source tree the images are built from.
	ModuleDir string
	// ImagesDir is a release whose images the run loads instead of
	// building them (docs/release.md); empty: the source tree, else a
	// release beside the binary (newImageSource).
	ImagesDir string
	// CacheDir is idharness's cache (node images, clusters).
	CacheDir string
	// ClientImages names the client programs whose images are built and
	// whose clients the specs run besides the Go clients: nil means every
	// program whose image is not built only on request, "all" every
	// program, "none" none.
	ClientImages []string
	// ClientImagesOnWorkers loads the client images into two fifths of the
	// worker nodes only (every node of a cluster without workers;
	// clientNodes): the chaos suite's plays take workers, and
	// scenario.Pool sends the plays of client programs to the nodes that
	// have them.
	ClientImagesOnWorkers bool
	// ImageTag tags the images built for this run.
	ImageTag string
	// Claims are the identity modes the profile claims, recorded with
	// the stack (stack.Options.Claims).
	Claims []string
	// SUTs are the implementations declared as data that the run deploys
	// (sut.ForProfile, sut.WithCompanions): the implementation under test
	// first, then its companions. Their images are loaded, their
	// manifests deployed in this order after the components.
	SUTs []*sut.SUT
	// AllowAzureNodes deploys even onto Azure VMs, whose real IMDS
	// fakeimds then hides from their pods (off: such a cluster is refused).
	AllowAzureNodes bool
	// ImageRegistry, when set, is where the images are pushed and pulled
	// from by digest instead of being loaded into the nodes
	// (REGISTRY[/PATH], pushImages).
	ImageRegistry string
	// ImageRegistryInsecure speaks plain HTTP to ImageRegistry.
	ImageRegistryInsecure bool
	// RegistryMirrors are given to a kind cluster the run creates
	// (cluster.WithRegistryMirror).
	RegistryMirrors []cluster.Mirror
	// ExtraImages are images the caller built, by key: loaded or pushed
	// with the run's own and recorded under fixtures.Images.Extra (the
	// in-cluster runner's image).
	ExtraImages map[string]images.Built
	// Suite runs the suites against the deployed stack, on the cluster
	// behind kubeconfig (a parallel run's processes connect through it);
	// nil skips them.
	Suite func(ctx context.Context, s *stack.Stack, seed int64, kubeconfig string) error
	Log   *slog.Logger
}

// Phase is one timed step of a run.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	Err      string        `json:"error,omitempty"`
}

// Result is what a run did.
type Result struct {
	// Seed is the run's seed (given or picked).
	Seed       int64
	Phases     []Phase
	Stack      *stack.Stack
	Kubeconfig string
	Cluster    string
	// SUTImages are the images of each of Options.SUTs (by index) as
	// loaded, with IDs.
	SUTImages [][]sut.Loaded
	// Pushed are the images pushed to Options.ImageRegistry, by digest.
	Pushed []registry.Pushed
}

// Programs are the images idharness builds, by main package.
var Programs = map[string]string{
	"fakeimds": "./cmd/fakeimds",
	"probe":    "./cmd/probe",
	"vault":    "./cmd/vault",
}

// Declared are idharness's programs that only an implementation's
// declaration brings (sut.Image.Program), by main package: the reference
// pod identity node agent (fixtures/sut/reference). The reference
// webhook's (fixtures/sut/reference-webhook) is the authority
// component's too, whose init container runs it.
var Declared = map[string]string{
	"nodeagent": "./cmd/nodeagent",
}

// knownPrograms are every program of idharness a run may build: Programs,
// the components' and Declared, by name.
func knownPrograms() map[string]string {
	all := maps.Clone(Programs)
	for _, c := range stack.Components() {
		maps.Copy(all, c.Programs)
	}
	maps.Copy(all, Declared)
	return all
}

// programImages are the implementation's images of idharness's own
// programs (sut.Image.Program), as the images phase built and loaded (or
// pushed) them with the run's others: their references and IDs.
func programImages(s *sut.SUT, imgs fixtures.Images, ids map[string]string) []sut.Loaded {
	var out []sut.Loaded
	declared := s.Programs()
	for _, image := range slices.Sorted(maps.Keys(declared)) {
		ref := imgs.Ref(declared[image])
		out = append(out, sut.Loaded{Name: image, Ref: ref, ID: ids[ref]})
	}
	return out
}

// cacheDir is o.CacheDir, or idharness's default cache.
func (o Options) cacheDir() string {
	if o.CacheDir == "" {
		return nodeimage.DefaultCacheDir()
	}
	return o.CacheDir
}

// prepareSUTImages saves, builds or takes the implementations' images
// into dir, by implementation; node (nil when the run has no kind node)
// gives the node tools.
func prepareSUTImages(ctx context.Context, o Options, dir string, node kindexec.Cmder) ([][]sut.Loaded, error) {
	cache := o.cacheDir()
	out := make([][]sut.Loaded, len(o.SUTs))
	for i, s := range o.SUTs {
		l, err := s.PrepareImages(ctx, sut.ImageOptions{Dir: dir, CacheDir: cache, Node: node, Log: o.Log})
		if err != nil {
			return nil, fmt.Errorf("implementation %s (%s): %w", s.Name, s.File(), err)
		}
		out[i] = l
	}
	return out, nil
}

// Run executes the phases in order and stops at the first failure.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ImageTag == "" {
		o.ImageTag = "dev"
	}
	if o.Seed == 0 {
		// One seed for the whole run, recorded in the report, so that the
		// run can be replayed with --seed.
		o.Seed = rand.Int64N(1<<31) + 1
	}
	res := &Result{Cluster: o.ClusterName, Kubeconfig: o.Kubeconfig, Seed: o.Seed}
	var cl *cluster.Cluster
	// created: this run made the cluster (and deletes it unless kept);
	// loadedEarly: the images went in while it became ready.
	var created, loadedEarly bool
	imgs := fixtures.Images{Extra: map[string]string{}}
	imageIDs := map[string]string{}
	comps, err := stack.Selected(nil)
	if err != nil {
		return nil, err
	}
	programs := map[string]string{}
	for k, v := range Programs {
		programs[k] = v
	}
	for _, c := range comps {
		for k, v := range c.Programs {
			programs[k] = v
		}
	}
	known := knownPrograms()
	seen := map[string]bool{}
	for _, s := range o.SUTs {
		if seen[s.Name] {
			return nil, fmt.Errorf("implementation %s (%s): two implementations of the run have this name, which labels their objects: rename one", s.Name, s.File())
		}
		seen[s.Name] = true
		declared := s.Programs()
		for _, image := range slices.Sorted(maps.Keys(declared)) {
			name := declared[image]
			pkg, ok := known[name]
			if !ok {
				return nil, fmt.Errorf("implementation %s (%s): image %s: program %q is not one of idharness's programs: use %s", s.Name, s.File(), image, name, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
			}
			programs[name] = pkg
		}
	}
	names := make([]string, 0, len(programs))
	for n := range programs {
		names = append(names, n)
	}
	sort.Strings(names)
	src, err := newImageSource(o, programs)
	if err != nil {
		return nil, err
	}
	// The client programs' roots (apt, pip, npm, Maven: network and disk)
	// are built while the cluster phase builds the node image (compiling:
	// CPU), so that a first run pays for the longer of the two only.
	rootsCtx, cancelRoots := context.WithCancel(ctx)
	rootsDone := src.prebuild(rootsCtx)
	// Whatever ends the run, no mmdebstrap is left behind it.
	defer func() {
		cancelRoots()
		<-rootsDone
	}()
	// loadImages builds (or takes from the release) every image the run
	// deploys and loads it into the nodes, or pushes it (--image-registry).
	loadImages := func(ctx context.Context) error {
		var built []images.Built
		for _, name := range names {
			b, err := src.program(ctx, name)
			if err != nil {
				return err
			}
			built = append(built, b)
			imgs.Set(name, b.Name)
		}
		for _, k := range slices.Sorted(maps.Keys(o.ExtraImages)) {
			b := o.ExtraImages[k]
			built = append(built, b)
			imgs.Extra[k] = b.Name
		}
		<-rootsDone
		clientImgs, err := src.clients(ctx, built)
		if err != nil {
			return err
		}
		imgs.Clients = map[string]string{}
		var clientBuilt []images.Built
		for _, prog := range slices.Sorted(maps.Keys(clientImgs)) {
			b := clientImgs[prog]
			imgs.Clients[prog] = b.Name
			clientBuilt = append(clientBuilt, b)
		}
		if o.ImageRegistry != "" || cl.Existing() || !o.ClientImagesOnWorkers {
			built, clientBuilt = append(built, clientBuilt...), nil
		}
		if o.ImageRegistry != "" {
			return pushImages(ctx, o, cl, res, built, &imgs, imageIDs)
		}
		if cl.Existing() {
			o.Log.Warn("existing cluster: images are not loaded; make them pullable by its nodes, or push them with --image-registry (docs/registry.md)", "images", imgs)
			if len(o.SUTs) > 0 {
				// The manifests still need the images' references.
				dir, err := os.MkdirTemp("", "idharness-sut-images-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				res.SUTImages, err = prepareSUTImages(ctx, o, dir, nil)
				return err
			}
			return nil
		}
		dir, err := os.MkdirTemp("", "idharness-images-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		nodes, err := cl.Nodes()
		if err != nil {
			return err
		}
		var all []string
		for _, n := range nodes {
			all = append(all, n.String())
		}
		// load writes bs to one archive, records their IDs, and loads it
		// into those of into that lack one of them. A kept cluster run
		// again holds its last run's images, so it gets only what changed
		// (images.Lacking); a cluster this run made holds none yet.
		load := func(file string, bs []images.Built, into []string) error {
			want := map[string]string{}
			for _, b := range bs {
				id, err := b.Image.ConfigName()
				if err != nil {
					return fmt.Errorf("image %s: %w", b.Name, err)
				}
				want[b.Name] = id.String()
				imageIDs[b.Name] = id.String()
			}
			if !created {
				var targets []kindnodes.Node
				for _, n := range nodes {
					if slices.Contains(into, n.String()) {
						targets = append(targets, n)
					}
				}
				lacking := images.Lacking(targets, want)
				held := len(targets) - len(lacking)
				into = lacking
				if held > 0 {
					o.Log.Info("images already on nodes, not loaded again", "archive", file, "nodes", held)
				}
			}
			if len(into) == 0 {
				return nil
			}
			archive := filepath.Join(dir, file)
			if err := images.WriteBuiltArchive(archive, bs...); err != nil {
				return err
			}
			return images.LoadArchiveInto(cl.Provider(), res.Cluster, archive, into)
		}
		if err := load("images.tar", built, all); err != nil {
			return err
		}
		if len(clientBuilt) > 0 {
			// A chaos run's client programs play on some workers only
			// (scenario.Pool sends their plays there, pickNode a
			// scenario's): the images go there only.
			into := clientNodes(nodes)
			if len(into) < len(nodes) {
				imgs.ClientNodes = into
			}
			if err := load("client-images.tar", clientBuilt, into); err != nil {
				return err
			}
			o.Log.Info("client images loaded", "into", into)
		}
		if len(o.SUTs) == 0 {
			return nil
		}
		var node kindexec.Cmder
		if nodes, err := cl.Nodes(); err == nil && len(nodes) > 0 {
			node = nodes[0] // every node runs the same node image
		}
		if res.SUTImages, err = prepareSUTImages(ctx, o, dir, node); err != nil {
			return err
		}
		for i, ls := range res.SUTImages {
			for _, l := range ls {
				if err := images.LoadArchive(cl.Provider(), res.Cluster, l.Archive); err != nil {
					return fmt.Errorf("implementation %s, image %s: %w", o.SUTs[i].Name, l.Name, err)
				}
				imageIDs[l.Ref] = l.ID
				o.Log.Info("implementation image loaded", "implementation", o.SUTs[i].Name, "name", l.Name, "ref", l.Ref, "id", l.ID)
			}
		}
		return nil
	}
	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"cluster", func(ctx context.Context) error {
			opts := []cluster.Option{cluster.WithLogger(o.Log), cluster.WithReuse(o.ReuseCluster), cluster.WithWorkers(o.Workers)}
			if o.ClusterName != "" {
				opts = append(opts, cluster.WithName(o.ClusterName))
			}
			if o.Kubeconfig != "" {
				opts = append(opts, cluster.WithExistingKubeconfig(o.Kubeconfig))
			}
			if o.NodeImage != "" {
				opts = append(opts, cluster.WithNodeImage(o.NodeImage))
			}
			if o.CacheDir != "" {
				opts = append(opts, cluster.WithCacheDir(o.CacheDir))
			}
			for _, m := range o.RegistryMirrors {
				opts = append(opts, cluster.WithRegistryMirror(m.Host, m.Endpoint))
			}
			// A cluster Create makes gets its images while its nodes
			// register and kube-system starts, instead of after: the
			// images phase then has nothing left to load.
			opts = append(opts, cluster.WithWhileWaiting(func(ctx context.Context) error {
				created, res.Cluster = true, cl.Name()
				if err := loadImages(ctx); err != nil {
					return fmt.Errorf("images, loaded while the cluster became ready: %w", err)
				}
				loadedEarly = true
				return nil
			}))
			var err error
			if cl, err = cluster.New(opts...); err != nil {
				return err
			}
			info, err := cl.Create(ctx)
			if err != nil {
				return err
			}
			created = !info.Reused && !cl.Existing()
			res.Kubeconfig, res.Cluster = info.Kubeconfig, info.Name
			return nil
		}},
		{"images", func(ctx context.Context) error {
			if loadedEarly {
				o.Log.Info("images loaded while the cluster became ready")
			} else if err := loadImages(ctx); err != nil {
				return err
			}
			if res.SUTImages == nil {
				res.SUTImages = make([][]sut.Loaded, len(o.SUTs))
			}
			for i, s := range o.SUTs {
				res.SUTImages[i] = append(res.SUTImages[i], programImages(s, imgs, imageIDs)...)
			}
			return nil
		}},
		{"deploy", func(ctx context.Context) error {
			cfg, err := clientcmd.BuildConfigFromFlags("", res.Kubeconfig)
			if err != nil {
				return fmt.Errorf("kubeconfig %s: %w", res.Kubeconfig, err)
			}
			nodes, err := cl.Nodes()
			if err != nil && !cl.Existing() {
				return err
			}
			onlyOn := ""
			for _, n := range nodes {
				if r, _ := n.Role(); r == "worker" {
					onlyOn = n.String()
					break
				}
			}
			// The implementations after the components: the reference
			// webhook mounts the authority's CA.
			all := slices.Clone(comps)
			for i, s := range o.SUTs {
				all = append(all, s.Component(res.SUTImages[i]))
			}
			res.Stack, err = stack.Deploy(ctx, cfg, stack.Options{Images: imgs, ImageIDs: imageIDs, Claims: o.Claims, Agents: sut.Agents(o.SUTs),
				SUTs: sut.Names(o.SUTs), WIWebhook: sut.WIWebhook(o.SUTs), Identities: fixtures.DefaultIdentities(onlyOn), Seed: o.Seed, Components: all, ShadowMetadata: o.AllowAzureNodes}, o.Log)
			return err
		}},
		{"suites", func(ctx context.Context) error {
			if o.Suite == nil {
				return nil
			}
			return o.Suite(ctx, res.Stack, o.Seed, res.Kubeconfig)
		}},
	}
	var runErr error
	for _, p := range phases {
		start := time.Now()
		o.Log.Info("phase", "name", p.name)
		stopBeat := heartbeat(o.Log, p.name, start, runHeartbeat)
		err := p.fn(ctx)
		stopBeat()
		ph := Phase{Name: p.name, Duration: time.Since(start)}
		if err != nil {
			ph.Err = err.Error()
		}
		res.Phases = append(res.Phases, ph)
		o.Log.Info("phase done", "name", p.name, "elapsed", ph.Duration.Round(time.Millisecond), "ok", err == nil)
		if err != nil {
			runErr = fmt.Errorf("%s: %w", p.name, err)
			break
		}
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
	}
	if runErr != nil && cl != nil && !cl.Existing() && res.Cluster != "" && o.ReportDir != "" {
		// Keep the evidence of a failed run before the cluster goes:
		// node, kubelet, containerd and pod logs.
		dir := filepath.Join(o.ReportDir, "logs")
		if err := cl.Provider().CollectLogs(res.Cluster, dir); err != nil {
			o.Log.Warn("collect cluster logs", "err", err)
		} else {
			o.Log.Info("cluster logs collected", "dir", dir)
		}
	}
	if created && !o.KeepCluster && cl != nil {
		start := time.Now()
		// Delete even when ctx was cancelled (Ctrl-C): leave nothing behind.
		err := cl.Delete(context.WithoutCancel(ctx))
		res.Phases = append(res.Phases, Phase{Name: "delete cluster", Duration: time.Since(start)})
		if err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("delete cluster: %w", err))
		}
	}
	return res, runErr
}

// runHeartbeat is how often a long phase says it is still running: the
// images phase compiles for minutes on a cold machine, a cluster waits for
// nodes, and without a line nobody can tell a slow run from a hung one.
const runHeartbeat = 20 * time.Second

// heartbeat logs "phase running" every interval until stop is called.
// stop returns once the heartbeat's goroutine has, so no line follows it.
func heartbeat(log *slog.Logger, name string, start time.Time, interval time.Duration) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				log.Info("phase running", "name", name, "elapsed", time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// userFor returns the image user: fakeimds binds port 80 and changes the
// node's addresses, so it runs as root; the rest as nonroot.
func userFor(name string) string {
	if name == "fakeimds" {
		return "0:0"
	}
	return ""
}

// clientNodes returns the nodes a chaos run loads its client images
// into: two fifths of the workers by name (rounded up; 4 of 8 or of 10),
// not the control plane, on which no play runs; every node of a cluster
// without workers. The chaos suite's client-program plays, 7 of 28, take
// about a third of its plays' time (646 of 1,911 node-seconds in CI at
// 797ba98), so two fifths of the workers hold them. Unpacking them on a
// node costs 18 CPU-s; the other workers get nothing (their content
// only, for containerd to unpack on first use, cost 9 CPU-s a node and
// was never used: scenario.Pool and pickNode send every client-program
// play to the nodes that have them).
func clientNodes[N interface {
	String() string
	Role() (string, error)
}](nodes []N) []string {
	var workers, all []string
	for _, n := range nodes {
		all = append(all, n.String())
		if r, err := n.Role(); err == nil && r != constants.ControlPlaneNodeRoleValue {
			workers = append(workers, n.String())
		}
	}
	if len(workers) == 0 {
		slices.Sort(all)
		return all
	}
	slices.Sort(workers)
	return workers[:(2*len(workers)+4)/5]
}
