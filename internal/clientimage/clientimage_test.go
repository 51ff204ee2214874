package clientimage

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnneeded(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/usr/share/doc/nodejs/changelog.gz", true},
		{"/usr/share/man/man1/node.1.gz", true},
		{"/usr/include/node/v8.h", true},
		{"/usr/bin/node", false},
		{"/usr/lib/node_modules/npm/package.json", false},
		{"/usr/share/docs/x", false},
		{"/usr/include", false},
	} {
		if got := unneeded(tc.path); got != tc.want {
			t.Errorf("unneeded(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// The Node.js package this machine kind ships (the JavaScript client's
// image takes it from the host) goes in with its program and without its
// headers and documentation.
func TestHostPackagesTarLeavesOutUnneeded(t *testing.T) {
	if err := exec.Command("dpkg-query", "-W", "nodejs").Run(); err != nil {
		t.Skip("package nodejs is not installed here")
	}
	path := filepath.Join(t.TempDir(), "host.tar")
	if err := hostPackagesTar(context.Background(), path, []string{"nodejs"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	node := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimPrefix(h.Name, "/")
		if unneeded(name) {
			t.Errorf("%s is in the image", name)
		}
		node = node || name == "/usr/bin/node"
	}
	if !node {
		t.Error("no /usr/bin/node in the image")
	}
}
