// Package dnsfaulttest runs the scenarios' DNS resolver on loopback for
// tests, with its pod played as the API server and the kubelet play it:
// a merge patch of the pod's faults annotation lands in the resolver's
// faults file (written as the kubelet writes a downward API file: a new
// file renamed over the old), and the pod's log is what the resolver
// wrote.
package dnsfaulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/idharness/idharness/internal/dnsfault"
)

// ResolvConf is the resolv.conf the resolver is started with: a pod's of
// namespace run.
const ResolvConf = "# a pod's\nsearch run.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"

// Pod is the resolver's pod: it implements dnsfault.PodAccess.
type Pod struct {
	// File is the resolver's faults file.
	File string

	mu  sync.Mutex
	log bytes.Buffer
	// Annotation, when set, replaces what a patch writes into File (a
	// test of what the resolver makes of a bad annotation).
	Annotation func(string) string
}

// Write is the resolver's log output.
func (p *Pod) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// Log returns the resolver's log so far.
func (p *Pod) Log(context.Context) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.log.Bytes()), nil
}

// Patch applies a merge patch of the pod's annotations: the faults
// annotation's new value goes into File.
func (p *Pod) Patch(_ context.Context, patch []byte) error {
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(patch, &m); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	v, ok := m.Metadata.Annotations[dnsfault.FaultsAnnotation]
	if !ok {
		return fmt.Errorf("patch %s: no %s annotation", patch, dnsfault.FaultsAnnotation)
	}
	if p.Annotation != nil {
		v = p.Annotation(v)
	}
	tmp := p.File + ".new"
	if err := os.WriteFile(tmp, []byte(v), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.File)
}

// Start starts a resolver on 127.0.0.1 in front of upstream (HOST:PORT)
// and returns its DNS address and its pod; the test's cleanup closes it.
func Start(t testing.TB, upstream string) (string, *Pod) {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte(ResolvConf), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := &Pod{File: filepath.Join(dir, "dns-faults")}
	srv, err := dnsfault.New(dnsfault.Config{DNS: "127.0.0.1:0", Upstream: upstream, ResolvConf: rc, FaultsFile: pod.File, Events: pod})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return addr, pod
}
