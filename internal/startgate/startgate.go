// Package startgate lets the processes of one parallel run take turns at
// starting client runtimes.
//
// A conformance spec that runs every language's clients starts a dozen
// pods at once, each booting a runtime (a JVM, Node.js, Python): on two
// cores that burst takes the machine for several seconds. Two such bursts
// at once starve the clients themselves, and a client's own short
// deadline then fails a verdict that one process alone would pass
// (DefaultAzureCredential for JavaScript probes IMDS with a 1 s timeout;
// docs/conformance.md#side-by-side---parallel-n). So the processes of a
// parallel run share one gate, a file locked with flock(2), and a spec
// holds it while its runtimes start and run; what the specs do besides
// (waiting, API calls, Go clients) still runs side by side.
//
// A lock on a file, not a server: it needs no port or process of its
// own, and the kernel releases it when a process dies holding it.
package startgate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// pollInterval is how often a waiting Enter tries the lock again.
// flock's blocking form cannot be cancelled, and a spec must stop
// waiting when its context ends (Ctrl-C, a spec timeout).
const pollInterval = 50 * time.Millisecond

// Gate is a file-backed lock shared by processes. The zero value and a
// nil *Gate are open gates: Enter returns at once (a run in one
// process has no one to take turns with).
type Gate struct {
	path string
}

// New returns the gate backed by the file at path, created when first
// entered; an empty path gives an open gate. Every process of a run must
// be given the same path.
func New(path string) *Gate {
	return &Gate{path: path}
}

// Path is the gate's file, empty for an open gate.
func (g *Gate) Path() string {
	if g == nil {
		return ""
	}
	return g.path
}

// Enter waits until no other holder is inside, then holds the gate until
// leave is called. It returns ctx's error if ctx ends first. Holders in
// one process exclude each other too (each Enter opens the file anew, and
// flock locks belong to the open file).
func (g *Gate) Enter(ctx context.Context) (leave func(), err error) {
	if g == nil || g.path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(g.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start gate %s: %w (a parallel run's processes share this file)", g.path, err)
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("start gate %s: lock: %w", g.path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
