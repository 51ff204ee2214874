package cluster

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster/nodes"

	"github.com/idharness/idharness/internal/registry"
)

// Mirror makes the nodes' containerd pull the images of Host (as image
// references name it, such as localhost:5001) from Endpoint (such as
// http://idh-registry:5000, a registry container on the kind network).
// This is kind's local-registry recipe: a node's "localhost" is the node
// itself, so the name this machine pushes to must be mapped to one the
// nodes reach. Plain HTTP is allowed for that host only.
type Mirror struct {
	Host     string
	Endpoint string
}

// certsDir is where the nodes' containerd reads per-registry hosts.toml
// files (config_path, set by containerdPatch).
const certsDir = "/etc/containerd/certs.d"

// containerdPatch points the CRI plugin's registry configuration at
// certsDir. containerd reads hosts.toml files there on every pull, so they
// can be written after the nodes start; config_path itself is read at
// start-up, hence a kind config patch (kind restarts containerd with it).
const containerdPatch = `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "` + certsDir + `"
`

// ParseMirror parses HOST=ENDPOINT (localhost:5001=http://idh-registry:5000).
func ParseMirror(s string) (Mirror, error) {
	host, endpoint, ok := strings.Cut(s, "=")
	bad := func(why string) (Mirror, error) {
		return Mirror{}, fmt.Errorf("registry mirror %q: %s; give HOST=ENDPOINT, such as localhost:5001=http://%s:%d (what `idharness registry start` prints)", s, why, registry.DefaultContainer, registry.ContainerPort)
	}
	if !ok || host == "" || endpoint == "" {
		return bad("not HOST=ENDPOINT")
	}
	if strings.Contains(host, "/") {
		return bad("HOST is a registry host[:port], without a scheme or a path")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return bad("ENDPOINT is a URL with http or https and a host, such as http://idh-registry:5000")
	}
	return Mirror{Host: host, Endpoint: u.Scheme + "://" + u.Host}, nil
}

// WithRegistryMirror makes the nodes pull host's images from endpoint
// (see Mirror). It applies to clusters this Cluster creates; a reused
// cluster whose nodes lack the mirror is recreated.
func WithRegistryMirror(host, endpoint string) Option {
	return func(o *Options) { o.Mirrors = append(o.Mirrors, Mirror{Host: host, Endpoint: endpoint}) }
}

// hostsTOML is the nodes' hosts.toml for m: m.Endpoint serves m.Host's
// images, and it alone (no fallback to the node's own localhost).
func (m Mirror) hostsTOML() string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", m.Endpoint, m.Endpoint)
}

// hostsPath is m's hosts.toml on a node.
func (m Mirror) hostsPath() string { return certsDir + "/" + m.Host + "/hosts.toml" }

// mirrorAction writes every mirror's hosts.toml on every node and joins
// an endpoint that is a Docker container (a registry started by
// `idharness registry start`) to the kind network, which exists now.
func (c *Cluster) mirrorAction(ctx context.Context, _ *createState) (bool, error) {
	ns, err := c.provider.ListNodes(c.opts.Name)
	if err != nil {
		return false, err
	}
	for _, m := range c.opts.Mirrors {
		for _, n := range ns {
			if err := writeNodeFile(n, m.hostsPath(), m.hostsTOML()); err != nil {
				return false, fmt.Errorf("registry mirror %s on node %s: %w", m.Host, n, err)
			}
		}
		u, _ := url.Parse(m.Endpoint)
		if host := u.Hostname(); !strings.Contains(host, ".") || strings.HasSuffix(host, ".local") {
			if err := registry.ConnectNetwork(ctx, host, registry.KindNetwork); err != nil {
				c.opts.Logger.Warn("registry mirror: the endpoint is not a Docker container this machine runs; the nodes must reach it by themselves", "endpoint", m.Endpoint, "err", err)
			}
		}
		c.opts.Logger.Info("registry mirror configured", "host", m.Host, "endpoint", m.Endpoint, "nodes", len(ns))
	}
	return false, nil
}

// hasMirrors tells whether every node of the existing cluster has every
// mirror's hosts.toml as this Cluster would write it.
func (c *Cluster) hasMirrors() bool {
	ns, err := c.provider.ListNodes(c.opts.Name)
	if err != nil {
		return false
	}
	for _, n := range ns {
		for _, m := range c.opts.Mirrors {
			var out strings.Builder
			if err := n.Command("cat", m.hostsPath()).SetStdout(&out).Run(); err != nil || out.String() != m.hostsTOML() {
				return false
			}
		}
		if len(c.opts.Mirrors) > 0 {
			var out strings.Builder
			if err := n.Command("cat", "/etc/containerd/config.toml").SetStdout(&out).Run(); err != nil || !strings.Contains(out.String(), certsDir) {
				return false
			}
		}
	}
	return true
}

// writeNodeFile writes content to path on node n.
func writeNodeFile(n nodes.Node, path, content string) error {
	dir := path[:strings.LastIndex(path, "/")]
	if err := n.Command("mkdir", "-p", dir).Run(); err != nil {
		return err
	}
	return n.Command("cp", "/dev/stdin", path).SetStdin(strings.NewReader(content)).Run()
}

// HasMirror tells whether every node of the kind cluster has a registry
// mirror for host (a hosts.toml), so that its pods can pull host's images.
func (c *Cluster) HasMirror(host string) (bool, error) {
	ns, err := c.Nodes()
	if err != nil {
		return false, err
	}
	for _, n := range ns {
		if err := n.Command("test", "-f", Mirror{Host: host}.hostsPath()).Run(); err != nil {
			return false, nil
		}
	}
	return len(ns) > 0, nil
}
