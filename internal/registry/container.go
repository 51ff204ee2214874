package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/idharness/idharness/internal/dockerenv"
	"github.com/idharness/idharness/internal/images"
)

// Container defaults: the names kind's local-registry recipe uses, with
// idharness's own container name.
const (
	DefaultContainer = "idh-registry"
	DefaultHostPort  = 5001
	// ContainerPort is the port the registry listens on inside its
	// container, which the kind nodes reach as CONTAINER:5000.
	ContainerPort = 5000
	// KindNetwork is the Docker network kind puts its nodes on.
	KindNetwork = "kind"
)

// StartOptions configure Start.
type StartOptions struct {
	// Name is the container's name, which the kind nodes resolve; empty
	// is DefaultContainer.
	Name string
	// HostPort is the port published on 127.0.0.1 for pushes from this
	// machine; 0 is DefaultHostPort.
	HostPort int
	// Network is the Docker network joined besides the default bridge;
	// empty is KindNetwork. A network that does not exist yet is skipped:
	// `idharness cluster create --registry-mirror` connects the
	// container once kind has made it.
	Network string
	// Executable is the idharness program the image is built from; empty
	// is this program. It must be statically linked (CGO_ENABLED=0), as
	// the image has no C library.
	Executable string
	// Log receives progress; nil is slog.Default().
	Log *slog.Logger
}

// Started describes a running registry container.
type Started struct {
	Name  string
	Image string
	// Push is the address this machine pushes to (localhost:PORT).
	Push string
	// Endpoint is the address the kind nodes pull from (http://NAME:5000).
	Endpoint string
}

// Mirror is the --registry-mirror value for `idharness cluster create`
// that makes kind nodes pull s.Push's images from s.Endpoint.
func (s Started) Mirror() string { return s.Push + "=" + s.Endpoint }

func (o *StartOptions) defaults() error {
	if o.Name == "" {
		o.Name = DefaultContainer
	}
	if o.HostPort == 0 {
		o.HostPort = DefaultHostPort
	}
	if o.Network == "" {
		o.Network = KindNetwork
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("registry image: find this program: %w", err)
		}
		o.Executable = exe
	}
	return nil
}

// Start runs the registry as a Docker container: an image holding only
// this program (built here, no base image, no pull), serving
// `idharness registry serve` on port 5000, published on 127.0.0.1:HostPort
// and joined to the kind network. A running container of the same name
// and image is kept.
func Start(ctx context.Context, o StartOptions) (Started, error) {
	if err := o.defaults(); err != nil {
		return Started{}, err
	}
	s := Started{Name: o.Name, Push: "localhost:" + strconv.Itoa(o.HostPort), Endpoint: "http://" + o.Name + ":" + strconv.Itoa(ContainerPort)}
	img, err := ensureImage(ctx, o)
	if err != nil {
		return Started{}, err
	}
	s.Image = img
	running, _ := dockerenv.Run(ctx, nil, "inspect", "--format", "{{.State.Running}} {{.Config.Image}}", o.Name)
	if running != "true "+img {
		if _, err := dockerenv.Run(ctx, nil, "rm", "-f", o.Name); err != nil && !strings.Contains(err.Error(), "No such container") {
			return Started{}, err
		}
		if _, err := dockerenv.Run(ctx, nil, "run", "-d", "--name", o.Name,
			"--label", images.LabelManaged+"=true", "--label", "io.idharness.role=registry",
			"-p", "127.0.0.1:"+strconv.Itoa(o.HostPort)+":"+strconv.Itoa(ContainerPort), img); err != nil {
			return Started{}, fmt.Errorf("start registry container %s: %w (is port %d free? give another --port)", o.Name, err, o.HostPort)
		}
	} else {
		o.Log.Info("registry container already running", "name", o.Name, "image", img)
	}
	if err := ConnectNetwork(ctx, o.Name, o.Network); err != nil {
		return Started{}, err
	}
	if err := waitReady(ctx, "http://127.0.0.1:"+strconv.Itoa(o.HostPort)+"/v2/", 30*time.Second); err != nil {
		logs, _ := dockerenv.Run(ctx, nil, "logs", "--tail", "20", o.Name)
		return Started{}, fmt.Errorf("registry container %s does not answer on %s: %w\n%s", o.Name, s.Push, err, logs)
	}
	return s, nil
}

// Stop removes the registry container name (its images go with it).
func Stop(ctx context.Context, name string) error {
	if name == "" {
		name = DefaultContainer
	}
	_, err := dockerenv.Run(ctx, nil, "rm", "-f", name)
	return err
}

// ConnectNetwork joins container to network unless it is already on it.
// A network that does not exist (no kind cluster was created on this
// machine yet) is not an error: the container is joined when a cluster
// that pulls from it is created.
func ConnectNetwork(ctx context.Context, container, network string) error {
	nets, err := dockerenv.Run(ctx, nil, "inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", container)
	if err != nil {
		return fmt.Errorf("registry container %s: %w (start it with `idharness registry start`)", container, err)
	}
	for _, n := range strings.Fields(nets) {
		if n == network {
			return nil
		}
	}
	if _, err := dockerenv.Run(ctx, nil, "network", "inspect", network); err != nil {
		return nil
	}
	if _, err := dockerenv.Run(ctx, nil, "network", "connect", network, container); err != nil {
		return fmt.Errorf("connect registry container %s to network %s: %w", container, network, err)
	}
	return nil
}

// ensureImage builds the registry image from o.Executable and loads it
// into Docker, unless Docker already has it. Its tag is the program's
// content hash, so a rebuilt idharness gets a new image.
func ensureImage(ctx context.Context, o StartOptions) (string, error) {
	if err := images.CheckStatic(o.Executable, "registry image"); err != nil {
		return "", err
	}
	f, err := os.Open(o.Executable)
	if err != nil {
		return "", fmt.Errorf("registry image: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("registry image: read %s: %w", o.Executable, err)
	}
	ref := "idharness.local/registry:" + hex.EncodeToString(h.Sum(nil))[:12]
	if _, err := dockerenv.Run(ctx, nil, "image", "inspect", ref); err == nil {
		return ref, nil
	}
	start := time.Now()
	root, err := images.Layer(append(images.MinimalRoot(), images.File{Path: "/var/lib/registry", Dir: true}))
	if err != nil {
		return "", err
	}
	app, err := images.Layer([]images.File{{Path: "/usr/local/bin/idharness", Source: o.Executable, Mode: 0o755}})
	if err != nil {
		return "", err
	}
	img, err := images.Assemble(images.Spec{
		Layers:     []v1.Layer{root, app},
		Entrypoint: []string{"/usr/local/bin/idharness", "registry", "serve", "--addr", ":" + strconv.Itoa(ContainerPort), "--dir", "/var/lib/registry"},
		Labels:     map[string]string{images.LabelManaged: "true", images.LabelSource: "idharness registry serve"},
	})
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "idharness-registry-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "registry.tar")
	if err := images.WriteArchive(archive, map[string]v1.Image{ref: img}); err != nil {
		return "", err
	}
	if _, err := dockerenv.Run(ctx, nil, "load", "-i", archive); err != nil {
		return "", fmt.Errorf("load registry image: %w", err)
	}
	o.Log.Info("registry image built", "image", ref, "elapsed", time.Since(start).Round(time.Millisecond))
	return ref, nil
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
