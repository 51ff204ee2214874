package nodeimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// docker runs the docker CLI (as kind's own docker provider does) and returns
// its trimmed standard output. stdin may be nil.
func docker(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		what := strings.Join(args, " ")
		if len(what) > 120 {
			what = what[:120] + "…"
		}
		return "", fmt.Errorf("docker %s: %w: %s", what, err, tail(strings.TrimSpace(stderr.String()+"\n"+stdout.String()), 20))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// imageLabel returns the value of label on a local image.
func imageLabel(ctx context.Context, image, label string) (string, error) {
	return docker(ctx, nil, "image", "inspect", "--format", fmt.Sprintf("{{index .Config.Labels %q}}", label), image)
}

// preflight checks the tools the build needs and says how to get them.
func (b *Builder) preflight(ctx context.Context) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker CLI not found: install docker.io and start dockerd (make docker, or hack/docker.sh)")
	}
	if _, err := docker(ctx, nil, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("no Docker engine answers: start one (make docker, or hack/docker.sh): %w", err)
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("mmdebstrap not found: apt-get install mmdebstrap (hack/ci-cluster.sh installs it)")
	}
	if _, err := exec.LookPath(b.goCmd); err != nil {
		return fmt.Errorf("go command %q not found: the node image builds Kubernetes from Go modules", b.goCmd)
	}
	return nil
}
