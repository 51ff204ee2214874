// Package registry puts idharness's images where a cluster can pull them:
// Push sends built images to an OCI registry with go-containerregistry and
// returns the digest references the manifests then name (REGISTRY/NAME@sha256:…),
// so that a run deploys exactly the bytes it built, whatever a tag points
// to later. Handler and Serve are a real OCI registry (go-containerregistry's
// pkg/registry) for tests and for users without one; Start runs it as a
// container on the kind network, built from this very program, since no
// registry image can be pulled where idharness is developed.
package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Source is one image to push.
type Source struct {
	// Local is the image's local reference, such as
	// idharness.local/fakeimds:dev: its repository path (without the
	// registry host) and tag name the pushed copy.
	Local string
	// Image is the image itself.
	Image v1.Image
}

// Pushed is an image as pushed.
type Pushed struct {
	// Local is the image's local reference (Source.Local).
	Local string `json:"local"`
	// Tag is the tag it was pushed under (REGISTRY/NAME:TAG).
	Tag string `json:"tag"`
	// Ref is the digest reference the manifests name: REGISTRY/NAME@sha256:…
	Ref string `json:"ref"`
	// ID is the digest of the image's configuration (its image ID, as
	// `crictl images` shows it).
	ID string `json:"id"`
}

// Options configure Push.
type Options struct {
	// Insecure speaks plain HTTP to the registry. Without it only
	// localhost, loopback and private addresses are tried over plain
	// HTTP (after HTTPS), as go-containerregistry does.
	Insecure bool
	// Keychain finds credentials; nil is the Docker configuration
	// (~/.docker/config.json, `docker login`).
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil is remote.DefaultTransport.
	Transport http.RoundTripper
	// Jobs is the number of concurrent uploads; 0 is 4.
	Jobs int
	// CheckTimeout bounds the check that the registry answers and lets
	// this client push; 0 is 30 s.
	CheckTimeout time.Duration
}

// Repository is where Push puts the images: a registry and a path in it.
type Repository struct {
	Registry name.Registry
	// Path is the path below the registry host, possibly empty.
	Path string
}

// String is the repository as given: HOST[/PATH].
func (r Repository) String() string {
	if r.Path == "" {
		return r.Registry.RegistryStr()
	}
	return r.Registry.RegistryStr() + "/" + r.Path
}

// ParseRepository checks a --image-registry value: a registry host with
// an optional path (localhost:5001/idharness), no tag and no digest.
func ParseRepository(repo string, insecure bool) (Repository, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	bad := func(why string) error {
		return fmt.Errorf("image registry %q: %s; give a registry host and an optional path, such as localhost:5001/idharness or registry.example.com/team/idharness", repo, why)
	}
	if repo == "" {
		return Repository{}, bad("empty")
	}
	if strings.Contains(repo, "@") {
		return Repository{}, bad("a digest is not a repository")
	}
	host, path, _ := strings.Cut(strings.TrimSuffix(repo, "/"), "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		// "idharness/x" would silently mean Docker Hub's index.docker.io.
		return Repository{}, bad("the first part is not a registry host (it has no dot, no port and is not localhost)")
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return Repository{}, bad(err.Error())
	}
	if path != "" {
		// A repository path below the host: lower case, no tag.
		if _, err := name.NewRepository(host+"/"+path, opts...); err != nil {
			return Repository{}, bad(err.Error())
		}
	}
	return Repository{Registry: reg, Path: path}, nil
}

// Target returns where a local image is pushed in repo: the local
// reference's repository path below repo, with its tag
// (idharness.local/fakeimds:dev → REPO/fakeimds:dev,
// mcr.microsoft.com/oss/nmi:v1 → REPO/oss/nmi:v1).
func Target(repo Repository, local string) (name.Tag, error) {
	t, err := name.NewTag(local)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image %q: %w", local, err)
	}
	// Docker Hub's official images are library/NAME: keep only NAME.
	path := strings.TrimPrefix(t.RepositoryStr(), "library/")
	if repo.Path != "" {
		path = repo.Path + "/" + path
	}
	return repo.Registry.Repo(path).Tag(t.TagStr()), nil
}

// Push pushes imgs to repo (a --image-registry value) and returns them by
// digest, in the order given. It first checks that the registry answers
// and lets this client push, so that an unreachable registry, refused
// credentials or a name the registry rejects fail in seconds with what to
// do, before any upload.
func Push(ctx context.Context, repo string, imgs []Source, o Options) ([]Pushed, error) {
	r, err := ParseRepository(repo, o.Insecure)
	if err != nil {
		return nil, err
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		o.Transport = remote.DefaultTransport
	}
	if o.Jobs == 0 {
		o.Jobs = 4
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if len(imgs) == 0 {
		return nil, nil
	}
	todo := make(map[name.Reference]remote.Taggable, len(imgs))
	from := make(map[string]string, len(imgs)) // target → local
	out := make([]Pushed, 0, len(imgs))
	for _, s := range imgs {
		t, err := Target(r, s.Local)
		if err != nil {
			return nil, err
		}
		if other, ok := from[t.String()]; ok && other != s.Local {
			return nil, fmt.Errorf("images %s and %s would both be pushed as %s (the registry host is dropped): rename one", other, s.Local, t)
		}
		from[t.String()] = s.Local
		d, err := s.Image.Digest()
		if err != nil {
			return nil, fmt.Errorf("image %s: digest: %w", s.Local, err)
		}
		id, err := s.Image.ConfigName()
		if err != nil {
			return nil, fmt.Errorf("image %s: config digest: %w", s.Local, err)
		}
		todo[t] = s.Image
		out = append(out, Pushed{Local: s.Local, Tag: t.String(), Ref: t.Context().Digest(d.String()).String(), ID: id.String()})
	}
	first, _ := Target(r, imgs[0].Local)
	if err := checkPush(ctx, first, o); err != nil {
		return nil, explain(r, err)
	}
	if err := remote.MultiWrite(todo, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.Keychain), remote.WithTransport(o.Transport), remote.WithJobs(o.Jobs)); err != nil {
		return nil, explain(r, err)
	}
	return out, nil
}

// checkPush is remote.CheckPushPermission bounded in time and cancellable:
// a registry that accepts connections and never answers must not hang the
// run.
func checkPush(ctx context.Context, ref name.Reference, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.CheckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- remote.CheckPushPermission(ref, o.Keychain, &ctxTransport{ctx: ctx, base: o.Transport})
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer in %s: %w", o.CheckTimeout, ctx.Err())
	}
}

// ctxTransport gives every request ctx, which CheckPushPermission does not.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// explain turns a push error into what failed and what to do.
func explain(r Repository, err error) error {
	host := r.Registry.RegistryStr()
	var terr *transport.Error
	var dns *net.DNSError
	var op *net.OpError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden || hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode)):
		return fmt.Errorf("registry %s refused this client a push to %s (HTTP %d): log in with `docker login %s` (idharness reads the Docker credentials, ~/.docker/config.json), or give an --image-registry you may push to: %w", host, r, terr.StatusCode, host, err)
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.NameInvalidErrorCode, transport.NameUnknownErrorCode)):
		return fmt.Errorf("registry %s does not accept the repository %s (HTTP %d): check the path of --image-registry (an organisation or project that exists, lower case): %w", host, r, terr.StatusCode, err)
	case errors.As(err, &unknownCA), errors.As(err, &hostname):
		return fmt.Errorf("registry %s: its TLS certificate is not trusted here: add its CA to the system's trust store (or for a plain HTTP registry use --image-registry-insecure): %w", host, err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("registry %s speaks plain HTTP: pass --image-registry-insecure: %w", host, err)
	case errors.As(err, &dns):
		return fmt.Errorf("registry %s is unreachable: host %q is unknown here (the push goes from this machine: use a name it resolves, such as localhost:PORT for a registry whose port is published): %w", host, dns.Name, err)
	case errors.As(err, &op), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("registry %s is unreachable: is it running and is its port published to this machine? (`idharness registry start` runs one on localhost:5001; `docker ps` shows it): %w", host, err)
	}
	return fmt.Errorf("push to %s: %w", r, err)
}

// hasCode tells whether the registry's error names one of codes.
func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}
