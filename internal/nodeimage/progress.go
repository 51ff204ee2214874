package nodeimage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// defaultProgressEvery is how often a running phase says it is alive. The
// Kubernetes build is silent for many minutes otherwise.
const defaultProgressEvery = 20 * time.Second

// timingsFile records, in the cache directory, how long each phase of the
// last build on this machine took, so that the next one can say what to
// expect.
const timingsFile = "timings.json"

// minRecorded is the shortest phase worth recording: shorter ones were cache
// hits, which say nothing about a real build.
const minRecorded = 5 * time.Second

// status is a running phase's latest progress text, shown by its heartbeat.
type status struct{ text atomic.Pointer[string] }

// set replaces the progress text.
func (s *status) set(text string) { s.text.Store(&text) }

// get returns the progress text, "" if none was set.
func (s *status) get() string {
	if p := s.text.Load(); p != nil {
		return *p
	}
	return ""
}

// timings are phase durations by phase name.
type timings struct {
	mu   sync.Mutex
	path string
	last map[string]time.Duration
}

// loadTimings reads the durations of the last build in cacheDir (none if
// there was none).
func loadTimings(cacheDir string) *timings {
	t := &timings{path: filepath.Join(cacheDir, timingsFile), last: map[string]time.Duration{}}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return t
	}
	var secs map[string]float64
	if json.Unmarshal(b, &secs) == nil {
		for k, v := range secs {
			t.last[k] = time.Duration(v * float64(time.Second))
		}
	}
	return t
}

// expected returns how long phase took last time, 0 if unknown.
func (t *timings) expected(phase string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last[phase]
}

// record stores phase's duration if it did real work; errors are ignored
// (the record only improves progress messages).
func (t *timings) record(phase string, d time.Duration) {
	if d < minRecorded {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[phase] = d
	secs := map[string]float64{}
	for k, v := range t.last {
		secs[k] = v.Round(time.Second).Seconds()
	}
	b, err := json.MarshalIndent(secs, "", "  ")
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(t.path), 0o755) == nil {
		tmp := t.path + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, t.path)
		}
	}
}

// lineWriter calls fn with every complete line written to it.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
