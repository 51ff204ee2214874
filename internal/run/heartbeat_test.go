package run

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the heartbeat's goroutine.
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

func TestHeartbeatLogsUntilStopped(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	stop := heartbeat(log, "images", time.Now(), 10*time.Millisecond)
	// Wait for two lines rather than a fixed time: a loaded machine may
	// run the ticker late, and that is not what the test is about.
	for deadline := time.Now().Add(5 * time.Second); strings.Count(buf.String(), "phase running") < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 2 heartbeat lines in 5 s at a 10 ms interval:\n%s", buf.String())
		}
	}
	stop()
	n := strings.Count(buf.String(), `msg="phase running" name=images`)
	time.Sleep(30 * time.Millisecond)
	if m := strings.Count(buf.String(), "phase running"); m != n {
		t.Fatalf("heartbeat went on after stop: %d lines, then %d", n, m)
	}
}
