package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server process this program started.
type proc struct {
	cmd     *exec.Cmd
	addr    string
	control string // fakeimds's control API
}

// stop ends the process it started (by its PID), SIGTERM first.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startFakeIMDS runs bin on loopback ports of its choosing with
// throttling off (the cached path at full speed, not IMDS's 20/s) and
// waits for its "ready" log line, which names the bound addresses.
func startFakeIMDS(bin string) (*proc, error) {
	cmd := exec.Command(bin, "--imds-addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0",
		"--throttle", "false", "--log-format", "json", "--log-level", "info")
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			if found {
				continue // keep draining, so fakeimds never blocks on a full pipe
			}
			var l struct{ Msg, IMDS, Control string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "ready" {
				p.addr, p.control, found = l.IMDS, l.Control, true
				ready <- nil
			}
		}
		if !found {
			ready <- errors.New("fakeimds exited before it was ready")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			p.stop()
			return nil, err
		}
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, errors.New("fakeimds not ready after 20s")
	}
	return p, nil
}

// metrics returns the named series from fakeimds's /metrics.
func (p *proc) metrics(names ...string) (string, error) {
	resp, err := http.Get("http://" + p.control + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+" ") {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "; "), nil
}

// startCeiling re-executes this program as the ceiling server replaying
// the answer in file; raw replays it without parsing HTTP at all.
func startCeiling(file string, raw bool) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"ceiling", "-answer", file}
	if raw {
		args = append(args, "-raw")
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd}
	l, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(l), "listening ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("ceiling server did not start: %q %v", l, err)
	}
	p.addr = addr
	return p, nil
}

// writeAnswer stores a raw answer: header block, blank line, body.
func writeAnswer(f *os.File, hdr, body []byte) error {
	_, err := f.Write(slicesConcat(hdr, []byte("\r\n"), body))
	if err2 := f.Close(); err == nil {
		err = err2
	}
	return err
}

func slicesConcat(b ...[]byte) []byte { return bytes.Join(b, nil) }

// ceilingCmd serves the answer in -answer: with net/http, writing the
// same header lines (net/http adds Date itself, as it does for
// fakeimds) and body bytes; with -raw, replaying the bytes verbatim for
// each request read, to measure the generator alone.
func ceilingCmd(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	file := fs.String("answer", "", "raw answer to replay")
	raw := fs.Bool("raw", false, "answer without net/http")
	timeouts := fs.Bool("timeouts", false, "set fakeimds's http.Server timeouts (ReadHeaderTimeout 10s, IdleTimeout 90s), to measure what they cost")
	_ = fs.Parse(args)
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	hdrBlock, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return errors.New("answer file without a header block")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	if *raw {
		return serveRaw(ln, b)
	}
	lines := strings.Split(string(hdrBlock), "\r\n")
	if len(lines) < 1 || !strings.HasPrefix(lines[0], "HTTP/1.1 200") {
		return fmt.Errorf("answer is not a 200: %q", lines[0])
	}
	header := http.Header{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ": ")
		if http.CanonicalHeaderKey(k) == "Date" {
			continue
		}
		header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	if header.Get("Content-Length") != strconv.Itoa(len(body)) {
		return fmt.Errorf("answer's Content-Length %q is not its body's %d bytes", header.Get("Content-Length"), len(body))
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		_, _ = w.Write(body)
	})}
	if *timeouts {
		hs.ReadHeaderTimeout, hs.IdleTimeout = 10*time.Second, 90*time.Second
	}
	return hs.Serve(ln)
}

// serveRaw answers every request (a header block ending in a blank line,
// no body) with resp, parsing nothing else.
func serveRaw(ln net.Listener, resp []byte) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			bw := bufio.NewWriterSize(c, 64<<10)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 && line[0] == '\r' {
					_, _ = bw.Write(resp)
					if br.Buffered() == 0 && bw.Flush() != nil {
						return
					}
				}
			}
		}()
	}
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuTicks reads a process's user+system CPU time, in clock ticks
// (USER_HZ, 100 a second on Linux), from /proc.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, errors.Join(err1, err2)
}

const ticksPerSecond = 100

func startsWith(b []byte, p string) bool { return bytes.HasPrefix(b, []byte(p)) }

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(l)
}
