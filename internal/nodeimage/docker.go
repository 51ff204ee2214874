package nodeimage

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/idharness/idharness/internal/dockerenv"
)

// imageLabel returns the value of label on a local image.
func imageLabel(ctx context.Context, image, label string) (string, error) {
	return dockerenv.Run(ctx, nil, "image", "inspect", "--format", fmt.Sprintf("{{index .Config.Labels %q}}", label), image)
}

// prerequisite is a command the build runs and the Debian package that
// provides it. hack/prereqs.sh (make prereqs) installs the same list; a test
// keeps the two, and the README's Set-up section, in agreement.
type prerequisite struct{ command, pkg string }

var prerequisites = []prerequisite{
	{"dockerd", "docker.io"},
	{"mmdebstrap", "mmdebstrap"},
}

// preflight checks, before any work starts, every tool the build needs, and
// names all that are missing at once with the one command that installs them.
func (b *Builder) preflight(ctx context.Context) error {
	var missing []string
	for _, p := range prerequisites {
		if _, err := exec.LookPath(p.command); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	if _, err := exec.LookPath("docker"); err != nil && !slices.Contains(missing, "docker.io") {
		missing = append(missing, "docker.io")
	}
	if _, err := exec.LookPath(b.goCmd); err != nil {
		missing = append(missing, fmt.Sprintf("the go command %q (the node image builds Kubernetes from Go modules)", b.goCmd))
	}
	if len(missing) > 0 {
		return fmt.Errorf("the offline node image build needs %s, not found on PATH: run `make prereqs` as root (hack/prereqs.sh installs them all)", strings.Join(missing, ", "))
	}
	if _, err := dockerenv.Run(ctx, nil, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("no Docker engine answers: run `make prereqs` as root (it starts dockerd): %w", err)
	}
	return nil
}
