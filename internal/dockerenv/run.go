package dockerenv

// Run is how the parts of idharness that talk to the local Docker engine
// outside kind (the node image build, the registry container) call the
// docker CLI, with one error shape for every failure.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Run runs the docker CLI (as kind's own docker provider does) and returns
// its trimmed standard output; stdin may be nil. A failure names the
// command (cut to 120 characters) and ends with the last 20 lines of what
// docker said, which is where its reason is.
func Run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
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
		return "", fmt.Errorf("docker %s: %w: %s", what, err, lastLines(strings.TrimSpace(stderr.String()+"\n"+stdout.String()), 20))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
