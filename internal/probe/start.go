package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"time"
)

// A probe started by an in-cluster scenario does not know its start when
// its pod is created: the runner sets it once every probe pod of the run
// is ready, so that a run waits as long as its pods need and no longer
// (a fixed lead had to cover a cold JVM on a loaded node, 55 s for five
// pods, most of it idle). Two things carry the handshake, neither of
// which gives the workload under test a way to change anything:
//
//   - readiness: once its clients are built (a client program has said
//     hello), the probe accepts TCP connections on a port and closes
//     them at once, for the pod's startupProbe (ListenReady);
//   - the start: the runner writes the run's zero time into an
//     annotation of the pod, which the kubelet projects into a file of a
//     downward API volume within about a second (0.5-1.0 s measured on
//     a kind node), and the probe reads it there (WaitStart).

// StartPoll is how often WaitStart reads the start file: small beside
// the margin the runner leaves between writing the start and the start.
const StartPoll = 50 * time.Millisecond

// WaitStart waits until the file at path holds a time (RFC 3339) and
// returns it. The file may be missing or empty until then (a downward
// API file of an annotation not yet set). It gives up when ctx ends.
func WaitStart(ctx context.Context, path string) (time.Time, error) {
	t := time.NewTicker(StartPoll)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return time.Time{}, fmt.Errorf("read the start file %s: %w", path, err)
		}
		if s := string(bytes.TrimSpace(b)); s != "" {
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return time.Time{}, fmt.Errorf("start file %s holds %q: want an RFC 3339 time such as 2026-01-02T15:04:05.5Z", path, s)
			}
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no start in %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// ListenReady accepts TCP connections on port (every address) and closes
// each at once, until the returned listener is closed: a startupProbe's
// tcpSocket check then passes. Nothing is read or written, so a peer
// learns only that the probe is ready.
func ListenReady(port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listen on the ready port %d: %w", port, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			_ = c.Close()
		}
	}()
	return ln, nil
}
