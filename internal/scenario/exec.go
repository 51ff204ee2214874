package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/idharness/idharness/clients"
)

// validate checks an exec workload's fields.
func (e *Exec) validate() error {
	if len(e.Command) == 0 || e.Command[0] == "" {
		return errors.New("command: required, e.g. [python3, app.py]")
	}
	if e.Success == "" {
		return errors.New("success: required: a regular expression for the lines your workload prints when it got (or used) a token")
	}
	if _, err := regexp.Compile(e.Success); err != nil {
		return fmt.Errorf("success: %v", err)
	}
	if e.Failure != "" {
		if _, err := regexp.Compile(e.Failure); err != nil {
			return fmt.Errorf("failure: %v", err)
		}
	}
	for _, k := range e.IMDSEnv {
		if !envName.MatchString(k) {
			return fmt.Errorf("imdsEnv: %q is not a variable name", k)
		}
	}
	return nil
}

// envName is what a variable name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// execWorker runs a user's workload: its process, behind a relay of its
// own, and the attempts read from its output.
type execWorker struct {
	res   *ClientResult
	group ClientGroup
	first time.Duration
	dir   string
	id    clients.Identity
	imds  string
}

// run starts the workload at its start time, records an attempt for each
// matching line, and stops it (SIGTERM, then SIGKILL after 5 s) when ctx
// ends.
func (w *execWorker) run(ctx context.Context, r *runner, relay *clients.Relay) {
	if !sleepUntil(ctx, r.start.Add(w.first)) {
		return
	}
	e := w.group.Exec
	success := regexp.MustCompile(e.Success)
	var failure *regexp.Regexp
	if e.Failure != "" {
		failure = regexp.MustCompile(e.Failure)
	}
	bin := e.Command[0]
	if filepath.Base(bin) != bin && !filepath.IsAbs(bin) {
		bin = filepath.Join(w.dir, bin)
	}
	cmd := exec.Command(bin, e.Command[1:]...)
	cmd.Dir = w.dir
	url := "http://" + relay.Addr()
	cmd.Env = append(clients.BaseEnv(), "IDHARNESS_IMDS_URL="+url, "IDHARNESS_IDENTITY="+w.id.String())
	for _, k := range e.IMDSEnv {
		cmd.Env = append(cmd.Env, k+"="+url)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		r.mu.Lock()
		w.res.Attempts = append(w.res.Attempts, Attempt{Start: Millis(time.Since(r.start)), End: Millis(time.Since(r.start)), Error: "start the workload: " + err.Error()})
		r.mu.Unlock()
		return
	}
	r.printf("%s: started %v (pid %d), pointed at the fake through IDHARNESS_IMDS_URL %v", w.res.Name, e.Command, cmd.Process.Pid, e.IMDSEnv)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			at := Millis(time.Since(r.start))
			var a *Attempt
			switch {
			case success.MatchString(line):
				a = &Attempt{Start: at, End: at, OK: true}
			case failure != nil && failure.MatchString(line):
				a = &Attempt{Start: at, End: at, Error: oneLine(line)}
			}
			r.mu.Lock()
			if a != nil {
				w.res.Attempts = append(w.res.Attempts, *a)
			}
			w.res.Log = appendTail(w.res.Log, line)
			r.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = pw.Close() }()
	select {
	case err := <-exited:
		if err != nil && ctx.Err() == nil {
			r.printf("%s: exited before the end of the workload: %v", w.res.Name, err)
		}
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	wg.Wait()
}

// appendTail keeps the last 50 lines of a workload's output.
func appendTail(log []string, line string) []string {
	log = append(log, truncate(line, 400))
	if len(log) > 50 {
		log = log[len(log)-50:]
	}
	return log
}

// dir is the folder exec commands run in: the scenario file's.
func (s *Scenario) dir() string {
	if s.file == "" {
		d, _ := os.Getwd()
		return d
	}
	return filepath.Dir(s.file)
}
