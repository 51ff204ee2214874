package clientimage

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/clients"
)

// TestForeignRootE2E builds the root of a client program for the other
// architecture (arm64 on an amd64 machine) under qemu-user, unpacks it,
// and runs the program in it (chroot, binfmt_misc): it must say its
// protocol hello, with the SDK versions it loaded, and exit 0 at the end
// of its input. Slow (a cold Python root takes minutes under emulation),
// so it runs only when asked, as root:
//
//	IDHARNESS_E2E_ARM64=1 go test -run ForeignRootE2E -v -timeout 60m ./internal/clientimage/
//
// IDHARNESS_E2E_ARM64 is 1 (python-azure-identity) or a comma-separated
// list of programs; the roots are cached in IDHARNESS_CACHE_DIR when set
// (warm runs take seconds), else built cold in a temporary directory.
func TestForeignRootE2E(t *testing.T) {
	want := os.Getenv("IDHARNESS_E2E_ARM64")
	if want == "" {
		t.Skip("set IDHARNESS_E2E_ARM64=1 (or program names) to build and run a foreign-architecture client root (slow; root)")
	}
	if want == "1" {
		want = "python-azure-identity"
	}
	other := otherArch(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (mmdebstrap --mode=root, chroot)")
	}
	cache := os.Getenv("IDHARNESS_CACHE_DIR")
	if cache == "" {
		cache = t.TempDir()
	}
	b := &Builder{CacheDir: cache, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Arch: other,
		SetupEmulation: SetupScript("../..", os.Stderr)}
	for _, name := range strings.Split(want, ",") {
		t.Run(name, func(t *testing.T) {
			p := program(t, name)
			start := time.Now()
			root, err := b.Root(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s root for %s: %v", name, other, time.Since(start).Round(time.Second))
			if err := CheckRootArch(root, other); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "root")
			os.MkdirAll(dir, 0o755)
			if out, err := exec.Command("tar", "-xf", root, "-C", dir).CombinedOutput(); err != nil {
				t.Fatalf("unpack %s: %v\n%s", root, err, out)
			}
			// The root's own uname: its programs run as the target's.
			m, err := exec.Command("chroot", dir, "uname", "-m").Output()
			if got := strings.TrimSpace(string(m)); err != nil || got != arches[other].qemu {
				t.Fatalf("uname -m in the root: %q (%v), want %s", got, err, arches[other].qemu)
			}
			start = time.Now()
			hello, err := runHello(t, dir, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s under qemu: hello %+v in %v", name, hello, time.Since(start).Round(100*time.Millisecond))
			if hello.Type != "hello" || hello.Protocol != clients.ProtocolVersion || len(hello.SDKs) == 0 {
				t.Errorf("hello %+v: want protocol %d with SDK versions", hello, clients.ProtocolVersion)
			}
		})
	}
}

// runHello runs p's first client in the unpacked root dir, as the probe
// runs it in a pod (in Dir, the probe's user), reads its hello line and
// closes its input: it must then exit 0.
func runHello(t *testing.T, dir string, p *clients.Program) (clients.Hello, error) {
	t.Helper()
	argv := append(append([]string{}, p.Command...), p.Clients[0].Args...)
	cmd := exec.Command("chroot", "--userspec=65532:65532", dir, "/usr/bin/env", "-i",
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", "IDHARNESS_MODE=imds",
		"sh", "-c", `cd `+Dir+` && exec "$@"`, "sh")
	cmd.Args = append(cmd.Args, argv...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return clients.Hello{}, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	var h clients.Hello
	select {
	case l, ok := <-line:
		if !ok {
			cmd.Wait()
			t.Fatalf("%s exited without a line; stderr: %s", strings.Join(argv, " "), stderr.String())
		}
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("first line %q: %v", l, err)
		}
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no hello within 5 minutes; stderr: %s", stderr.String())
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%s at end of input: %v; stderr: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return h, nil
}
