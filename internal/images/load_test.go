package images

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// An image built here holds a program and no C library: one that needs a C library
// or is no Linux program at all is refused with how to build a right one.
func TestCheckStatic(t *testing.T) {
	text := filepath.Join(t.TempDir(), "script")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	for _, tc := range []struct{ path, err string }{
		{path: "/bin/sh", err: "CGO_ENABLED=0"},
		{path: text, err: "not a Linux program"},
	} {
		if err := CheckStatic(tc.path, "runner image"); err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "runner image: ") {
			t.Errorf("CheckStatic(%s) = %v; want error %q", tc.path, err, tc.err)
		}
	}
	// The accepting path is the e2e test's: `registry start` with a
	// CGO_ENABLED=0 build (a test binary built with -race links cgo).
}

// Nodes are loaded at most limit at once, every one of them even when some
// fail, and the errors come back in node order.
func TestLoadEach(t *testing.T) {
	for _, tc := range []struct {
		name         string
		nodes, limit int
		fail         []int
		want         string
	}{
		{name: "one node", nodes: 1, limit: 3},
		{name: "more nodes than the limit", nodes: 7, limit: 3},
		{name: "limit one: one at a time", nodes: 4, limit: 1},
		{name: "failures in node order", nodes: 6, limit: 3, fail: []int{4, 1}, want: "node 1 failed\nnode 4 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			running, most, done := 0, 0, map[int]bool{}
			nodes := make([]int, tc.nodes)
			for i := range nodes {
				nodes[i] = i
			}
			err := loadEach(nodes, tc.limit, func(n int) error {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				running--
				done[n] = true
				mu.Unlock()
				if slices.Contains(tc.fail, n) {
					return fmt.Errorf("node %d failed", n)
				}
				return nil
			})
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
				t.Errorf("error = %v; want %q", err, tc.want)
			}
			if len(done) != tc.nodes {
				t.Errorf("%d nodes loaded; want all %d", len(done), tc.nodes)
			}
			if most > tc.limit || (tc.nodes >= tc.limit && most < tc.limit) {
				t.Errorf("%d loads at once; want %d", most, min(tc.limit, tc.nodes))
			}
		})
	}
}
