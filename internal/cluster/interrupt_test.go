//go:build e2e

package cluster_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestInterrupt sends Ctrl-C (SIGINT) to `idharness cluster create` while
// kind creates the nodes and while it waits for kube-system, and checks that
// no container of the cluster is left behind.
func TestInterrupt(t *testing.T) {
	// Beside TestSmoke, whose cluster it does not look at: it lists only
	// the containers labelled with its own cluster's name.
	t.Parallel()
	// IDHARNESS_BIN names a built idharness (hack/ci-cluster.sh passes its own).
	bin := os.Getenv("IDHARNESS_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "idharness")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/idharness")
		build.Dir = "../.."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build idharness: %v\n%s", err, out)
		}
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	nodeImage := os.Getenv("IDHARNESS_NODE_IMAGE")
	if nodeImage == "" {
		nodeImage = "offline"
	}
	// The node image must exist first, so the delays land in kind's phases.
	if out, err := exec.Command(bin, "cluster", "image", "build").CombinedOutput(); nodeImage == "offline" && err != nil {
		t.Fatalf("node image: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration
		phase string
	}{
		{"during kind create", 3 * time.Second, "create nodes (kind)"},
		{"during readiness wait", 0, "wait for nodes and kube-system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "idh-interrupt"
			var logs syncBuffer
			cmd := exec.Command(bin, "cluster", "create", "--name", name, "--node-image", nodeImage, "--reuse=false")
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until the phase starts (and for the delay), then interrupt.
			deadline := time.Now().Add(3 * time.Minute)
			for !strings.Contains(logs.String(), `action="`+tc.phase+`"`) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("phase %q never started:\n%s", tc.phase, logs.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(tc.delay)
			cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Logf("create finished before the interrupt took effect:\n%s", logs.String())
				}
			case <-time.After(3 * time.Minute):
				cmd.Process.Kill()
				t.Fatalf("create did not stop after SIGINT:\n%s", logs.String())
			}
			out, err := exec.Command("docker", "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster="+name, "--format", "{{.Names}}").Output()
			if err != nil {
				t.Fatal(err)
			}
			if left := strings.TrimSpace(string(out)); left != "" {
				exec.Command(bin, "cluster", "delete", "--name", name).Run()
				t.Fatalf("containers left after interrupt: %s\n%s", left, logs.String())
			}
			t.Logf("interrupted %s: no containers left", tc.phase)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
