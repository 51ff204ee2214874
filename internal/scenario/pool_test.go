package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

// fakePlays stands in for RunInCluster: each play lasts until released
// (or cancelled) and records what ran where, and how many at once.
type fakePlays struct {
	mu      sync.Mutex
	running map[string]string // node → scenario
	most    int
	release map[string]chan struct{}
	started chan string
}

func newFakePlays(ids ...string) *fakePlays {
	f := &fakePlays{running: map[string]string{}, release: map[string]chan struct{}{}, started: make(chan string, len(ids))}
	for _, id := range ids {
		f.release[id] = make(chan struct{})
	}
	return f
}

func (f *fakePlays) run(ctx context.Context, s *Scenario, o ClusterOptions) (*Result, error) {
	if o.StartGate == nil {
		return nil, fmt.Errorf("%s: no start gate: the pool's runs would start their pods all at once", s.ID)
	}
	f.mu.Lock()
	if other, busy := f.running[o.Node]; busy {
		f.mu.Unlock()
		return nil, fmt.Errorf("node %s given to %s while %s plays on it", o.Node, s.ID, other)
	}
	f.running[o.Node] = s.ID
	f.most = max(f.most, len(f.running))
	f.mu.Unlock()
	fmt.Fprintf(o.Progress, "playing on %s\n", o.Node)
	f.started <- s.ID
	defer func() {
		f.mu.Lock()
		delete(f.running, o.Node)
		f.mu.Unlock()
	}()
	select {
	case <-f.release[s.ID]:
		return &Result{Scenario: s.ID, Passed: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func poolScenarios(ids ...string) []*Scenario {
	out := make([]*Scenario, len(ids))
	for i, id := range ids {
		out[i] = &Scenario{ID: id}
	}
	return out
}

// waitStarted waits for the scenarios want to start, in any order: plays
// given nodes one after the other start concurrently.
func waitStarted(t *testing.T, f *fakePlays, want ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	for range want {
		select {
		case got := <-f.started:
			if !left[got] {
				t.Fatalf("started %s, want one of %v next", got, want)
			}
			delete(left, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("%v did not start", left)
		}
	}
}

// noneStarted fails if a scenario starts within 100 ms: why says what
// should have held it back.
func noneStarted(t *testing.T, f *fakePlays, why string) {
	t.Helper()
	select {
	case id := <-f.started:
		t.Fatalf("%s started %s", id, why)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPoolOnePlayPerNodeInOrder(t *testing.T) {
	ss := poolScenarios("a", "b", "c", "d", "e")
	f := newFakePlays("a", "b", "c", "d", "e")
	var progress strings.Builder
	p, err := newPool(ClusterOptions{Progress: &progress}, []string{"n1", "n2"}, f.run)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Start(ss...)
	waitStarted(t, f, "a", "b")
	noneStarted(t, f, "with both nodes busy")
	close(f.release["b"])
	waitStarted(t, f, "c")
	close(f.release["a"])
	waitStarted(t, f, "d")
	close(f.release["c"])
	waitStarted(t, f, "e")
	close(f.release["d"])
	close(f.release["e"])
	for _, s := range ss {
		pl, err := p.Wait(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		res, err := pl.Result()
		if err != nil || !res.Passed || res.Scenario != s.ID {
			t.Fatalf("%s: result %+v, %v", s.ID, res, err)
		}
		if pl.Node() == "" || !strings.Contains(string(pl.Log()), "playing on "+pl.Node()) {
			t.Errorf("%s: node %q, log %q", s.ID, pl.Node(), pl.Log())
		}
	}
	if f.most != 2 {
		t.Errorf("at most %d plays at once on 2 nodes, want 2", f.most)
	}
	if !strings.Contains(progress.String(), "[c] playing on ") {
		t.Errorf("progress lines are not prefixed with the scenario: %q", progress.String())
	}
}

func TestPoolWaitGoesFirst(t *testing.T) {
	ss := poolScenarios("a", "b", "c", "d")
	f := newFakePlays("a", "b", "c", "d")
	p, err := newPool(ClusterOptions{}, []string{"n1"}, f.run)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Start(ss[:3]...)
	waitStarted(t, f, "a")
	// d was never started and c is queued last: whoever waits for c gets
	// it next, and d (not queued) is queued by its Wait.
	got := make(chan string, 2)
	for _, s := range []*Scenario{ss[2], ss[3]} {
		go func() {
			if _, err := p.Wait(context.Background(), s); err == nil {
				got <- s.ID
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(f.release["a"])
	started := <-f.started
	if started != "c" && started != "d" {
		t.Fatalf("after a, %s started; want a scenario someone waits for", started)
	}
	for _, id := range []string{"b", "c", "d"} {
		close(f.release[id])
	}
	<-got
	<-got
}

func TestPoolCloseCancels(t *testing.T) {
	ss := poolScenarios("a", "b")
	f := newFakePlays("a", "b")
	p, err := newPool(ClusterOptions{}, []string{"n1"}, f.run)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(ss...)
	waitStarted(t, f, "a")
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return: the running play was not cancelled")
	}
	for _, s := range ss {
		pl, err := p.Wait(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pl.Result(); err == nil {
			t.Errorf("%s: no error after Close", s.ID)
		}
	}
	if pl, _ := p.Wait(context.Background(), ss[0]); !errors.Is(must(pl.Result()), context.Canceled) {
		t.Errorf("the running play ended with %v, want its context cancelled", must(pl.Result()))
	}
	// A scenario asked for after Close is refused, not left waiting.
	pl, err := p.Wait(context.Background(), &Scenario{ID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Result(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("late scenario: %v, want a closed pool's error", err)
	}
}

func TestPoolWaitHonoursContext(t *testing.T) {
	f := newFakePlays("a")
	p, err := newPool(ClusterOptions{}, []string{"n1"}, f.run)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(ctx, poolScenarios("a")[0]); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait returned %v, want the context's deadline", err)
	}
}

func TestNewPoolWithoutNodes(t *testing.T) {
	if _, err := NewPool(ClusterOptions{}, nil); err == nil {
		t.Error("a pool without nodes was made")
	}
}

// ConnectPool refuses what it cannot connect to before it tries, and says
// where a connection failed; nothing here has a cluster.
func TestConnectPool(t *testing.T) {
	// Loopback's port 1 refuses at once: a cluster that is not there.
	nowhere := &rest.Config{Host: "http://127.0.0.1:1"}
	for _, tc := range []struct {
		name  string
		cfg   *rest.Config
		ns    string
		nodes []string
		want  string
	}{
		{"no REST configuration", nil, "idharness-system", []string{"w"}, "no cluster"},
		{"no namespace", nowhere, "", []string{"w"}, "no stack namespace"},
		{"no nodes", nowhere, "idharness-system", nil, "without nodes"},
		{"no stack there", nowhere, "idharness-system", []string{"w"}, "no idharness stack in namespace idharness-system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ConnectPool(context.Background(), tc.cfg, tc.ns, tc.nodes)
			if err == nil {
				p.Close()
				t.Fatal("a pool was made")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func must(_ *Result, err error) error { return err }

// TestPoolClientNodes checks where a pool sends plays when the client
// images are unpacked on some nodes only (the stack's ClientNodes): a
// play of client programs waits for one of those nodes even while
// another is free, and a Go play takes another node first.
func TestPoolClientNodes(t *testing.T) {
	program := func(id string) *Scenario {
		return &Scenario{ID: id, Workload: Workload{Clients: []ClientGroup{{Client: "py-azidentity-mi"}}}}
	}
	p1, g1, p2, g2 := program("p1"), &Scenario{ID: "g1"}, program("p2"), &Scenario{ID: "g2"}
	f := newFakePlays("p1", "g1", "p2", "g2")
	st := &stack.Stack{Images: fixtures.Images{ClientNodes: []string{"n1"}}}
	p, err := newPool(ClusterOptions{Stack: st}, []string{"n2", "n1", "n3"}, f.run)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Start(p1, g1, p2, g2)
	waitStarted(t, f, "p1", "g1", "g2")
	noneStarted(t, f, "while the only node with the client images was busy")
	close(f.release["p1"])
	waitStarted(t, f, "p2")
	close(f.release["g1"])
	close(f.release["g2"])
	close(f.release["p2"])
	want := map[*Scenario]string{p1: "n1", p2: "n1"}
	for _, s := range []*Scenario{p1, g1, p2, g2} {
		pl, err := p.Wait(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[s]; ok && pl.Node() != w {
			t.Errorf("%s played on %s, want %s (the client images' node)", s.ID, pl.Node(), w)
		}
		if _, ok := want[s]; !ok && pl.Node() == "n1" {
			t.Errorf("Go play %s took n1, which the client programs' plays need, while n2 and n3 were free", s.ID)
		}
	}
}
