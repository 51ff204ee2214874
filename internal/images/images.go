// Package images builds OCI images for idharness's own Go programs, and for
// programs of published Go modules (an implementation under test's agent),
// without a registry and without a base image: every layer is assembled here
// from files on disk (a statically linked binary, a minimal /etc, tools
// copied from a cluster node), and the result is written as a Docker image
// archive that kind loads into its nodes.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the modification time given to every file in the layers built
// here, so that the same inputs give the same layer digests.
var Epoch = time.Unix(0, 0).UTC()

// DefaultPath is the PATH set in the images built here.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one entry of a layer. Exactly one of Source (a file on disk),
// Data (literal contents) or Dir (a directory) is used; Link makes a
// symbolic link to Link.
type File struct {
	// Path is the absolute path in the image, such as "/usr/local/bin/app".
	Path string
	// Source is a file on disk whose contents are copied.
	Source string
	// Data is the literal contents when Source is empty.
	Data []byte
	// Dir makes a directory instead of a file.
	Dir bool
	// Link makes a symbolic link pointing to Link.
	Link string
	// Mode is the permission bits (and sticky bit); 0 means 0644 for files
	// and 0755 for directories.
	Mode int64
}

// MinimalRoot returns the files of a minimal distroless-like root: /etc/passwd
// and /etc/group with root, nobody and nonroot (65532), /etc/nsswitch.conf,
// a world-writable /tmp and, when the host has one, a CA bundle.
func MinimalRoot() []File {
	files := []File{
		{Path: "/etc", Dir: true},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{Path: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/home/nonroot", Dir: true},
	}
	if b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		files = append(files, File{Path: "/etc/ssl/certs/ca-certificates.crt", Data: b})
	}
	return files
}

// WriteLayerTar writes files as an uncompressed tar stream to w. Parent
// directories are added as needed; entries are sorted by path and stamped
// with Epoch, so the output depends only on the inputs.
func WriteLayerTar(w io.Writer, files []File) error {
	byPath := map[string]File{}
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if p == "/" {
			continue
		}
		f.Path = p
		byPath[p] = f
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Dir: true}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		f := byPath[p]
		hdr := &tar.Header{Name: strings.TrimPrefix(p, "/"), ModTime: Epoch, Mode: f.Mode, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		case f.Link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.Link
			hdr.Mode = 0o777
		default:
			hdr.Typeflag = tar.TypeReg
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		var src io.Reader
		if hdr.Typeflag == tar.TypeReg {
			if f.Source != "" {
				fh, err := os.Open(f.Source)
				if err != nil {
					return fmt.Errorf("layer file %s: %w", p, err)
				}
				defer fh.Close()
				st, err := fh.Stat()
				if err != nil {
					return fmt.Errorf("layer file %s: %w", p, err)
				}
				hdr.Size = st.Size()
				src = fh
			} else {
				hdr.Size = int64(len(f.Data))
				src = bytes.NewReader(f.Data)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("layer entry %s: %w", p, err)
		}
		if src != nil {
			if _, err := io.Copy(tw, src); err != nil {
				return fmt.Errorf("layer entry %s: %w", p, err)
			}
		}
	}
	return tw.Close()
}

// Layer builds a layer holding files. Large files are streamed from disk
// whenever the layer is read, so Layer itself is cheap.
func Layer(files []File) (v1.Layer, error) {
	opener := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(WriteLayerTar(pw, files)) }()
		return pr, nil
	}
	l, err := tarball.LayerFromOpener(opener, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, fmt.Errorf("build layer: %w", err)
	}
	return l, nil
}

// Spec describes an image to assemble from layers.
type Spec struct {
	// Layers are applied in order on an empty image.
	Layers []v1.Layer
	// Entrypoint and Cmd are the image's default command.
	Entrypoint, Cmd []string
	// Env is added to PATH=DefaultPath.
	Env []string
	// User is the default user, such as "65532:65532"; empty means root.
	User string
	// WorkingDir is the default working directory.
	WorkingDir string
	// Labels are the image's labels.
	Labels map[string]string
	// Arch is the image's architecture (a GOARCH); empty means the
	// architecture this program runs on. A node's containerd runs an
	// image only when it names the node's architecture.
	Arch string
}

// Assemble returns the image described by s, for linux on s.Arch.
func Assemble(s Spec) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, s.Layers...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = s.Arch
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Cmd = s.Cmd
	cf.Config.Env = append([]string{"PATH=" + DefaultPath}, s.Env...)
	cf.Config.User = s.User
	cf.Config.WorkingDir = s.WorkingDir
	cf.Config.Labels = s.Labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// WriteArchive writes images, keyed by their tags, as one Docker image
// archive (the format of `docker save`, which `docker load`, `ctr images
// import` and kind's image-archive loading read). The file is written next
// to path and renamed into place, so a reader never sees a partial archive.
func WriteArchive(path string, images map[string]v1.Image) error {
	refs := make(map[name.Reference]v1.Image, len(images))
	for tag, img := range images {
		t, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("image name %q: %w", tag, err)
		}
		refs[t] = img
	}
	tmp := path + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write image archive %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write image archive %s: %w", path, err)
	}
	return nil
}
