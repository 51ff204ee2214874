package images

import (
	"bytes"
	"encoding/json"
	"fmt"

	"golang.org/x/sync/errgroup"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
)

// Lacking returns the names of those nodes whose containerd lacks one
// of want (an image's name and its ID, the digest of its config): the
// nodes an archive of want must still be loaded into, in the order
// given. A kept cluster run again holds the images of its last run, and
// loading them again took 18 s on 9 nodes for nothing. A node whose
// images cannot be listed counts as lacking them.
func Lacking(nodes []kindnodes.Node, want map[string]string) []string {
	lacks := make([]bool, len(nodes))
	var g errgroup.Group
	for i, n := range nodes {
		g.Go(func() error {
			var out bytes.Buffer
			if err := n.Command("crictl", "images", "-o", "json").SetStdout(&out).Run(); err != nil {
				lacks[i] = true
				return nil
			}
			held, err := heldImages(out.Bytes())
			lacks[i] = err != nil || !holdsAll(held, want)
			return nil
		})
	}
	g.Wait()
	var out []string
	for i, n := range nodes {
		if lacks[i] {
			out = append(out, n.String())
		}
	}
	return out
}

// heldImages reads `crictl images -o json`: each image name a node holds,
// with its ID.
func heldImages(listing []byte) (map[string]string, error) {
	var l struct {
		Images []struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
		} `json:"images"`
	}
	if err := json.Unmarshal(listing, &l); err != nil {
		return nil, fmt.Errorf("read crictl's image list: %w", err)
	}
	held := map[string]string{}
	for _, img := range l.Images {
		for _, t := range img.RepoTags {
			held[t] = img.ID
		}
	}
	return held, nil
}

// holdsAll reports whether held has every image of want, by name and ID.
func holdsAll(held, want map[string]string) bool {
	for name, id := range want {
		if held[name] != id {
			return false
		}
	}
	return true
}
