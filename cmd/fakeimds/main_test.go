package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrintConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("tokens:\n  lifetime: 1h\nlisten:\n  imds: 127.0.0.1:1\n  control: 127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errw bytes.Buffer
	err := run([]string{"--print-config", "--token-lifetime=2h"}, &out, &errw,
		env(map[string]string{"FAKEIMDS_CONFIG": file, "FAKEIMDS_TOKEN_LIFETIME": "3h", "FAKEIMDS_IMDS_ADDR": "127.0.0.1:3"}))
	if err != nil {
		t.Fatalf("run: %v (%s)", err, errw.String())
	}
	var c config.Config
	if err := yaml.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("print-config output is not YAML: %v\n%s", err, out.String())
	}
	if c.Tokens.Lifetime.Duration != 2*time.Hour || c.Listen.IMDS != "127.0.0.1:3" || c.Listen.Control != "127.0.0.1:2" {
		t.Errorf("precedence flags > env > file broken: %+v %+v", c.Tokens, c.Listen)
	}
}

func TestBadConfigStopsStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte("host:\n  name: vm\n  subscriptionId: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"file field", []string{"--config", file}, file + ":3: host.subscriptionId: want a GUID"},
		{"flag", []string{"--log-level=loud"}, "log.level"},
		{"stray argument", []string{"serve"}, `unexpected argument "serve"`},
		// The resolver takes its faults from a file, and has no control API to listen on.
		{"resolver control API", []string{"dns-resolver", "--control=127.0.0.1:8053", "--upstream=127.0.0.1:53", "--resolv-conf=/dev/null"}, "flag provided but not defined: -control"},
		{"resolver without faults file", []string{"dns-resolver", "--faults-file=", "--upstream=127.0.0.1:53", "--resolv-conf=/dev/null"}, "no faults file"},
		{"resolver stray argument", []string{"dns-resolver", "serve"}, `dns-resolver: unexpected argument "serve"`},
		{"resolver without upstream", []string{"dns-resolver", "--resolv-conf=/dev/null"}, "names no nameserver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &bytes.Buffer{}, &bytes.Buffer{}, env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestServeAndSIGTERM builds the binary, runs it, gets a token and stops
// it with SIGTERM: it must exit 0.
func TestServeAndSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "fakeimds")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	imds, control := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--imds-addr", imds, "--control-addr", control, "--log-format", "json")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+imds+"/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r", nil)
		req.Header.Set("Metadata", "true")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("server never answered: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no graceful stop in logs:\n%s", logs.String())
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
