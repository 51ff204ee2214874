package nodeimage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// recipeVersion changes whenever the build recipe changes in a way the
// embedded assets do not show; it is part of every cache key.
const recipeVersion = "1"

// ImageRepository is the repository of the node images built here.
const ImageRepository = "idharness.local/kind-node"

// Labels set on the node image (and so on every kind node container created
// from it).
const (
	LabelManaged = "io.idharness.managed"
	LabelKey     = "io.idharness.node-image-key"
)

// defaultKindVersion is the sigs.k8s.io/kind module whose node files are
// used when the running binary does not record its kind dependency.
const defaultKindVersion = "v0.33.0"

//go:embed assets
var assets embed.FS

// Builder builds offline kind node images. Create one with New.
type Builder struct {
	versions    Versions
	cacheDir    string
	log         *slog.Logger
	goCmd       string
	nice        int
	mirrors     []string
	kindVersion string
	force       bool
	out         io.Writer
	// progressEvery is the heartbeat interval of running phases.
	progressEvery time.Duration
	timings       *timings
}

// Option configures a Builder.
type Option func(*Builder)

// WithVersions sets the versions to build (default DefaultVersions()).
func WithVersions(v Versions) Option { return func(b *Builder) { b.versions = v } }

// WithCacheDir sets the cache directory (default DefaultCacheDir()).
func WithCacheDir(dir string) Option { return func(b *Builder) { b.cacheDir = dir } }

// WithLogger sets the logger that receives progress (phase names, durations).
func WithLogger(l *slog.Logger) Option { return func(b *Builder) { b.log = l } }

// WithGo sets the go command used for the component builds (default "go").
func WithGo(goCmd string) Option { return func(b *Builder) { b.goCmd = goCmd } }

// WithNice runs the Go builds at this niceness (default 10; 0 disables), so
// that a long build leaves the machine responsive.
func WithNice(n int) Option { return func(b *Builder) { b.nice = n } }

// WithMirrors sets the Debian sources for mmdebstrap, each either a URL or a
// full "deb URL SUITE COMPONENTS" line (default: deb.debian.org with the
// suite, its updates and security updates).
func WithMirrors(m ...string) Option { return func(b *Builder) { b.mirrors = m } }

// WithForce rebuilds the node image even when one with the same key exists.
// Cached component binaries and archives are still reused.
func WithForce(force bool) Option { return func(b *Builder) { b.force = force } }

// WithCommandOutput sends the output of the long external commands
// (go build, mmdebstrap) to w; by default it is kept and shown only when
// they fail.
func WithCommandOutput(w io.Writer) Option { return func(b *Builder) { b.out = w } }

// WithProgressInterval sets how often a running phase logs that it is alive
// and how far it is (default 20s).
func WithProgressInterval(d time.Duration) Option { return func(b *Builder) { b.progressEvery = d } }

// New returns a Builder for the given options.
func New(opts ...Option) (*Builder, error) {
	b := &Builder{
		versions: DefaultVersions(),
		cacheDir: DefaultCacheDir(),
		log:      slog.Default(),
		goCmd:    "go",
		nice:     10,

		progressEvery: defaultProgressEvery,
	}
	for _, o := range opts {
		o(b)
	}
	if err := b.versions.Validate(); err != nil {
		return nil, err
	}
	if b.cacheDir == "" {
		return nil, fmt.Errorf("node image: no cache directory (set IDHARNESS_CACHE_DIR)")
	}
	if len(b.mirrors) == 0 {
		s := b.versions.Debian
		b.mirrors = []string{
			"deb http://deb.debian.org/debian " + s + " main",
			"deb http://deb.debian.org/debian " + s + "-updates main",
			"deb http://deb.debian.org/debian-security " + s + "-security main",
		}
	}
	if b.progressEvery <= 0 {
		b.progressEvery = defaultProgressEvery
	}
	b.timings = loadTimings(b.cacheDir)
	b.kindVersion = kindModuleVersion()
	return b, nil
}

// DefaultCacheDir returns $IDHARNESS_CACHE_DIR if set, /var/cache/idharness
// for root, and the user cache directory's idharness folder otherwise.
func DefaultCacheDir() string {
	if d := os.Getenv("IDHARNESS_CACHE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/idharness"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "idharness")
	}
	return filepath.Join(os.TempDir(), "idharness-cache")
}

// kindModuleVersion returns the version of sigs.k8s.io/kind this program was
// built with.
func kindModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "sigs.k8s.io/kind" {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				if d.Version != "" && d.Version != "(devel)" {
					return d.Version
				}
			}
		}
	}
	return defaultKindVersion
}

// Versions returns the versions the builder builds.
func (b *Builder) Versions() Versions { return b.versions }

// CacheDir returns the builder's cache directory.
func (b *Builder) CacheDir() string { return b.cacheDir }

// hashParts returns the hex SHA-256 of parts, each length-prefixed so that
// different splits never collide.
func hashParts(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// assetsDigest hashes every embedded asset (paths and contents).
func assetsDigest() (string, error) {
	var parts []string
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		parts = append(parts, p, string(b))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash node image assets: %w", err)
	}
	return hashParts(parts...), nil
}

// keys are the cache keys of the build's products.
type keys struct {
	rootfs, kube, etcd, coredns, crictl, pause, images, node string
}

func (b *Builder) keys() (keys, error) {
	ad, err := assetsDigest()
	if err != nil {
		return keys{}, err
	}
	v := b.versions
	arch := runtime.GOARCH
	var k keys
	k.rootfs = hashParts("rootfs", recipeVersion, arch, v.Debian, strings.Join(rootfsPackages, ","), strings.Join(b.mirrors, "|"), b.kindVersion, ad)
	k.kube = hashParts("kube", recipeVersion, arch, v.Kubernetes, kubeLdflags(v))
	k.etcd = hashParts("etcd", recipeVersion, arch, v.Etcd)
	corednsMain, err := assets.ReadFile("assets/coredns-main.go.txt")
	if err != nil {
		return keys{}, err
	}
	k.coredns = hashParts("coredns", recipeVersion, arch, v.CoreDNS, string(corednsMain))
	k.crictl = hashParts("crictl", recipeVersion, arch, v.Crictl)
	k.pause = hashParts("pause", recipeVersion, arch, ad)
	k.images = hashParts("images", recipeVersion, k.rootfs, k.kube, k.etcd, k.coredns, k.pause, v.Pause)
	k.node = hashParts("node", recipeVersion, k.images, k.crictl, v.Kubernetes, v.Pause)
	return k, nil
}

// Key returns the content key of the node image: it changes when any
// version or any part of the recipe changes.
func (b *Builder) Key() (string, error) {
	k, err := b.keys()
	return k.node, err
}

// ImageName returns the name of the node image the builder makes, such as
// idharness.local/kind-node:v1.34.4-0123456789ab.
func (b *Builder) ImageName() (string, error) {
	k, err := b.Key()
	if err != nil {
		return "", err
	}
	return ImageRepository + ":" + b.versions.Kubernetes + "-" + k[:12], nil
}

// Result describes a built (or reused) node image.
type Result struct {
	// Image is the node image name to give kind.
	Image string
	// Key is the image's content key.
	Key string
	// Cached tells that the image already existed and nothing was built.
	Cached bool
	// Duration is the time Build took.
	Duration time.Duration
}

// Build makes the node image unless one with the same content key exists in
// Docker, and returns its name. Cancelling ctx stops the external commands and
// removes the build container; partial products are never mistaken for
// complete ones on the next run.
func (b *Builder) Build(ctx context.Context) (Result, error) {
	start := time.Now()
	k, err := b.keys()
	if err != nil {
		return Result{}, err
	}
	image, _ := b.ImageName()
	res := Result{Image: image, Key: k.node}
	if !b.force {
		if got, err := imageLabel(ctx, image, LabelKey); err == nil && got == k.node {
			res.Cached = true
			res.Duration = time.Since(start)
			b.log.Info("node image up to date", "image", image, "duration", res.Duration.Round(time.Millisecond))
			return res, nil
		}
	}
	if err := b.preflight(ctx); err != nil {
		return Result{}, err
	}
	unlock, err := b.lock(ctx)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if !b.force {
		// Another process may have built it while this one waited.
		if got, err := imageLabel(ctx, image, LabelKey); err == nil && got == k.node {
			res.Cached = true
			res.Duration = time.Since(start)
			b.log.Info("node image built by another process", "image", image)
			return res, nil
		}
	}
	b.log.Info("building offline node image", "image", image, "kubernetes", b.versions.Kubernetes, "cache", b.cacheDir)

	var bins binaries
	var base string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// mmdebstrap is network and dpkg bound; it runs beside the Go builds.
		var err error
		base, err = b.baseImage(gctx, k)
		return err
	})
	g.Go(func() error {
		var err error
		bins, err = b.buildBinaries(gctx, k)
		return err
	})
	if err := g.Wait(); err != nil {
		return Result{}, interrupted(ctx, err)
	}
	archive, err := b.controlPlaneArchive(ctx, k, bins)
	if err != nil {
		return Result{}, interrupted(ctx, err)
	}
	if err := b.assemble(ctx, k, base, bins, archive, image); err != nil {
		return Result{}, interrupted(ctx, err)
	}
	b.prune(ctx, k, image, base)
	res.Duration = time.Since(start)
	b.log.Info("node image built", "image", image, "duration", res.Duration.Round(time.Second))
	return res, nil
}

// phase runs fn, logging its start, end and duration, and every
// progressEvery while it runs: the elapsed time, the progress fn reports
// through st, and how long the phase took in the last build on this machine.
func (b *Builder) phase(name string, fn func(st *status) error) error {
	start := time.Now()
	expected := b.timings.expected(name)
	if expected > 0 {
		b.log.Info("phase start", "phase", name, "last build took", expected.Round(time.Second))
	} else {
		b.log.Info("phase start", "phase", name)
	}
	st := &status{}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(b.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				args := []any{"phase", name, "elapsed", time.Since(start).Round(time.Second)}
				if p := st.get(); p != "" {
					args = append(args, "progress", p)
				}
				if expected > 0 {
					args = append(args, "last build took", expected.Round(time.Second))
				}
				b.log.Info("phase running", args...)
			}
		}
	}()
	err := fn(st)
	close(done)
	d := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		b.log.Error("phase failed", "phase", name, "duration", d, "err", err)
		return fmt.Errorf("%s: %w", name, err)
	}
	b.timings.record(name, d)
	b.log.Info("phase done", "phase", name, "duration", d)
	return nil
}

// cached runs build to produce path unless path exists. build gets a
// temporary path to write and the result is renamed into place.
func cached(path string, build func(tmp string) error) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	tmp := path + ".partial"
	os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return false, err
	}
	return false, os.Rename(tmp, path)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// interrupted turns the error of a cancelled build into one that says so.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted (%v); finished parts are cached, run the build again to continue", ctx.Err())
	}
	return err
}

// lock takes the cache directory's build lock, so that two builds (say a
// developer's and a test's) never write the same cache entries at once. It
// waits for the other build, or for ctx.
func (b *Builder) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(b.cacheDir, "build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("build lock: %w", err)
		}
		if !logged {
			b.log.Info("waiting for another node image build to finish", "lock", f.Name())
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
