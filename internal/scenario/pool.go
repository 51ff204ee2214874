package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/idharness/idharness/internal/stack"
)

// Pool plays in-cluster scenarios concurrently, each on a node of its
// own. A node's fakeimds, its pod identity agent and its probe pods
// belong to one run at a time (RunInCluster resets the fakeimds and
// deletes its namespace's pods before it returns), so no run sees
// another's faults, identities, throttling or journal: a scenario's
// verdicts are the same played alone or beside others. Most of a chaos
// scenario's time is spent waiting through a fault window with the CPU
// idle, which is why playing them side by side shortens a suite.
type Pool struct {
	o ClusterOptions
	// run plays one scenario on a node: RunInCluster, or a test's stand-in
	// for the pool's own scheduling tests.
	run    func(context.Context, *Scenario, ClusterOptions) (*Result, error)
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	plays  map[*Scenario]*Play
	queue  []*Play
	free   []string
	closed bool
}

// Play is one scenario's run in a Pool.
type Play struct {
	s    *Scenario
	done chan struct{}
	// Set before done is closed.
	res     *Result
	err     error
	node    string
	started time.Time
	ended   time.Time
	// log holds the play's progress lines; logw writes them, locked.
	log  bytes.Buffer
	logw syncWriter
}

// NewPool returns a pool that plays on nodes, at most one scenario per
// node at a time. o.Node is ignored: the pool picks the nodes; o.Progress,
// when set, receives every play's progress lines prefixed with the
// scenario's spec ID (or ID), as they happen.
func NewPool(o ClusterOptions, nodes []string) (*Pool, error) {
	return newPool(o, nodes, RunInCluster)
}

// ConnectPool is NewPool, with no options but the stack, on the stack
// deployed in namespace ns of the cluster cfg reaches, which it connects
// to itself (stack.Connect). It is the chaos suite's way in: the suite
// has the public framework handle (a REST configuration, the stack's
// namespace), which does not hand the internal stack out, so that the
// suites import no internal/stack (internal/boundary). Connecting again
// costs two ConfigMaps and a Secret read once per run, and reads the same
// stack the handle did.
func ConnectPool(ctx context.Context, cfg *rest.Config, ns string, nodes []string) (*Pool, error) {
	if cfg == nil || ns == "" {
		return nil, fmt.Errorf("scenario pool: no cluster (REST configuration %v) or no stack namespace (%q) to connect to", cfg != nil, ns)
	}
	if err := checkNodes(nodes); err != nil {
		return nil, err
	}
	st, err := stack.Connect(ctx, cfg, ns, nil)
	if err != nil {
		return nil, fmt.Errorf("scenario pool: %w", err)
	}
	return NewPool(ClusterOptions{Stack: st}, nodes)
}

// checkNodes refuses a pool without nodes, which would play nothing.
func checkNodes(nodes []string) error {
	if len(nodes) == 0 {
		return errors.New("scenario pool without nodes: the stack has no node with a fakeimds to play on")
	}
	return nil
}

func newPool(o ClusterOptions, nodes []string, run func(context.Context, *Scenario, ClusterOptions) (*Result, error)) (*Pool, error) {
	if err := checkNodes(nodes); err != nil {
		return nil, err
	}
	if o.Progress != nil {
		// The plays write their lines at once.
		o.Progress = &syncWriter{w: o.Progress}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// One run at a time starts its pods (ClusterOptions.StartGate).
	o.StartGate = make(chan struct{}, 1)
	p := &Pool{o: o, run: run, free: slices.Clone(nodes), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), plays: map[*Scenario]*Play{}}
	p.wg.Add(1)
	go p.dispatch()
	return p, nil
}

// Start queues the scenarios not queued yet, to be played in the order
// given as nodes come free.
func (p *Pool) Start(ss ...*Scenario) {
	p.mu.Lock()
	for _, s := range ss {
		p.enqueue(s)
	}
	p.mu.Unlock()
	p.signal()
}

// enqueue queues s unless it is queued already; p.mu is held.
func (p *Pool) enqueue(s *Scenario) *Play {
	if pl, ok := p.plays[s]; ok {
		return pl
	}
	pl := &Play{s: s, done: make(chan struct{})}
	pl.logw.w = &pl.log
	p.plays[s] = pl
	if p.closed {
		pl.finish(nil, fmt.Errorf("scenario %s not played: the pool is closed", s.ID))
		return pl
	}
	p.queue = append(p.queue, pl)
	return pl
}

// Wait returns s's play once it has ended, queueing s first if it was
// not: ahead of every scenario still waiting for a node, since whoever
// waits for it cannot go on without it. The error is ctx's when ctx ends
// first; the play goes on.
func (p *Pool) Wait(ctx context.Context, s *Scenario) (*Play, error) {
	p.mu.Lock()
	pl := p.enqueue(s)
	for i, q := range p.queue {
		if q == pl && i > 0 {
			copy(p.queue[1:i+1], p.queue[:i])
			p.queue[0] = pl
			break
		}
	}
	p.mu.Unlock()
	p.signal()
	select {
	case <-pl.done:
		return pl, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close cancels the plays still running (each cleans up its node and
// namespace, as RunInCluster does on cancellation) and those still
// queued, and returns once every play has ended.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	queued := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, pl := range queued {
		pl.finish(nil, fmt.Errorf("scenario %s not played: the pool was closed first", pl.s.ID))
	}
	p.cancel()
	p.wg.Wait()
}

func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// dispatch gives the first queued play that a free node can take a
// node, until the pool is closed.
func (p *Pool) dispatch() {
	defer p.wg.Done()
	for {
		pl, node := p.next()
		if pl == nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			pl.play(p.ctx, p.run, p.o, node)
			p.mu.Lock()
			p.free = append(p.free, node)
			p.mu.Unlock()
			p.signal()
		}()
	}
}

// next returns the first queued play a free node can take, and that
// node, waiting for both; nil once the pool is closed.
func (p *Pool) next() (*Play, string) {
	for {
		p.mu.Lock()
		for i, pl := range p.queue {
			if j := p.nodeFor(pl.s); j >= 0 {
				node := p.free[j]
				p.free = slices.Delete(p.free, j, j+1)
				p.queue = slices.Delete(p.queue, i, i+1)
				p.mu.Unlock()
				return pl, node
			}
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			return nil, ""
		}
	}
}

// nodeFor returns the index in p.free of the node s should play on, or
// -1 if none of the free nodes fits it; p.mu is held. A scenario that
// runs client programs (Python, JavaScript, Java) plays on a node that
// has their images unpacked; on another its pods would first unpack
// hundreds of MB, under the start gate. Any other scenario takes a node
// without them first, keeping those for the scenarios that need them.
func (p *Pool) nodeFor(s *Scenario) int {
	if len(p.free) == 0 {
		return -1
	}
	if p.o.Stack == nil {
		return 0
	}
	programs := len(s.ClientPrograms()) > 0
	for i, n := range p.free {
		if p.o.Stack.Images.ClientsUnpacked(n) == programs {
			return i
		}
	}
	if programs {
		return -1
	}
	return 0
}

func (pl *Play) play(ctx context.Context, run func(context.Context, *Scenario, ClusterOptions) (*Result, error), o ClusterOptions, node string) {
	o.Node = node
	var out io.Writer = &pl.logw
	if o.Progress != nil {
		out = io.MultiWriter(&pl.logw, &prefixWriter{prefix: "[" + pl.s.label() + "] ", w: o.Progress})
	}
	o.Progress = out
	pl.node, pl.started = node, time.Now()
	res, err := run(ctx, pl.s, o)
	pl.finish(res, err)
}

func (pl *Play) finish(res *Result, err error) {
	pl.res, pl.err, pl.ended = res, err, time.Now()
	close(pl.done)
}

// Result is the run's result, or the error of a run that could not be
// carried out (RunInCluster's).
func (pl *Play) Result() (*Result, error) { return pl.res, pl.err }

// Node is the node the scenario was played on; empty if it was not.
func (pl *Play) Node() string { return pl.node }

// Log is the run's progress lines.
func (pl *Play) Log() []byte {
	pl.logw.mu.Lock()
	defer pl.logw.mu.Unlock()
	return bytes.Clone(pl.log.Bytes())
}

// Elapsed is how long the play took on its node, cleanup included.
func (pl *Play) Elapsed() time.Duration {
	if pl.started.IsZero() {
		return 0
	}
	return pl.ended.Sub(pl.started)
}

// label names s in progress lines: its spec ID when it is a spec.
func (s *Scenario) label() string {
	if s.Spec != nil && s.Spec.ID != "" {
		return s.Spec.ID
	}
	return s.ID
}

// ClusterDuration estimates how long RunInCluster takes to play s: the
// pods' lead and the workload, without the time to read results and
// clean up. A pool given the longest first ends soonest.
func (s *Scenario) ClusterDuration() time.Duration {
	pods := 0
	for _, g := range s.Workload.Clients {
		pods += g.Clients()
	}
	return s.defaultLead(pods) + s.Duration()
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// prefixWriter writes each write (a progress line) to w behind prefix,
// whole, so that lines of concurrent plays do not interleave.
type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	if _, err := pw.w.Write(append([]byte(pw.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
