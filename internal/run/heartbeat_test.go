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
	time.Sleep(55 * time.Millisecond)
	stop()
	n := strings.Count(buf.String(), `msg="phase running" name=images`)
	if n < 2 {
		t.Fatalf("%d heartbeat lines in 55 ms at a 10 ms interval, want several:\n%s", n, buf.String())
	}
	time.Sleep(30 * time.Millisecond)
	if m := strings.Count(buf.String(), "phase running"); m != n {
		t.Fatalf("heartbeat went on after stop: %d lines, then %d", n, m)
	}
}
