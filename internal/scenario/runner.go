package scenario

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/token"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/internal/podidentity"
	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

// Options tune a run.
type Options struct {
	// Progress receives the timeline steps as they fire and a line per
	// second of requests and attempts; nil prints nothing.
	Progress io.Writer
	// Logger receives the fake's own log; nil discards it.
	Logger *slog.Logger
	// CacheDir is where client programs are prepared (default: idharness's
	// cache directory).
	CacheDir string
	// IMDSAddr is where the fake's metadata face listens (default a free
	// port on 127.0.0.1), for workloads that need a fixed address.
	IMDSAddr string
}

// runSeq makes each run's resources distinct within one process, whose
// SDK token caches outlive a run.
var runSeq atomic.Uint64

// Run plays s against an in-process fakeimds on loopback with the
// workload's real SDK clients in goroutines, then evaluates the
// expectations. The error is for runs that could not be carried out; a
// run whose expectations fail returns a Result with Passed false.
func Run(ctx context.Context, s *Scenario, o Options) (*Result, error) {
	if err := CheckEnv(); err != nil {
		return nil, err
	}
	if err := s.checkLocal(); err != nil {
		return nil, err
	}
	if err := s.checkLocalWorkload(); err != nil {
		return nil, err
	}
	cfg, err := s.ServerConfig()
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.IMDSAddr != "" {
		cfg.Listen.IMDS = o.IMDSAddr
	}
	// The run's vault verifies tokens with the fake's signing key, given
	// to both: fetching it from the fake would add the vault's requests
	// to the journal the expectations count.
	key, err := token.GenerateKey()
	if err != nil {
		return nil, err
	}
	srv, err := fakeimds.New(cfg, fakeimds.WithLogger(logger), fakeimds.WithSigningKey(key))
	if err != nil {
		return nil, fmt.Errorf("start the fake metadata service: %w", err)
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	ready := make(chan fakeimds.Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(srvCtx, func(a fakeimds.Addrs) { ready <- a }) }()
	defer func() {
		stopSrv()
		<-done
	}()
	var addrs fakeimds.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		done <- err
		return nil, fmt.Errorf("start the fake metadata service: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctl, err := client.New("http://" + addrs.Control)
	if err != nil {
		return nil, err
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		cacheDir = nodeimage.DefaultCacheDir()
	}
	r := &runner{s: s, cfg: cfg, ctl: ctl, imds: addrs.IMDS, ctlAddr: addrs.Control, progress: o.Progress, nonce: newNonce(),
		system: *config.Default().SystemAssigned, every: time.Second, cacheDir: cacheDir, source: map[string]string{}}
	stopVault, err := r.startVault(key)
	if err != nil {
		return nil, err
	}
	defer stopVault()
	return r.run(ctx)
}

// newNonce returns a run's own name part: each run's clients ask for
// resources of their own, distinct from earlier runs' in the same process
// (whose SDK token caches outlive a run) and on the same fake.
func newNonce() string {
	return fmt.Sprintf("r%d-%s", runSeq.Add(1), strconv.FormatInt(time.Now().UnixNano()%1e9, 36))
}

type runner struct {
	s        *Scenario
	cfg      config.Config
	ctl      *client.Client
	imds     string
	progress io.Writer
	nonce    string
	start    time.Time
	// system is the identity an "attach: system" step gives the host.
	system config.Identity
	// every is the time between progress lines.
	every time.Duration
	// status, when set, ends each progress line instead of the attempts
	// (which an in-cluster run learns only at the end).
	status func(context.Context) string
	// cacheDir is where client programs are prepared.
	cacheDir string
	// ctlAddr is the fake's control API.
	ctlAddr string
	// source maps a client's loopback address to its name.
	source map[string]string
	// clientNames are the workload's clients, known before they start.
	clientNames []string
	// kube, in a cluster run, reaches the cluster for steps that act on
	// it (restart); nil in a local run.
	kube *kubeEnv
	// vault is where groups with useToken: vault use their tokens in a
	// local run; nil when none does.
	vault *localVault
	// authority, in a workload identity run, is the stack's authority's
	// control API: rules matching only its face go there, for the run's
	// pods alone; nil otherwise.
	authority *client.Client

	mu       sync.Mutex
	clients  []*ClientResult
	steps    []StepRecord
	requests []Request
	cursor   uint64
	// killedLogs are the logs of the probes' instances a node restart
	// killed, by client, read right after it.
	killedLogs map[string][]byte
	// authorityRules are the rules the run added to the authority, which
	// its cleanup removes if their steps did not.
	authorityRules []string
	// rules are the fault steps' rules as added, by their names in the
	// scenario (unique there), with their hit counters once read.
	rules   map[string]*addedRule
	printMu sync.Mutex // serializes progress lines
}

func (r *runner) printf(format string, a ...any) {
	if r.progress == nil {
		return
	}
	line := fmt.Sprintf("[%6.1fs] ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, a...) + "\n"
	r.printMu.Lock()
	defer r.printMu.Unlock()
	_, _ = io.WriteString(r.progress, line)
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	state, err := r.ctl.Chaos(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the fake's chaos state: %w", err)
	}
	// Requests before the start (none, normally) are not the run's.
	if old, err := r.ctl.Journal(ctx, 0); err == nil && len(old) > 0 {
		r.cursor = old[len(old)-1].Seq
	}
	workers, err := r.buildClients(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	for _, w := range workers {
		r.clientNames = append(r.clientNames, w.res.Name)
	}
	res := &Result{Scenario: r.s.ID, Title: r.s.Title, File: r.s.file, Seed: state.Seed}
	runCtx, cancel := context.WithTimeout(ctx, r.s.Duration())
	defer cancel()
	r.start = time.Now()
	res.Started = r.start
	r.printf("scenario %s: %s (seed %d, %d clients, %v)", r.s.ID, r.s.Title, state.Seed, len(workers), r.s.Duration())
	r.printf("fake IMDS at http://%s, control API at http://%s", r.imds, r.ctlAddr)

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.exec != nil {
				w.exec.run(runCtx, r, w.relay)
				return
			}
			w.loop(runCtx, r)
		}()
	}
	r.playTimeline(ctx, runCtx)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("run interrupted: %w", ctx.Err())
	}
	res.Duration = Millis(time.Since(r.start))
	// Give requests cut off at the end a moment to reach the journal.
	time.Sleep(50 * time.Millisecond)
	return r.finish(ctx, res)
}

// playTimeline plays the timeline's steps from r.start and prints a
// progress line every r.every until runCtx ends, then waits for the
// steps still undoing.
func (r *runner) playTimeline(ctx, runCtx context.Context) {
	var wg sync.WaitGroup
	for i, st := range r.s.Timeline {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.playStep(runCtx, i, st)
		}()
	}
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case <-runCtx.Done():
			wg.Wait()
			return
		case <-tick.C:
			r.poll(ctx)
		}
	}
}

// finish reads the rest of the journal, puts the evidence in res,
// attributes the requests to the clients and judges the run.
func (r *runner) finish(ctx context.Context, res *Result) (*Result, error) {
	if err := r.fetchJournal(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	res.Steps = append([]StepRecord(nil), r.steps...)
	r.mu.Unlock()
	sort.Slice(res.Steps, func(i, j int) bool { return res.Steps[i].Index < res.Steps[j].Index })
	r.recordRules(ctx, res.Steps)
	res.Authority = r.authorityJournal(ctx)
	r.mu.Lock()
	res.Requests = r.requests
	for _, c := range r.clients {
		res.Clients = append(res.Clients, *c)
	}
	r.mu.Unlock()
	attribute(res)
	Evaluate(r.s, res)
	judgeSteps(res)
	if r.s.countsRequests() {
		judgeAttribution(res)
	}
	return res, nil
}

// judgeAttribution fails the run when a client got tokens but no request
// of the fake's journal was attributed to it: its first token cannot have
// come from a cache, so its requests came from an address or tag the run
// could not tie to it, and every verdict counting requests would judge
// nothing. In a cluster this happens behind a node agent, which forwards
// every pod's requests from 169.254.169.254: client programs carry no
// tag, so their pod's address is all there is (and aad-pod-identity's
// NMI drops the probe's tag too). It is judged only when an expectation
// counts requests: the others judge what the clients saw.
func judgeAttribution(res *Result) {
	var bad []string
	for _, c := range res.Clients {
		ok := 0
		for _, a := range c.Attempts {
			if a.OK {
				ok++
			}
		}
		if ok == 0 {
			continue
		}
		n := 0
		for _, q := range res.Requests {
			if q.Client == c.Name {
				n++
			}
		}
		if n == 0 {
			bad = append(bad, fmt.Sprintf("%s (%s): %d tokens, no request attributed", c.Name, c.Client, ok))
		}
	}
	if len(bad) == 0 {
		return
	}
	res.Passed = false
	res.Verdicts = append(res.Verdicts, Verdict{Expectation: "every client's requests were attributed to it", Kind: "attribution",
		Outcome: OutcomeFail, Detail: strings.Join(bad, "; ") + ": in a cluster, a node agent forwards every pod's requests from 169.254.169.254 and hides the pod's address, by which client programs are known; run on a cluster deployed without one (idharness run --profile imds --keep-cluster), or locally"})
}

// judgeSteps fails the run when a timeline step could not be applied or
// undone: the expectations then judged another scenario than the file's.
func judgeSteps(res *Result) {
	var bad []string
	for _, st := range res.Steps {
		if st.Error != "" {
			bad = append(bad, fmt.Sprintf("step %d (%s): %s", st.Index, st.Detail, st.Error))
		}
	}
	if len(bad) == 0 {
		return
	}
	res.Passed = false
	res.Verdicts = append(res.Verdicts, Verdict{Expectation: "every timeline step was applied", Kind: "timeline",
		Outcome: OutcomeFail, Detail: strings.Join(bad, "; ")})
}

// attribute counts, for each attempt, the requests its client sent
// while it ran. The calls of a fan-out (parallel) run at once from one
// address, so a request cannot be told to be one call's rather than
// another's: each is counted once, for the lowest-numbered call running
// when it came, and the calls of a fan-out add up to the client's
// requests during it.
func attribute(res *Result) {
	byClient := map[string][]time.Duration{}
	for _, q := range res.Requests {
		if q.Client != "" {
			byClient[q.Client] = append(byClient[q.Client], q.At.D())
		}
	}
	for i := range res.Clients {
		c := &res.Clients[i]
		for j := range c.Attempts {
			c.Attempts[j].Requests = 0
		}
		for _, t := range byClient[c.Name] {
			pick := -1
			for j, a := range c.Attempts {
				if t >= a.Start.D() && t <= a.End.D() && (pick < 0 || a.Call < c.Attempts[pick].Call) {
					pick = j
				}
			}
			if pick >= 0 {
				c.Attempts[pick].Requests++
			}
		}
	}
}

// poll reads new journal entries and prints a progress line.
func (r *runner) poll(ctx context.Context) {
	r.mu.Lock()
	before := len(r.requests)
	r.mu.Unlock()
	if err := r.fetchJournal(ctx); err != nil {
		r.printf("journal: %v", err)
		return
	}
	if r.progress == nil {
		return
	}
	r.mu.Lock()
	// A node restart's journalRestarted may have dropped requests since.
	before = min(before, len(r.requests))
	codes := map[int]int{}
	for _, q := range r.requests[before:] {
		codes[q.Status]++
	}
	after := len(r.requests)
	if r.status != nil {
		r.mu.Unlock()
		r.printf("requests %3d [%s]  %s", after-before, statusCounts(codes), r.status(ctx))
		return
	}
	ok, failed := 0, 0
	var all []Attempt
	for _, c := range r.clients {
		all = append(all, c.Attempts...)
	}
	r.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].End < all[j].End })
	since := time.Since(r.start) - time.Second
	for _, a := range all {
		if a.End.D() >= since {
			if a.OK {
				ok++
			} else if !a.Cancelled {
				failed++
			}
		}
	}
	r.printf("requests %3d [%s]  attempts ended: %d ok, %d failed", after-before, statusCounts(codes), ok, failed)
}

// statusCounts writes requests by status: "200×3 410×2" (none: no answer).
func statusCounts(codes map[int]int) string {
	var parts []string
	for _, k := range sortedInts(codes) {
		label := strconv.Itoa(k)
		if k == 0 {
			label = "none"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", label, codes[k]))
	}
	return strings.Join(parts, " ")
}

func sortedInts(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// fetchJournal appends the journal entries since the cursor.
func (r *runner) fetchJournal(ctx context.Context) error {
	r.mu.Lock()
	cursor := r.cursor
	r.mu.Unlock()
	entries, err := r.ctl.Journal(ctx, cursor)
	if err != nil {
		return fmt.Errorf("read the fake's journal: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		if e.Seq <= r.cursor {
			continue
		}
		r.cursor = e.Seq
		r.requests = append(r.requests, Request{At: Millis(e.Time.Sub(r.start)), Client: r.clientOf(e), Entry: e})
	}
	return nil
}

// clientOf attributes a journal entry to a client: by the address it
// came from (every local client has a loopback address of its own), else
// by the tag in its User-Agent (in-cluster probes behind a node agent).
func (r *runner) clientOf(e journal.Entry) string {
	if c, ok := r.source[e.RemoteHost()]; ok {
		return c
	}
	return clientOf(e.Headers["User-Agent"])
}

// playStep waits for the step's time (after its condition, if it has
// one), applies it and, with for, undoes it.
func (r *runner) playStep(ctx context.Context, i int, st Step) {
	rec := StepRecord{Index: i, Name: st.Name, Kind: st.Kind, At: Millis(st.At.Duration)}
	label := st.Name
	if label == "" {
		label = fmt.Sprintf("step %d", i)
	}
	record := func() {
		r.mu.Lock()
		r.steps = append(r.steps, rec)
		r.mu.Unlock()
	}
	base := r.start
	if st.After == AfterTokensHeld {
		held, ok := r.waitTokensHeld(ctx)
		if !ok {
			if ctx.Err() == nil || time.Now().After(r.start.Add(r.s.Duration()-time.Second)) {
				rec.Error = "not every client held a token before the end of the workload, so the step never fired"
				r.printf("%s: never fired: not every client held a token", label)
				record()
			}
			return
		}
		base = held
		r.printf("%s: every client holds a token; firing in %v", label, st.At.Duration)
	}
	if !sleepUntil(ctx, base.Add(st.At.Duration)) {
		return
	}
	rec.At = Millis(time.Since(r.start))
	undo, detail, err := st.Action.apply(ctx, r, st)
	rec.Detail = detail
	if err == nil {
		rec.Applied = Millis(time.Since(r.start))
	}
	if st.blocks() && err == nil {
		// The step lasted until apply returned (a restarted pod ready).
		rec.End = Millis(time.Since(r.start))
	}
	if err != nil {
		rec.Error = err.Error()
		r.printf("%s: %s FAILED: %v", label, detail, err)
	} else if st.For.Duration > 0 {
		r.printf("%s: %s for %v", label, detail, st.For.Duration)
	} else {
		r.printf("%s: %s", label, detail)
	}
	if err == nil && st.For.Duration > 0 {
		if sleepUntil(ctx, base.Add(st.End())) {
			rec.End = Millis(time.Since(r.start))
			if undo != nil {
				if err := undo(ctx); err != nil {
					rec.Error = "undo: " + err.Error()
					r.printf("%s: undo FAILED: %v", label, err)
				}
			}
			r.printf("%s: ends", label)
		}
	}
	record()
}

// waitTokensHeld waits until every client of the workload has been
// answered a token by the fake (a 200 from its token endpoint attributed
// to it) or has an attempt that returned one, and returns when; false
// when the run ended first. It reads the journal itself, more often
// than the progress lines do, so that the step fires promptly.
func (r *runner) waitTokensHeld(ctx context.Context) (time.Time, bool) {
	for {
		if err := r.fetchJournal(ctx); err != nil && ctx.Err() != nil {
			return time.Time{}, false
		}
		if r.tokensHeld() {
			return time.Now(), true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// tokensHeld reports whether every client holds a token.
func (r *runner) tokensHeld() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := map[string]bool{}
	for _, q := range r.requests {
		if q.Client != "" && q.Status == 200 && q.Identity != "" {
			held[q.Client] = true
		}
	}
	for _, c := range r.clients {
		for _, a := range c.Attempts {
			if a.OK {
				held[c.Name] = true
			}
		}
	}
	for _, name := range r.clientNames {
		if !held[name] {
			return false
		}
	}
	return len(r.clientNames) > 0
}

// worker is one simulated client.
type worker struct {
	res   *ClientResult
	group ClientGroup
	first time.Duration
	get   clients.Client
	// exec, with relay, is a workload the user brought (group.Exec).
	exec  *execWorker
	relay *clients.Relay
	// stop releases what the client holds: its connections, or its
	// process and relay.
	stop func()
}

// buildClients builds every client of the workload: a Go client in this
// process, dialling the fake from a loopback address of its own; any
// other as its program (prepared first, once per program) behind a relay
// on an address of its own. source maps each address to its client.
func (r *runner) buildClients(ctx context.Context) ([]*worker, error) {
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	var out []*worker
	fail := func(err error) ([]*worker, error) {
		for _, w := range out {
			w.stop()
		}
		return nil, err
	}
	prepared := map[string]string{}
	for _, g := range r.s.Workload.Clients {
		id, expect := r.selection(g)
		if g.Exec != nil {
			for i := 1; i <= g.Clients(); i++ {
				name, _, first := r.client(g, i)
				relay, err := clients.NewRelay(r.imds)
				if err != nil {
					return fail(err)
				}
				c := &ClientResult{Name: name, Group: g.Name, Client: "exec", Language: "exec", Identity: expect}
				w := &worker{res: c, group: g, first: first, relay: relay, stop: func() { _ = relay.Close() },
					exec: &execWorker{res: c, group: g, first: first, dir: r.s.dir(), id: id, imds: r.imds}}
				r.source[relay.Source().String()] = name
				r.clients = append(r.clients, c)
				out = append(out, w)
			}
			continue
		}
		spec, err := reg.Lookup(g.Client)
		if err != nil {
			return fail(err)
		}
		for i := 1; i <= g.Clients(); i++ {
			name, resource, first := r.client(g, i)
			c := &ClientResult{Name: name, Group: g.Name, Client: g.Client, Language: spec.Language(), Identity: expect, Resource: resource}
			w := &worker{res: c, group: g, first: first}
			if spec.New != nil {
				hc, tr, src := clients.LoopbackHTTPClient(r.imds)
				cl, err := spec.New(clients.Options{Mode: clients.ModeIMDS, Identity: id}, hc)
				if err != nil {
					return fail(fmt.Errorf("client %s (%s): %w", name, g.Client, err))
				}
				w.get, w.stop = cl, tr.CloseIdleConnections
				r.source[src.String()] = name
			} else {
				dir, ok := prepared[spec.Program.Name]
				if !ok {
					dir, err = spec.Program.Prepare(ctx, r.cacheDir, r.progress)
					if err != nil {
						return fail(err)
					}
					prepared[spec.Program.Name] = dir
				}
				relay, err := clients.NewRelay(r.imds)
				if err != nil {
					return fail(err)
				}
				p, err := clients.Start(ctx, spec, clients.StartOptions{Dir: dir, Env: clients.ProgramEnv(clients.BaseEnv(), spec, clients.ModeIMDS, id, "", relay.Addr())})
				if err != nil {
					_ = relay.Close()
					return fail(fmt.Errorf("client %s: %w", name, err))
				}
				c.Versions = p.Hello().SDKs
				c.Runtime = p.Hello().Runtime
				w.get = p
				w.stop = func() {
					if err := p.Close(10 * time.Second); err != nil {
						r.printf("client %s: %v", name, err)
					}
					_ = relay.Close()
				}
				r.source[relay.Source().String()] = name
			}
			r.clients = append(r.clients, c)
			out = append(out, w)
		}
	}
	return out, nil
}

// client returns the name of a group's i-th client (from 1), the
// resource it asks for and the offset of its first attempt: start, plus
// its share of spread.
func (r *runner) client(g ClientGroup, i int) (name, resource string, first time.Duration) {
	base := g.baseResource()
	name = fmt.Sprintf("%s-%d", g.Name, i)
	resource = fmt.Sprintf("%s/idharness/%s/%s", strings.TrimRight(base, "/"), r.nonce, name)
	first = g.Start.Duration
	if n := g.Clients(); n > 1 && g.Spread.Duration > 0 {
		first += g.Spread.Duration * time.Duration(i-1) / time.Duration(n)
	}
	return name, resource, first
}

// selection returns how a group's clients name their identity, and the
// client ID of the identity they should get.
func (r *runner) selection(g ClientGroup) (clients.Identity, string) {
	sel, expect := r.asked(g)
	if g.PodIdentity {
		// Behind a pod identity agent, the pod's bindings decide.
		expect = r.s.boundIdentity(g)
	}
	return sel, expect
}

// asked returns how a group's clients name their identity, and the
// client ID of the identity the host gives for it.
func (r *runner) asked(g ClientGroup) (clients.Identity, string) {
	if g.Identity == "" {
		sys := clients.Identity{Kind: clients.System}
		if r.cfg.SystemAssigned != nil {
			return sys, r.cfg.SystemAssigned.ClientID
		}
		if len(r.cfg.UserAssigned) == 1 {
			return sys, r.cfg.UserAssigned[0].ClientID
		}
		return sys, ""
	}
	id, _ := r.s.Identity(g.Identity)
	switch g.selects() {
	case clients.ByObjectID:
		return clients.Identity{Kind: clients.ByObjectID, Value: id.ObjectID}, id.ClientID
	case clients.ByResourceID:
		rid := id.ResourceID
		if rid == "" {
			rid = r.cfg.UserAssignedResourceID(id.Name)
		}
		return clients.Identity{Kind: clients.ByResourceID, Value: rid}, id.ClientID
	}
	return clients.Identity{Kind: clients.ByClientID, Value: id.ClientID}, id.ClientID
}

// boundIdentity returns the client ID of the identity a pod identity
// agent should give the group's pods: for the default, the identity of
// the first binding (by name, as agents order them) whose selector is the
// pods' aadpodidbinding label; for an identity asked by name, that one
// if a binding binds it to the pods. Empty: the pods are bound to
// nothing they ask for, and must get no token at all. The bindings are
// setup's and those a bind step creates during the run: a pod bound
// later may get that identity from then on.
func (s *Scenario) boundIdentity(g ClientGroup) string {
	label := g.Labels[podidapi.BindingLabel]
	if label == "" || s.Setup.PodIdentity == nil {
		return ""
	}
	all := append([]PodIdentityBinding(nil), s.Setup.PodIdentity.Bindings...)
	for _, st := range s.Timeline {
		if b, ok := st.Action.(*bindStep); ok {
			all = append(all, PodIdentityBinding{Identity: b.Identity, Selector: b.Selector})
		}
	}
	var bound []PodIdentityBinding
	for _, b := range all {
		if b.Selector == label && (g.Identity == "" || b.Identity == g.Identity) {
			bound = append(bound, b)
		}
	}
	if len(bound) == 0 {
		return ""
	}
	sort.Slice(bound, func(i, j int) bool {
		return podidentity.BindingName(bound[i].Identity, bound[i].Selector) < podidentity.BindingName(bound[j].Identity, bound[j].Selector)
	})
	id, _ := s.Identity(bound[0].Identity)
	return id.ClientID
}

// loop runs the client's attempts until the workload ends.
func (w *worker) loop(ctx context.Context, r *runner) {
	next := r.start.Add(w.first)
	for sleepUntil(ctx, next) {
		started := time.Now()
		as := w.fanOut(ctx, r)
		r.mu.Lock()
		w.res.Attempts = append(w.res.Attempts, as...)
		r.mu.Unlock()
		next = started.Add(w.group.Every.Duration)
	}
}

// fanOut makes one attempt of the client, or with the group's parallel N
// calls at once on the same client, and returns them in call order when
// the last has ended.
func (w *worker) fanOut(ctx context.Context, r *runner) []Attempt {
	n := w.group.Calls()
	if n == 1 {
		return []Attempt{w.attempt(ctx, r)}
	}
	out := make([]Attempt, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = w.attempt(ctx, r)
			out[i].Call = i + 1
		}()
	}
	wg.Wait()
	return out
}

func (w *worker) attempt(ctx context.Context, r *runner) Attempt {
	t0 := r.start
	actx := ctx
	if w.group.Timeout.Duration > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, w.group.Timeout.Duration)
		defer cancel()
	}
	a := Attempt{Start: Millis(time.Since(t0))}
	tok, err := w.get.GetToken(actx, w.res.Resource)
	a.End = Millis(time.Since(t0))
	switch {
	case err != nil && ctx.Err() != nil:
		a.Cancelled = true
		a.Error = "cut off by the end of the workload"
	case err != nil:
		a.Error = oneLine(err.Error())
	default:
		a.OK = true
		// Expiry is what the client believes, as its SDK reported it; the
		// JWT's exp is kept beside it as evidence.
		a.ExpiresOn = tok.ExpiresOn
		if c, err := readClaims(tok.Value); err == nil {
			a.TokenAppID = c.AppID
			if c.Exp > 0 {
				a.TokenExp = time.Unix(c.Exp, 0).UTC()
			}
		} else {
			a.Error = "token unreadable: " + err.Error()
		}
		if w.group.UseToken == UseTokenVault && r.vault != nil {
			a.ResourceStatus, a.ResourceError = r.vault.use(actx, w.group.Name, tok.Value)
			if a.ResourceError != "" && ctx.Err() != nil {
				// The workload ended during the call to the resource, as
				// it can end during GetToken: the call counts for nothing.
				a.Cancelled = true
				a.Error = "cut off by the end of the workload"
			}
		}
	}
	return a
}

// oneLine puts an SDK error (often many lines: a credential chain's
// reasons, a response dump) on one line, shortened.
func oneLine(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		keep = append(keep, l)
	}
	return truncate(strings.Join(keep, " | "), 600)
}

// sleepUntil waits until t and reports whether ctx is still live.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}
