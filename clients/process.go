package clients

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Protocol requests (PROTOCOL.md).
const (
	OpGetToken  = "get_token"
	OpGetSecret = "get_secret"
)

// ProtocolVersion is the version of PROTOCOL.md this package speaks.
const ProtocolVersion = 1

// Hello is a client program's first line.
type Hello struct {
	Type     string            `json:"type"`
	Protocol int               `json:"protocol"`
	Language string            `json:"language"`
	Runtime  string            `json:"runtime"`
	SDKs     map[string]string `json:"sdks"`
}

// request is a line the harness sends.
type request struct {
	Type     string `json:"type"`
	ID       int64  `json:"id"`
	Resource string `json:"resource,omitempty"`
	VaultURL string `json:"vaultUrl,omitempty"`
	Name     string `json:"name,omitempty"`
}

// reply is a result line.
type reply struct {
	Type      string   `json:"type"`
	ID        int64    `json:"id"`
	OK        bool     `json:"ok"`
	Token     string   `json:"token"`
	ExpiresOn *float64 `json:"expiresOn"`
	Value     string   `json:"value"`
	Error     string   `json:"error"`
	ErrorType string   `json:"errorType"`
}

// ProtocolError says a client program broke PROTOCOL.md: the harness
// cannot judge a client it cannot read, so this fails the client, not
// the identity component.
type ProtocolError struct {
	Client string
	Detail string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("client %s broke the line protocol (clients/PROTOCOL.md): %s", e.Client, e.Detail)
}

// Process is a client program running as a child process, driven over
// its stdin and stdout. It implements Client and SecretReader.
type Process struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	hello Hello
	log   *tailBuffer

	wmu sync.Mutex // serializes writes to stdin

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	readErr error
	done    chan struct{} // closed when stdout ends
}

// StartOptions start a client program.
type StartOptions struct {
	// Dir is the prepared program's folder (Prepare).
	Dir string
	// Env is the whole environment of the process.
	Env []string
	// HelloTimeout bounds the wait for the hello line (default 2 minutes:
	// a JVM on a loaded 2-core machine can take tens of seconds).
	HelloTimeout time.Duration
	// Stderr, when set, also receives the program's stderr.
	Stderr io.Writer
}

// Start starts the client spec in its prepared folder and waits for its
// hello line.
func Start(ctx context.Context, spec Spec, o StartOptions) (*Process, error) {
	if spec.Program == nil || len(spec.Program.Command) == 0 {
		return nil, fmt.Errorf("client %s is not a program (a Go client runs in process)", spec.Name)
	}
	argv := append(append([]string{}, spec.Program.Command...), spec.Args...)
	bin := argv[0]
	if strings.Contains(bin, "/") && !strings.HasPrefix(bin, "/") {
		bin = o.Dir + "/" + bin
	}
	cmd := exec.Command(bin, argv[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = o.Env
	// Its own process group, so that stopping it stops what it started
	// (az runs python, which may run more).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Process{name: spec.Name, cmd: cmd, log: &tailBuffer{max: 64 << 10}, pending: map[int64]chan reply{}, done: make(chan struct{})}
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.log, o.Stderr)
	} else {
		cmd.Stderr = p.log
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start client %s (%s): %w; was it prepared? (idharness clients prepare)", spec.Name, strings.Join(argv, " "), err)
	}
	if err := p.attach(ctx, stdout, stdin, o.HelloTimeout); err != nil {
		p.kill()
		<-p.done // os/exec: every read of the pipe ends before Wait
		_ = cmd.Wait()
		return nil, err
	}
	return p, nil
}

// Attach drives a client that speaks the protocol over out (its output)
// and in (its input) without a process of its own: a Go client served in
// process by Serve, in tests.
func Attach(ctx context.Context, name string, out io.Reader, in io.WriteCloser) (*Process, error) {
	p := &Process{name: name, log: &tailBuffer{max: 64 << 10}, pending: map[int64]chan reply{}, done: make(chan struct{})}
	if err := p.attach(ctx, out, in, 0); err != nil {
		_ = in.Close()
		return nil, err
	}
	return p, nil
}

// attach reads out in the background and waits for the hello line.
func (p *Process) attach(ctx context.Context, out io.Reader, in io.WriteCloser, timeout time.Duration) error {
	p.stdin = in
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	helloCh := make(chan error, 1)
	go p.read(sc, helloCh)
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case err = <-helloCh:
	case <-t.C:
		err = fmt.Errorf("no hello line within %v", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("client %s: %w; its stderr ends: %s", p.name, err, p.log.Tail(600))
	}
	return nil
}

// read reads stdout: the hello line, then results, which it hands to
// the calls waiting for them.
func (p *Process) read(sc *bufio.Scanner, hello chan<- error) {
	defer close(p.done)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			first = false
			var h Hello
			if err := json.Unmarshal(line, &h); err != nil || h.Type != "hello" {
				hello <- &ProtocolError{p.name, fmt.Sprintf("first line is not a hello: %.200q", line)}
				p.fail(errors.New("no hello"))
				return
			}
			if h.Protocol != ProtocolVersion {
				hello <- &ProtocolError{p.name, fmt.Sprintf("protocol %d, want %d", h.Protocol, ProtocolVersion)}
				p.fail(errors.New("wrong protocol"))
				return
			}
			p.hello = h
			hello <- nil
			continue
		}
		var r reply
		if err := json.Unmarshal(line, &r); err != nil || r.Type != "result" {
			p.fail(&ProtocolError{p.name, fmt.Sprintf("stdout line is not a result: %.200q", line)})
			continue
		}
		p.mu.Lock()
		ch, ok := p.pending[r.ID]
		delete(p.pending, r.ID)
		p.mu.Unlock()
		if !ok {
			p.fail(&ProtocolError{p.name, fmt.Sprintf("result for id %d, which is not pending (answered twice?)", r.ID)})
			continue
		}
		ch <- r
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("its stdout closed")
	}
	if first {
		hello <- fmt.Errorf("exited before its hello line (%v)", err)
	}
	p.fail(fmt.Errorf("client %s stopped: %v; its stderr ends: %s", p.name, err, p.log.Tail(600)))
}

// fail records err as the reason no more results will come and fails
// every waiting call.
func (p *Process) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr == nil {
		p.readErr = err
	}
	for id, ch := range p.pending {
		ch <- reply{ID: id, Error: err.Error(), ErrorType: "harness"}
		delete(p.pending, id)
	}
}

// Hello returns the program's hello line: its runtime and SDK versions.
func (p *Process) Hello() Hello { return p.hello }

// Log returns the end of the program's stderr.
func (p *Process) Log() string { return p.log.Tail(16 << 10) }

func (p *Process) call(ctx context.Context, req request) (reply, error) {
	ch := make(chan reply, 1)
	p.mu.Lock()
	if p.readErr != nil {
		err := p.readErr
		p.mu.Unlock()
		return reply{}, err
	}
	p.nextID++
	req.ID = p.nextID
	p.pending[req.ID] = ch
	p.mu.Unlock()
	b, _ := json.Marshal(req)
	p.wmu.Lock()
	_, err := p.stdin.Write(append(b, '\n'))
	p.wmu.Unlock()
	if err != nil {
		p.mu.Lock()
		delete(p.pending, req.ID)
		p.mu.Unlock()
		return reply{}, fmt.Errorf("send to client %s: %w", p.name, err)
	}
	select {
	case r := <-ch:
		if r.ErrorType == "harness" {
			return r, errors.New(r.Error)
		}
		return r, nil
	case <-ctx.Done():
		// The call goes on in the program (an SDK call cannot be
		// cancelled from outside); its late answer is dropped.
		p.mu.Lock()
		if _, still := p.pending[req.ID]; still {
			p.pending[req.ID] = make(chan reply, 1)
		}
		p.mu.Unlock()
		return reply{}, ctx.Err()
	}
}

// ClientError is an error a client program reported: its SDK's message
// and error type.
type ClientError struct {
	Type    string
	Message string
}

func (e *ClientError) Error() string { return e.Message }

// GetToken asks the program for a token.
func (p *Process) GetToken(ctx context.Context, resource string) (Token, error) {
	r, err := p.call(ctx, request{Type: OpGetToken, Resource: resource})
	if err != nil {
		return Token{}, err
	}
	if !r.OK {
		return Token{}, &ClientError{Type: r.ErrorType, Message: r.Error}
	}
	if r.Token == "" {
		return Token{}, &ProtocolError{p.name, fmt.Sprintf("result %d is ok but has no token", r.ID)}
	}
	t := Token{Value: r.Token}
	if r.ExpiresOn != nil {
		sec := int64(*r.ExpiresOn)
		t.ExpiresOn = time.Unix(sec, int64((*r.ExpiresOn-float64(sec))*1e9)).UTC()
	}
	return t, nil
}

// GetSecret asks the program to read a secret with its Key Vault client.
func (p *Process) GetSecret(ctx context.Context, vaultURL, name string) (string, error) {
	r, err := p.call(ctx, request{Type: OpGetSecret, VaultURL: vaultURL, Name: name})
	if err != nil {
		return "", err
	}
	if !r.OK {
		return "", &ClientError{Type: r.ErrorType, Message: r.Error}
	}
	return r.Value, nil
}

// Close ends the program's input, waits up to grace for it to exit, and
// kills its process group after that. It returns the exit error, if any.
// An attached client is done when its output ends.
func (p *Process) Close(grace time.Duration) error {
	_ = p.stdin.Close()
	exited := make(chan error, 1)
	go func() {
		<-p.done // os/exec: every read of the pipe ends before Wait
		if p.cmd == nil {
			exited <- nil
			return
		}
		exited <- p.cmd.Wait()
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		p.kill()
		<-exited
		return fmt.Errorf("client %s did not exit within %v of the end of its input; killed", p.name, grace)
	}
}

func (p *Process) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// Tail returns the last n bytes on one line.
func (t *tailBuffer) Tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// BaseEnv returns the process environment without the variables that
// steer SDKs to another identity source: a client program gets exactly
// the identity environment its run sets.
func BaseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if IdentityEnv(k) || strings.HasPrefix(k, "IDHARNESS_") || isProxyVar(k) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func isProxyVar(k string) bool {
	switch strings.ToUpper(k) {
	case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
		return true
	}
	return false
}

// IdentityEnv reports whether k makes an SDK use another managed
// identity source or credential than the one a run sets up.
func IdentityEnv(k string) bool {
	switch k {
	case "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
		"IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
		"AZURE_AUTHORITY_HOST", "AZURE_CONFIG_DIR":
		return true
	}
	return false
}
