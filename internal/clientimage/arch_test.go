package clientimage

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all" // the Go clients, which Builtin checks
)

// otherArch is an architecture that is not this machine's.
func otherArch(t *testing.T) string {
	o := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if o == "" {
		t.Skipf("no other architecture for %s", runtime.GOARCH)
	}
	return o
}

func program(t *testing.T, name string) *clients.Program {
	t.Helper()
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range reg.Programs() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no client program %s", name)
	return nil
}

func TestRootKeyPerArch(t *testing.T) {
	p := program(t, "python-azure-identity")
	amd, arm := rootKey(p, "amd64", "", "k"), rootKey(p, "arm64", "", "k")
	if amd == arm {
		t.Errorf("amd64 and arm64 roots share cache key %s", amd)
	}
	if again := rootKey(p, "arm64", "", "k"); again != arm {
		t.Errorf("arm64 key not stable: %s then %s", arm, again)
	}
}

func TestEmulated(t *testing.T) {
	other := otherArch(t)
	q := arches[other].qemu
	const ok = "enabled\ninterpreter /usr/libexec/qemu-binfmt/x-binfmt-P\nflags: POF\noffset 0\n"
	for _, tc := range []struct {
		name, arch, handler, wantErr string // handler "": none
	}{
		{"this machine's", runtime.GOARCH, "", ""},
		{"registered", other, ok, ""},
		{"no handler", other, "", "no binfmt_misc handler"},
		{"disabled", other, strings.Replace(ok, "enabled", "disabled", 1), "is disabled"},
		{"without F", other, strings.Replace(ok, "POF", "PO", 1), "lacks flag F"},
		{"unknown arch", "riscv64", "", "not \"riscv64\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.handler != "" {
				os.WriteFile(filepath.Join(dir, "qemu-"+q), []byte(tc.handler), 0o644)
			}
			err := Emulated(dir, tc.arch)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "" && tc.arch == other && !strings.Contains(err.Error(), EmulationScript+" "+other):
				t.Errorf("error %v does not say what to run", err)
			}
		})
	}
}

// TestRootWithoutEmulation: a foreign root is refused before mmdebstrap
// runs, after one try of SetupEmulation, saying what to run.
func TestRootWithoutEmulation(t *testing.T) {
	other := otherArch(t)
	calls := 0
	b := &Builder{CacheDir: t.TempDir(), Log: slog.New(slog.DiscardHandler), Arch: other, BinfmtDir: t.TempDir(),
		SetupEmulation: func(_ context.Context, goarch string) error {
			calls++
			if goarch != other {
				t.Errorf("setup asked for %s, want %s", goarch, other)
			}
			return errors.New("apt-get failed")
		}}
	_, err := b.Root(context.Background(), program(t, "python-azure-identity"))
	if err == nil || !strings.Contains(err.Error(), EmulationScript+" "+other) || !strings.Contains(err.Error(), "apt-get failed") {
		t.Fatalf("error %v, want one naming %s and setup's failure", err, EmulationScript)
	}
	if calls != 1 {
		t.Errorf("SetupEmulation called %d times, want 1", calls)
	}
	if m, _ := filepath.Glob(filepath.Join(b.CacheDir, "client-images", "*")); len(m) != 0 {
		t.Errorf("a refused build left %v", m)
	}
}

// elfFile is a little-endian 64-bit ELF header of machine m.
func elfFile(m elf.Machine) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(b[18:], uint16(m))
	return b
}

func TestCheckRootArch(t *testing.T) {
	other := otherArch(t)
	here, there := arches[runtime.GOARCH].machine, arches[other].machine
	for _, tc := range []struct {
		name    string
		files   map[string][]byte
		wantErr string
	}{
		{"all the target's", map[string][]byte{"usr/bin/dpkg": elfFile(there), "client/x.so": elfFile(there), "client/main.py": []byte("print('hello world')\n")}, ""},
		{"a host module", map[string][]byte{"usr/bin/dpkg": elfFile(there), "client/node_modules/x.node": elfFile(here)}, "client/node_modules/x.node"},
		{"no ELF", map[string][]byte{"client/main.py": []byte("print('hello world')\n")}, "holds no ELF file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root.tar")
			f, _ := os.Create(path)
			tw := tar.NewWriter(f)
			for n, b := range tc.files {
				tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg})
				tw.Write(b)
			}
			tw.Close()
			f.Close()
			err := CheckRootArch(path, other)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestUpstreamVersion(t *testing.T) {
	for in, want := range map[string]string{
		"20.20.2-1nodesource1+repack1": "20.20.2",
		"1:7.2+dfsg-7+deb12u18":        "7.2+dfsg",
		"3.11":                         "3.11",
	} {
		if got := upstreamVersion(in); got != want {
			t.Errorf("upstreamVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCrossPackageUnknown(t *testing.T) {
	work := t.TempDir()
	err := crossPackagesTar(context.Background(), filepath.Join(work, "x.tar"), work, "arm64", []string{"libfoo=1.0-1"})
	if err == nil || !strings.Contains(err.Error(), "no source of its linux/arm64 build") {
		t.Fatalf("error %v, want no source known", err)
	}
}
