//go:build e2e

package cluster_test

import (
	"os/exec"
	"strings"
)

// dockerID returns the full ID of a container.
func dockerID(name string) (string, error) {
	out, err := exec.Command("docker", "inspect", "--format", "{{.Id}}", name).Output()
	return strings.TrimSpace(string(out)), err
}
