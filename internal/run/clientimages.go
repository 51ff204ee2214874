package run

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/internal/clientimage"
	"github.com/idharness/idharness/internal/images"
)

// clientPrograms returns the client programs whose images this run
// builds (--client-images), those it leaves out, and the builder of their
// images.
func clientPrograms(o Options) (build, skip []*clients.Program, b *clientimage.Builder, err error) {
	reg, err := clients.Builtin()
	if err != nil {
		return nil, nil, nil, err
	}
	want, err := selectPrograms(reg, o.ClientImages)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, p := range reg.Programs() {
		switch {
		case want[p.Name]:
			build = append(build, p)
		case len(p.Command) > 0: // Go programs run in the probe image
			skip = append(skip, p)
		}
	}
	return build, skip, &clientimage.Builder{CacheDir: o.cacheDir(), Log: o.Log}, nil
}

// buildClientImages builds the image of every client program (Python,
// JavaScript, Java, the az CLI), each with the probe binary just built:
// their roots come from the cache after the first run, so this costs
// the layers' assembly only. With no probe among built (a tree without
// cmd/probe) it builds nothing.
func buildClientImages(ctx context.Context, o Options, built []images.Built) (map[string]images.Built, error) {
	probeBin := ""
	for _, b := range built {
		if b.Binary != "" && b.Name == "idharness.local/probe:"+o.ImageTag {
			probeBin = b.Binary
		}
	}
	if probeBin == "" {
		return nil, nil
	}
	build, skip, b, err := clientPrograms(o)
	if err != nil {
		return nil, err
	}
	for _, p := range skip {
		o.Log.Info("client image not built", "program", p.Name, "why", orDefault(p.Image.OnRequest, "not asked for (--client-images)"))
	}
	out := map[string]images.Built{}
	for _, p := range build {
		start := time.Now()
		root, err := b.Root(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("client program %s: %w", p.Name, err)
		}
		img, err := clientimage.Image(root, probeBin, "", p, clientimage.Name(p, o.ImageTag))
		if err != nil {
			return nil, err
		}
		o.Log.Info("client image built", "image", img.Name, "elapsed", time.Since(start).Round(time.Millisecond))
		out[p.Name] = img
	}
	return out, nil
}

// prebuildClientRoots builds the roots of the selected client programs
// in the background, one after another, and closes the returned channel
// when done. Errors are left for the images phase, which asks again (a
// cached root returns at once) and reports them.
func prebuildClientRoots(ctx context.Context, o Options) <-chan struct{} {
	done := make(chan struct{})
	build, _, b, err := clientPrograms(o)
	if err != nil || len(build) == 0 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for _, p := range build {
			if ctx.Err() == nil {
				_, _ = b.Root(ctx, p)
			}
		}
	}()
	return done
}

// selectPrograms returns the client programs whose images to build, from
// --client-images: nil for the default (every program not built only on
// request), "all", "none", or program names.
func selectPrograms(reg *clients.Registry, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	var known []string
	for _, p := range reg.Programs() {
		if len(p.Command) == 0 {
			continue // Go clients run in the probe image
		}
		known = append(known, p.Name)
		if names == nil && p.Image.OnRequest == "" || slices.Contains(names, "all") {
			out[p.Name] = true
		}
	}
	for _, n := range names {
		switch {
		case n == "all", n == "none":
		case slices.Contains(known, n):
			out[n] = true
		default:
			return nil, fmt.Errorf("--client-images: unknown program %q; want none, all or some of %s", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
