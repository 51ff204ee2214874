package cluster

import (
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// KindConfig returns the kind cluster configuration for the options: one
// control-plane node and o.Workers workers, all with image; with registry
// mirrors, containerd reads per-registry hosts.toml files.
func KindConfig(o Options, image string) *v1alpha4.Cluster {
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     o.Name,
		Nodes:    []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole, Image: image}},
	}
	for i := 0; i < o.Workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: image})
	}
	if len(o.Mirrors) > 0 {
		cfg.ContainerdConfigPatches = []string{containerdPatch}
	}
	return cfg
}

// KindConfigYAML renders KindConfig as YAML, as a kind config file would hold it.
func KindConfigYAML(o Options, image string) ([]byte, error) {
	return yaml.Marshal(KindConfig(o, image))
}
