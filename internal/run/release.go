package run

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/internal/images"
	"github.com/idharness/idharness/internal/release"
)

// imageSource is where a run takes idharness's own images from: built
// from the source tree (o.ModuleDir), or loaded from a release (docs/
// release.md), which is what a binary used outside a checkout has.
type imageSource struct {
	o        Options
	programs map[string]string
	// rel is the release the images come from; nil: built from the tree.
	rel *release.Opened
}

// newImageSource chooses where the run's images come from: the release
// in o.ImagesDir when given; else the source tree in o.ModuleDir when it
// holds every program's package; else a release beside the running
// binary. When none provides them it says what is missing, where it
// looked and what to do — before any cluster is made.
func newImageSource(o Options, programs map[string]string) (*imageSource, error) {
	s := &imageSource{o: o, programs: programs}
	if o.ImagesDir != "" {
		rel, err := release.Find([]string{o.ImagesDir}, "linux", runtime.GOARCH)
		if err != nil {
			return nil, fmt.Errorf("--images %s: %w", o.ImagesDir, err)
		}
		if rel == nil {
			return nil, fmt.Errorf("--images %s: no %s there; give the directory of an idharness release (it holds %s and images/; make release builds one)", o.ImagesDir, release.ManifestFile, release.ManifestFile)
		}
		s.rel = rel
		return s, s.checkRelease()
	}
	missing := missingPackages(o.ModuleDir, programs)
	if len(missing) == 0 {
		return s, nil
	}
	dirs := release.BesideBinary()
	rel, err := release.Find(dirs, "linux", runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, fmt.Errorf("no images for this run: the source tree %s lacks %s, and no idharness release (%s) is beside the binary (looked in %s). Run from an idharness checkout (or --source DIR), or from a release: run its idharness binary, or give its directory with --images DIR (make release builds one; docs/release.md)",
			o.ModuleDir, strings.Join(missing, ", "), release.ManifestFile, strings.Join(dirs, ", "))
	}
	o.Log.Info("images from the release beside the binary: the source tree lacks the programs' packages", "release", rel.Root, "version", rel.Manifest.Version, "platform", rel.Platform.Name(), "tree", o.ModuleDir, "lacks", strings.Join(missing, ", "))
	s.rel = rel
	return s, s.checkRelease()
}

// missingPackages returns the programs' packages that dir lacks, as
// "name (package)", sorted.
func missingPackages(dir string, programs map[string]string) []string {
	var out []string
	for name, pkg := range programs {
		if m, _ := filepath.Glob(filepath.Join(dir, pkg, "*.go")); len(m) == 0 {
			out = append(out, name+" ("+pkg+")")
		}
	}
	sort.Strings(out)
	return out
}

// checkRelease fails when the release lacks an image the run needs: a
// program's, or a client program's that --client-images asks for.
func (s *imageSource) checkRelease() error {
	p := s.rel.Platform
	where := fmt.Sprintf("the release in %s (%s, %s)", s.rel.Root, s.rel.Manifest.Version, p.Name())
	var missing []string
	for name := range s.programs {
		if _, ok := p.Image(release.KindProgram, name); !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s has no image of %s; use the release of the idharness binary you run (idharness version), or run from an idharness checkout", where, strings.Join(missing, ", "))
	}
	build, _, _, err := clientPrograms(s.o)
	if err != nil {
		return err
	}
	var why []string
	var have []string
	for _, img := range p.Images {
		if img.Kind == release.KindClient {
			have = append(have, img.Name)
		}
	}
	for _, c := range build {
		if _, ok := p.Image(release.KindClient, c.Name); ok {
			continue
		}
		missing = append(missing, c.Name)
		reason := "not built into this release (make release CLIENT_IMAGES=...)"
		if i := slices.IndexFunc(p.Missing, func(m release.Missing) bool { return m.Name == c.Name }); i >= 0 {
			reason = p.Missing[i].Why
		}
		why = append(why, c.Name+": "+reason)
	}
	if len(missing) == 0 {
		return nil
	}
	alt := "--client-images none (the Go clients, in the probe image, still run)"
	if len(have) > 0 {
		alt += " or --client-images " + strings.Join(have, ",")
	}
	return fmt.Errorf("%s has no image of client programs %s:\n  %s\nrun with %s, or from an idharness checkout on a %s machine, which builds them",
		where, strings.Join(missing, ", "), strings.Join(why, "\n  "), alt, p.Name())
}

// prebuild starts building the client programs' roots in the
// background (prebuildClientRoots); a release has its images already.
func (s *imageSource) prebuild(ctx context.Context) <-chan struct{} {
	if s.rel == nil {
		return prebuildClientRoots(ctx, s.o)
	}
	done := make(chan struct{})
	close(done)
	return done
}

// program returns the image of program name: built from the tree, or
// read from the release.
func (s *imageSource) program(ctx context.Context, name string) (images.Built, error) {
	start := time.Now()
	if s.rel != nil {
		img, _ := s.rel.Platform.Image(release.KindProgram, name)
		b, err := s.rel.LoadImage(img)
		if err == nil {
			s.o.Log.Info("image from the release", "image", b.Name, "elapsed", time.Since(start).Round(time.Millisecond))
		}
		return b, err
	}
	img := "idharness.local/" + name + ":" + s.o.ImageTag
	// The cache keeps each program's last build: a run whose programs did
	// not change links none of them.
	b, err := images.BuildGo(ctx, images.GoProgram{Package: s.programs[name], ModuleDir: s.o.ModuleDir, Image: img, User: userFor(name), CacheDir: s.o.cacheDir()})
	if err != nil {
		return images.Built{}, fmt.Errorf("build image %s: %w", img, err)
	}
	s.o.Log.Info("image built", "image", img, "elapsed", time.Since(start).Round(time.Millisecond))
	return b, nil
}

// clients returns the client programs' images, by program: built with
// the probe among built, or read from the release.
func (s *imageSource) clients(ctx context.Context, built []images.Built) (map[string]images.Built, error) {
	if s.rel == nil {
		return buildClientImages(ctx, s.o, built)
	}
	build, _, _, err := clientPrograms(s.o)
	if err != nil {
		return nil, err
	}
	out := map[string]images.Built{}
	for _, c := range build {
		img, _ := s.rel.Platform.Image(release.KindClient, c.Name) // checkRelease made sure
		b, err := s.rel.LoadImage(img)
		if err != nil {
			return nil, err
		}
		out[c.Name] = b
	}
	return out, nil
}

// ReleasePrograms are the Go programs a release packages: every image any
// run may deploy (Programs, every registered component's and Declared), plus
// which binaries ship beside idharness (fakeimds, for running it alone).
func ReleasePrograms() []release.Program {
	all := knownPrograms()
	out := make([]release.Program, 0, len(all))
	for name, pkg := range all {
		out = append(out, release.Program{Name: name, Package: pkg, User: userFor(name), Binary: name == "fakeimds"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ReleaseClients are the client programs a release packages, chosen as
// a run's --client-images chooses them (o.ClientImages, o.CacheDir,
// o.Log), and the builder of their roots for a GOARCH. A root of
// another architecture than this machine's runs setup (hack/binfmt.sh)
// first when qemu-user is not registered.
func ReleaseClients(o Options, setup func(context.Context, string) error) ([]*clients.Program, func(context.Context, *clients.Program, string) (string, error), error) {
	build, _, b, err := clientPrograms(o)
	if err != nil {
		return nil, nil, err
	}
	root := func(ctx context.Context, p *clients.Program, goarch string) (string, error) {
		ab := *b
		ab.Arch, ab.SetupEmulation = goarch, setup
		return ab.Root(ctx, p)
	}
	return build, root, nil
}
