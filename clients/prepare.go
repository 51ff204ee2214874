package clients

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// preparedStamp marks a folder whose prepare command succeeded.
const preparedStamp = ".idharness-prepared"

// Key returns a digest of the program's files: a prepared folder (and an
// image) is reused exactly as long as it is unchanged.
func (p *Program) Key() (string, error) {
	h := sha256.New()
	var names []string
	err := fs.WalkDir(p.files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(p.files, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Prepare returns the program's prepared folder under cacheDir
// (clients/PROGRAM-KEY), preparing it first when it is not: the
// program's files are copied there and its prepare command is run, which
// installs its pinned packages. Progress and the command's output go to
// progress. It is safe to call from several processes at once: they take
// turns on a lock file, and the second finds the folder ready.
func (p *Program) Prepare(ctx context.Context, cacheDir string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	key, err := p.Key()
	if err != nil {
		return "", err
	}
	base := filepath.Join(cacheDir, "clients")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("client cache: %w (set IDHARNESS_CACHE_DIR to a writable directory)", err)
	}
	dir := filepath.Join(base, p.Name+"-"+key)
	if _, err := os.Stat(filepath.Join(dir, preparedStamp)); err == nil {
		return dir, nil
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	if _, err := os.Stat(filepath.Join(dir, preparedStamp)); err == nil {
		return dir, nil
	}
	if len(p.PrepareCmd) == 0 {
		return "", fmt.Errorf("program %s has nothing to prepare (a Go program runs in process)", p.Name)
	}
	// A failed earlier attempt leaves a folder without the stamp: start
	// over from the program's files.
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := copyFS(dir, p.files); err != nil {
		return "", fmt.Errorf("copy program %s: %w", p.Name, err)
	}
	start := time.Now()
	fmt.Fprintf(progress, "clients: preparing %s in %s (%s)\n", p.Name, dir, strings.Join(p.PrepareCmd, " "))
	cmd := exec.CommandContext(ctx, p.PrepareCmd[0], p.PrepareCmd[1:]...)
	cmd.Dir = dir
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout = io.MultiWriter(out, progress)
	cmd.Stderr = io.MultiWriter(out, progress)
	cmd.Env = BaseEnv()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("prepare client program %s (%s in %s) failed: %w; its output ends: %s", p.Name, strings.Join(p.PrepareCmd, " "), dir, err, out.Tail(1500))
	}
	if err := os.WriteFile(filepath.Join(dir, preparedStamp), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "clients: %s prepared in %v\n", p.Name, time.Since(start).Round(100*time.Millisecond))
	return dir, nil
}

// copyFS writes every file of src under dir, keeping scripts executable.
func copyFS(dir string, src fs.FS) error {
	return fs.WalkDir(src, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(src, path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		return os.WriteFile(target, b, mode)
	})
}
