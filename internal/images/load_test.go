package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
