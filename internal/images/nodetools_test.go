package images

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kindexec "sigs.k8s.io/kind/pkg/exec"
)

// TestNodeToolFiles copies iptables from this machine, standing in for a
// node (the same commands, run locally instead of in the node's
// container), and runs the copy with only the copied libraries.
func TestNodeToolFiles(t *testing.T) {
	if _, err := exec.LookPath("xtables-nft-multi"); err != nil {
		t.Skip("this machine has no xtables-nft-multi to copy (apt-get install iptables)")
	}
	files, err := NodeToolFiles(context.Background(), kindexec.DefaultCmder, []string{"iptables"})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	prog, ok := byPath["/usr/sbin/xtables-nft-multi"]
	if !ok || len(prog.Data) == 0 || prog.Mode&0o111 == 0 {
		t.Fatalf("no executable /usr/sbin/xtables-nft-multi among %d files", len(files))
	}
	if l := byPath["/usr/sbin/iptables"]; l.Link != "xtables-nft-multi" {
		t.Errorf("/usr/sbin/iptables links to %q, want xtables-nft-multi", l.Link)
	}
	if !byPath["/run"].Dir {
		t.Error("no /run")
	}
	if !slices.ContainsFunc(files, func(f File) bool { return strings.Contains(f.Path, "/xtables/libxt_") }) {
		t.Error("no xtables extension (libxt_*.so)")
	}

	// Write the files out and run the program through the copied dynamic
	// loader with the copied libraries only: any library missing fails.
	root := t.TempDir()
	var loader string
	var libDirs []string
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		switch {
		case f.Dir:
			os.MkdirAll(p, 0o755)
		case f.Link != "":
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.Symlink(f.Link, p)
		default:
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.Data, 0o755); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(filepath.Base(f.Path), "ld-linux") {
				loader = p
			}
			if strings.HasSuffix(filepath.Dir(f.Path), "-linux-gnu") && !slices.Contains(libDirs, filepath.Dir(p)) {
				libDirs = append(libDirs, filepath.Dir(p))
			}
		}
	}
	if loader == "" {
		t.Fatal("no dynamic loader (ld-linux*) among the files")
	}
	out, err := exec.Command(loader, "--library-path", strings.Join(libDirs, ":"), filepath.Join(root, "usr/sbin/xtables-nft-multi"), "iptables", "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nf_tables") {
		t.Errorf("the copy does not run: %v: %s", err, out)
	}
}

func TestNodeToolFilesErrors(t *testing.T) {
	tests := []struct {
		name, path string
		tools      []string
		want       string
	}{
		{"unknown tool", "", []string{"nft"}, `node tool "nft" is not known: use one of iptables`},
		// A node image without the program: PATH without the sbin
		// directories hides it on this machine.
		{"program missing on the node", "/usr/bin:/bin", []string{"iptables"}, "xtables-nft-multi is not on the node's PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			_, err := NodeToolFiles(context.Background(), kindexec.DefaultCmder, tt.tools)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTarFiles(t *testing.T) {
	tarOf := func(hs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	tests := []struct {
		name  string
		tar   []byte
		files int
		want  string
	}{
		{"file and hard link", tarOf(&tar.Header{Name: "lib/a.so", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}, &tar.Header{Name: "usr/lib/a.so", Typeflag: tar.TypeLink, Linkname: "lib/a.so"}), 2, ""},
		{"link to nothing", tarOf(&tar.Header{Name: "usr/lib/a.so", Typeflag: tar.TypeLink, Linkname: "lib/a.so"}), 0, "not in the tar"},
		{"directories only", tarOf(&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}), 0, "holds no file"},
		{"not a tar", []byte("sh: 1: tar: not found\n"), 0, "read the tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := tarFiles(bytes.NewReader(tt.tar))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil || len(files) != tt.files {
				t.Fatalf("%d files, %v; want %d", len(files), err, tt.files)
			}
			if string(files[1].Data) != "xxx" || files[1].Path != "/usr/lib/a.so" {
				t.Errorf("hard link copied as %+v", files[1])
			}
		})
	}
}
