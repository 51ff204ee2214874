package partition

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// NodeNetNS opens the network namespace of a kind node, the Docker
// container named node, for Apply and Remove; the caller closes it. It
// needs the Docker engine that runs the node and root (the namespace of
// another process).
func NodeNetNS(ctx context.Context, node string) (*os.File, error) {
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Pid}}", node).Output()
	if err != nil {
		return nil, fmt.Errorf("find node %s's container (a partition needs a kind cluster on this machine's Docker engine): docker inspect: %w", node, err)
	}
	pid := strings.TrimSpace(string(out))
	if pid == "" || pid == "0" {
		return nil, fmt.Errorf("node %s's container is not running", node)
	}
	f, err := os.Open("/proc/" + pid + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open node %s's network namespace (run as root): %w", node, err)
	}
	return f, nil
}
