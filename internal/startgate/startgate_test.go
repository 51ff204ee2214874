package startgate

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenGate(t *testing.T) {
	for name, g := range map[string]*Gate{"nil": nil, "zero": {}, "empty path": New("")} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			// An open gate lets every holder in at once.
			l1, err := g.Enter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := g.Enter(ctx)
			if err != nil {
				t.Fatalf("second holder of an open gate: %v", err)
			}
			l1()
			l2()
		})
	}
}

// TestOneHolderAtATime fails for a gate that lets two in: the most
// holders seen inside at once must be 1.
func TestOneHolderAtATime(t *testing.T) {
	g := New(filepath.Join(t.TempDir(), "gate"))
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leave, err := g.Enter(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			leave()
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders inside at once, want 1", most.Load())
	}
}

func TestEnterCancelled(t *testing.T) {
	g := New(filepath.Join(t.TempDir(), "gate"))
	leave, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := g.Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter while held: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Enter took %s to give up after its context ended", d)
	}
}

func TestEnterBadPath(t *testing.T) {
	g := New(filepath.Join(t.TempDir(), "no-such-dir", "gate"))
	if _, err := g.Enter(context.Background()); err == nil {
		t.Fatal("Enter with a path in a missing directory: no error")
	}
}

// TestAcrossProcesses holds the gate in another process (this test
// binary, started as a helper): Enter here must wait while the helper
// holds it, and get in once the helper dies holding it (the kernel drops
// a dead process's lock).
func TestAcrossProcesses(t *testing.T) {
	if p := os.Getenv("STARTGATE_HOLD"); p != "" {
		leave, err := New(p).Enter(context.Background())
		if err != nil {
			os.Exit(3)
		}
		defer leave()
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		return
	}
	path := filepath.Join(t.TempDir(), "gate")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcrossProcesses$")
	cmd.Env = append(os.Environ(), "STARTGATE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("helper did not hold the gate: %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := New(path).Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter while another process holds the gate: %v, want to wait until the deadline", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	leave, err := New(path).Enter(ctx2)
	if err != nil {
		t.Fatalf("Enter after the holder died: %v", err)
	}
	leave()
}
