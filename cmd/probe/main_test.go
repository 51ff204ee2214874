package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/vault"
	"github.com/idharness/idharness/pkg/proberesult"
)

var probeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "probe-test-")
	if err != nil {
		panic(err)
	}
	probeBin = filepath.Join(dir, "probe")
	// The binary a pod runs: static, built as the image build does.
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", probeBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		panic("build cmd/probe: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs the probe with a clean environment plus env, and
// returns its parsed lines and exit code.
func runBinary(t *testing.T, env []string, args ...string) ([]proberesult.Result, *proberesult.Summary, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, probeBin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run probe: %v", err)
	}
	var results []proberesult.Result
	var sum *proberesult.Summary
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l, err := proberesult.ParseLine(sc.Bytes())
		if err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		if l.Summary != nil {
			sum = l.Summary
		} else {
			results = append(results, l.Result)
		}
	}
	return results, sum, code, stderr.String()
}

func TestProbeBinary(t *testing.T) {
	_, a := fakeimdstest.Start(t, nil)
	v, err := vault.New(vault.Config{
		JWKSURLs: []string{"http://" + a.IMDS + "/" + fakeimdstest.TenantID + "/discovery/v2.0/keys"},
		Secrets:  map[string]vault.Secret{"db-password": {Value: "hunter2", Readers: []string{fakeimdstest.UserAObjectID}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	vs := httptest.NewServer(v.Handler())
	defer vs.Close()

	t.Run("every client reads the secret", func(t *testing.T) {
		res, sum, code, stderr := runBinary(t, []string{"PROBE_COUNT=2", "PROBE_INTERVAL=50ms", "PROBE_SECRET=db-password"},
			"--imds-addr", a.IMDS, "--identity", "client_id="+fakeimdstest.UserAClientID, "--vault-url", vs.URL)
		if code != 0 || sum == nil {
			t.Fatalf("exit %d, summary %v, stderr %s", code, sum, stderr)
		}
		clients := probe.DefaultClients(probe.ModeIMDS, probe.Identity{Kind: probe.ByClientID})
		if len(res) != 2*len(clients) || sum.Attempts != len(res) || sum.OK != len(res) || sum.Rounds != 2 {
			t.Fatalf("%d results, summary %+v", len(res), sum)
		}
		for i, r := range res {
			if r.Client != clients[i%len(clients)] || r.IdentityGot != fakeimdstest.UserAObjectID || r.Secret != "hunter2" || r.ResourceStatus != 200 || r.TokenExpired {
				t.Errorf("line %d: %+v", i, r)
			}
		}
		if c := sum.Clients[probe.ClientRaw]; c.Attempts != 2 || c.FromCache != 0 || c.Identities[fakeimdstest.UserAObjectID] != 2 {
			t.Errorf("raw summary %+v", c)
		}
	})
	t.Run("failure exits 1", func(t *testing.T) {
		args := []string{"--imds-addr", a.IMDS, "--identity", "client_id=99999999-9999-4999-8999-999999999999", "--client", "msal-mi,raw", "--resource", "https://failure.idharness.test"}
		res, sum, code, _ := runBinary(t, nil, args...)
		if code != 1 || sum == nil || sum.Errors != 2 || len(res) != 2 || res[1].HTTPStatus != 400 {
			t.Fatalf("exit %d summary %+v results %+v", code, sum, res)
		}
		if _, _, code, _ := runBinary(t, []string{"PROBE_EXIT_ZERO=true"}, args...); code != 0 {
			t.Fatalf("with PROBE_EXIT_ZERO exit %d", code)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"--identity", "me"}, {"--client", "curl"}, {"--mode", "arc"}, {"extra"},
			{"--start-at", "soon"}, {"--end-at", "2026-01-02T15:04:05Z", "--start-at", "2026-01-02T15:04:06Z"},
			{"--start-file", "/x", "--start-at", "2026-01-02T15:04:05Z"}, {"--start-offset", "1s"},
			{"--start-file", "/x", "--start-offset", "-1s"}, {"--start-file", "/x", "--start-offset", "2s", "--end-offset", "1s"}} {
			_, sum, code, stderr := runBinary(t, nil, args...)
			if code != 2 || sum != nil || !strings.HasPrefix(stderr, "probe: ") {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
		}
	})
}

// TestProbeStartFile checks the handshake of an in-cluster scenario's
// probe: the ready port answers only once the clients are built, the
// probe waits for the start file (missing, then empty, then a time),
// starts at the time plus --start-offset and ends at --end-offset; and
// the port is closed when the rounds begin. A file holding no time
// fails the probe.
func TestProbeStartFile(t *testing.T) {
	_, a := fakeimdstest.Start(t, nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "start")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	type out struct {
		res  []proberesult.Result
		sum  *proberesult.Summary
		code int
		err  string
	}
	done := make(chan out, 1)
	go func() {
		res, sum, code, stderr := runBinary(t, nil, "--imds-addr", a.IMDS, "--client", "raw", "--duration", "1m", "--interval", "500ms",
			"--start-file", file, "--start-offset", "300ms", "--end-offset", "1500ms", "--ready-port", strconv.Itoa(port))
		done <- out{res, sum, code, stderr}
	}()
	dial := func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for dial() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the ready port never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil { // the annotation exists, empty
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case o := <-done:
		t.Fatalf("the probe ran before its start was written: %+v", o)
	default:
	}
	zero := time.Now().Add(500 * time.Millisecond)
	if err := os.WriteFile(file, []byte(zero.UTC().Format(time.RFC3339Nano)), 0o644); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.code != 0 || o.sum == nil {
		t.Fatalf("exit %d, summary %v, stderr %s", o.code, o.sum, o.err)
	}
	start := zero.Add(300 * time.Millisecond)
	if first := o.res[0].Time; first.Before(start) || first.After(start.Add(300*time.Millisecond)) {
		t.Errorf("first attempt at %v, want just after the start file's time plus --start-offset, %v", first, start)
	}
	if len(o.res) < 2 || len(o.res) > 4 || !o.sum.Interrupted || o.sum.Time.After(zero.Add(2*time.Second)) {
		t.Errorf("%d attempts, summary %+v: want 2-4 and an end at --end-offset", len(o.res), o.sum)
	}
	if dial() == nil {
		t.Error("the ready port still answers after the start")
	}

	if err := os.WriteFile(file, []byte("soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, sum, code, stderr := runBinary(t, nil, "--imds-addr", a.IMDS, "--client", "raw", "--start-file", file); code != 2 || sum != nil || !strings.Contains(stderr, "want an RFC 3339 time") {
		t.Errorf("a start file holding no time: exit %d, stderr %q", code, stderr)
	}
}

// TestProbeWindow checks --start-at, --end-at and --tag, which let the
// scenario runner start pods one by one yet give them one start, cut
// them off at the workload's end and attribute their requests.
func TestProbeWindow(t *testing.T) {
	_, a := fakeimdstest.Start(t, nil)
	start := time.Now().Add(1500 * time.Millisecond)
	end := start.Add(1200 * time.Millisecond)
	res, sum, code, stderr := runBinary(t, nil, "--imds-addr", a.IMDS, "--client", "raw", "--duration", "1m", "--interval", "500ms",
		"--start-at", start.UTC().Format(time.RFC3339Nano), "--end-at", end.UTC().Format(time.RFC3339Nano), "--tag", "idharness-client/win-1")
	if code != 0 || sum == nil {
		t.Fatalf("exit %d, summary %v, stderr %s", code, sum, stderr)
	}
	if len(res) < 2 || len(res) > 4 {
		t.Fatalf("%d attempts in a 1.2 s window every 500ms, want 2-4: %+v", len(res), res)
	}
	if first := res[0].Time; first.Before(start) || first.After(start.Add(300*time.Millisecond)) {
		t.Errorf("first attempt at %v, want just after --start-at %v", first, start)
	}
	if !sum.Interrupted || sum.Time.After(end.Add(500*time.Millisecond)) {
		t.Errorf("summary %+v: want interrupted at --end-at %v", sum, end)
	}
	ctl, err := client.New("http://" + a.Control)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ctl.Journal(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tagged := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Headers["User-Agent"], "idharness-probe/raw idharness-client/win-1") {
			tagged++
		}
	}
	if tagged != len(res) {
		t.Errorf("%d journal entries carry the tag, want %d (one per attempt): %+v", tagged, len(res), entries)
	}
}
