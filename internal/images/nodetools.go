package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kind/pkg/exec"
)

// NodeTool is a set of programs an image takes from the file system of a
// cluster node rather than from a package repository: the node's own
// binaries, with the shared libraries they load, so that a program that
// runs them (NMI runs iptables) uses exactly what kube-proxy on that node
// uses, with no base image and no registry.
type NodeTool struct {
	// Programs are looked up on the node's PATH; each is copied to the
	// same path with every library `ldd` names for it.
	Programs []string
	// Dirs are shell globs of directories copied whole (plug-ins the
	// programs open at run time), with the libraries their *.so files need.
	Dirs []string
	// Links are symbolic links made in the image, path to target.
	Links map[string]string
	// Empty are directories the programs expect to exist (lock files).
	Empty []string
}

// NodeTools returns the tools an image may take from a node, by name.
func NodeTools() map[string]NodeTool {
	xt := "xtables-nft-multi"
	links := map[string]string{}
	// The names go-iptables and other callers run; the multi-call binary
	// acts by the name it is called by. Only the nft backend: it is what
	// kind's node image (and kube-proxy on it) uses.
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		links["/usr/sbin/"+n] = xt
	}
	return map[string]NodeTool{
		"iptables": {Programs: []string{xt}, Dirs: []string{"/usr/lib/*/xtables", "/usr/lib/xtables"}, Links: links, Empty: []string{"/run"}},
	}
}

// NodeToolNames returns the names NodeTools knows, sorted.
func NodeToolNames() []string {
	var n []string
	for k := range NodeTools() {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// NodeToolFiles copies the named tools from node (a kind node; any
// exec.Cmder whose commands run on a Linux file system with sh, ldd and
// tar) and returns them as layer files.
func NodeToolFiles(ctx context.Context, node exec.Cmder, names []string) ([]File, error) {
	known := NodeTools()
	var programs, dirs []string
	var files []File
	for _, n := range names {
		t, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("node tool %q is not known: use one of %s", n, strings.Join(NodeToolNames(), ", "))
		}
		programs = append(programs, t.Programs...)
		dirs = append(dirs, t.Dirs...)
		for p, target := range t.Links {
			files = append(files, File{Path: p, Link: target})
		}
		for _, d := range t.Empty {
			files = append(files, File{Path: d, Dir: true})
		}
	}
	if len(programs)+len(dirs) == 0 {
		return files, nil
	}
	var stdout, stderr bytes.Buffer
	err := node.CommandContext(ctx, "sh", "-c", nodeToolScript, "sh", strings.Join(programs, " "), strings.Join(dirs, " ")).
		SetStdout(&stdout).SetStderr(&stderr).Run()
	if err != nil {
		return nil, fmt.Errorf("copy %s from the node: %v: %s (the node image must have them, as kind's does)", strings.Join(names, ", "), err, strings.TrimSpace(stderr.String()))
	}
	copied, err := tarFiles(&stdout)
	if err != nil {
		return nil, fmt.Errorf("copy %s from the node: %w", strings.Join(names, ", "), err)
	}
	return append(copied, files...), nil
}

// nodeToolScript writes a tar of the programs ($1, space-separated, looked
// up on PATH), the directories matching the globs in $2 and every library
// ldd names for either, links dereferenced (/lib is a link on merged-/usr
// systems; the image gets the files).
const nodeToolScript = `set -eu
files=""
for p in $1; do
  b=$(command -v "$p") || { echo "$p is not on the node's PATH" >&2; exit 1; }
  files="$files $b $(ldd "$b" | grep -o '/[^ ]*' || true)"
done
for d in $2; do
  [ -d "$d" ] || continue
  files="$files $d $(ldd "$d"/*.so 2>/dev/null | grep -v ':$' | grep -o '/[^ ]*' || true)"
done
printf '%s\n' $files | sort -u | tar -c -h -f - -T - 2>/dev/null
`

// tarFiles reads a tar stream into layer files held in memory (the tools
// are a few megabytes). Hard links, which tar writes for a file named
// twice through links, become copies.
func tarFiles(r io.Reader) ([]File, error) {
	tr := tar.NewReader(r)
	data := map[string][]byte{}
	var out []File
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the tar: %w", err)
		}
		p := path.Clean("/" + h.Name)
		f := File{Path: p, Mode: int64(h.FileInfo().Mode().Perm())}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Dir = true
		case tar.TypeSymlink:
			f.Link = h.Linkname
		case tar.TypeLink:
			b, ok := data[path.Clean("/"+h.Linkname)]
			if !ok {
				return nil, fmt.Errorf("%s links to %s, which is not in the tar", p, h.Linkname)
			}
			f.Data = b
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			data[p], f.Data = b, b
		default:
			continue
		}
		out = append(out, f)
	}
	if !slices.ContainsFunc(out, func(f File) bool { return !f.Dir }) {
		return nil, errors.New("the tar holds no file")
	}
	return out, nil
}
