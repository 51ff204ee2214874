package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/probepod"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/yamlfile"
)

// MaxClusterPods bounds the clients of an in-cluster run, each a pod on
// one node: kind's nodes take at most 110 pods, some of them the
// cluster's own.
const MaxClusterPods = 100

// ClusterOptions say where and how an in-cluster run happens.
type ClusterOptions struct {
	// Progress receives what the run does (pods, start, steps) and a
	// line per ProgressEvery; nil prints nothing.
	Progress io.Writer
	// Stack is the idharness stack deployed on the cluster (stack.Connect).
	Stack *stack.Stack
	// Node is the node whose fakeimds the run drives and where the probe
	// pods run; empty picks the last node, a worker, as the chaos suite does.
	Node string
	// Cluster names the cluster in the result (a kind cluster's name or
	// a kubeconfig's path).
	Cluster string
	// Lead is how long after the pods are created the workload starts;
	// zero picks DefaultLead for the number of pods.
	Lead time.Duration
}

// ProgressEvery is the time between an in-cluster run's progress lines:
// each reads the journal through the API server.
const ProgressEvery = 5 * time.Second

// DefaultLead is the time the pods of an in-cluster run get to start:
// 10 s, and half a second more per pod.
func DefaultLead(pods int) time.Duration {
	return 10*time.Second + time.Duration(pods)*500*time.Millisecond
}

// CheckCluster returns an error, with the file's line, naming the first
// field an in-cluster run cannot honour, so that such a scenario fails
// rather than passes while judging another workload than the file's.
func (s *Scenario) CheckCluster() error {
	total := 0
	for i, g := range s.Workload.Clients {
		if g.Exec != nil {
			return s.fieldError(fmt.Sprintf("workload.clients[%d].exec", i), "your own command runs locally only: run this scenario without --cluster")
		}

		// Stop adding at the first group over the bound: no sum overflows.
		if n := g.Clients(); n > MaxClusterPods-total {
			sum := strconv.Itoa(total + n)
			if n > math.MaxInt-total {
				sum = "more than " + strconv.Itoa(math.MaxInt)
			}
			return s.fieldError("workload.clients", "%s clients, each a pod on one node; in a cluster at most %d (lower the counts, or run it locally, without --cluster)", sum, MaxClusterPods)
		}
		total += g.Clients()
	}
	for i, st := range s.Timeline {
		if st.Fault != nil && len(st.Fault.Match.Sources) > 0 {
			return s.fieldError(fmt.Sprintf("timeline[%d].fault.match.sources", i), "client addresses are pod IPs in a cluster, unknown when the scenario is written; match the clients by resource or identity instead")
		}
	}
	return nil
}

// checkSeed refuses a run whose fault rules draw random numbers when the
// node's fakeimds has another seed than the scenario's: the control API
// cannot change it, and other draws would judge other faults.
func (s *Scenario) checkSeed(node string, seed int64) error {
	if s.Setup.Seed == 0 || s.Setup.Seed == seed {
		return nil
	}
	for i, st := range s.Timeline {
		if st.Fault != nil && drawsRandom(st.Fault) {
			return s.fieldError("setup.seed", "timeline[%d]'s rule draws random numbers from seed %d, but the fakeimds on %s runs with seed %d, which its control API cannot change; deploy the stack with it: idharness run --seed %d --keep-cluster …",
				i, s.Setup.Seed, node, seed, s.Setup.Seed)
		}
	}
	return nil
}

// drawsRandom reports whether a rule uses its random source.
func drawsRandom(r *chaos.Rule) bool {
	if p := r.Match.Probability; p != nil && *p < 1 {
		return true
	}
	if l, ok := r.Action.Fault.(*chaos.Latency); ok && l.Jitter.Duration > 0 && l.Distribution != "" && l.Distribution != "fixed" {
		return true
	}
	return false
}

// fieldError is a problem with one of the scenario's fields, with its line.
func (s *Scenario) fieldError(field, format string, a ...any) error {
	return &yamlfile.Error{File: s.file, Line: yamlfile.Line(s.data, field), Field: field, Err: fmt.Errorf(format, a...)}
}

// RunInCluster plays s against the fakeimds of one node of a cluster
// where the idharness stack is deployed, with each client a probe pod on
// that node, then evaluates the expectations as Run does. The node's
// fakeimds is reset to its deployed state before and after the run (on
// cancellation too) and the pods' namespace is deleted. The error is for
// runs that could not be carried out.
func RunInCluster(ctx context.Context, s *Scenario, o ClusterOptions) (*Result, error) {
	if err := s.CheckCluster(); err != nil {
		return nil, err
	}
	st := o.Stack
	if st == nil {
		return nil, errors.New("in-cluster run without a stack")
	}
	node, err := pickNode(st, o.Node)
	if err != nil {
		return nil, err
	}
	if st.Images.Probe == "" {
		return nil, fmt.Errorf("the stack in %s records no probe image; redeploy it with `idharness run --keep-cluster`", st.Namespace)
	}
	if err := checkClientImages(s, st.Images.Clients); err != nil {
		return nil, err
	}
	fc, err := st.FakeIMDS(ctx, node)
	if err == nil {
		err = fc.Health(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("fakeimds control API on node %s: %w (is the stack deployed and running? `idharness run --cluster NAME --keep-cluster` deploys it)", node, err)
	}
	state, err := fc.Chaos(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the chaos state of fakeimds on %s: %w", node, err)
	}
	if err := s.checkSeed(node, state.Seed); err != nil {
		return nil, err
	}
	cfg, system, err := s.clusterConfig(st.Nodes[node])
	if err != nil {
		return nil, err
	}
	r := &runner{s: s, cfg: cfg, ctl: fc, progress: o.Progress, nonce: newNonce(), system: system, every: ProgressEvery, source: map[string]string{}}
	c := &clusterRun{r: r, kube: st.Deployer().Kube, node: node, image: st.Images.Probe, clientImages: st.Images.Clients, cluster: o.Cluster, lead: o.Lead,
		ns: "idh-scenario-" + rand.String(5), seed: state.Seed}
	defer c.cleanup()
	return c.run(ctx)
}

// pickNode returns the node to run on: the one asked for, or the last.
func pickNode(st *stack.Stack, want string) (string, error) {
	names := st.NodeNames()
	if len(names) == 0 {
		return "", fmt.Errorf("the stack in %s has no fakeimds nodes; redeploy it with `idharness run --keep-cluster`", st.Namespace)
	}
	if want == "" {
		// The last node is a worker: the API server's node stays out of it.
		return names[len(names)-1], nil
	}
	for _, n := range names {
		if n == want {
			return n, nil
		}
	}
	return "", fmt.Errorf("node %q has no fakeimds; nodes: %s", want, strings.Join(names, ", "))
}

// clusterConfig returns the configuration the run gives the node's
// fakeimds: the node's own (its host, hence the resource IDs it derives,
// and its system-assigned identity, which system steps restore) with the
// scenario's identities, token settings and throttling.
func (s *Scenario) clusterConfig(node config.Config) (config.Config, config.Identity, error) {
	sc, err := s.ServerConfig()
	if err != nil {
		return config.Config{}, config.Identity{}, err
	}
	system := *config.Default().SystemAssigned
	if node.SystemAssigned != nil {
		system = *node.SystemAssigned
	}
	cfg := node
	cfg.SystemAssigned = nil
	if sc.SystemAssigned != nil {
		cfg.SystemAssigned = &system
	}
	cfg.UserAssigned = sc.UserAssigned
	cfg.Tokens.Lifetime, cfg.Tokens.RefreshBefore, cfg.Tokens.Cache = sc.Tokens.Lifetime, sc.Tokens.RefreshBefore, sc.Tokens.Cache
	cfg.Chaos.Throttle = sc.Chaos.Throttle
	return cfg, system, nil
}

// clusterRun is one in-cluster run.
type clusterRun struct {
	r     *runner
	kube  kubernetes.Interface
	node  string
	image string
	// clientImages are the client programs' images, by program.
	clientImages map[string]string
	cluster      string
	ns           string
	lead         time.Duration
	seed         int64

	// nsCreated and nodeTouched say what cleanup has to undo.
	nsCreated, nodeTouched bool
}

// podPlan is one client's probe pod.
type podPlan struct {
	client ClientResult
	pod    string
	args   []string
	env    map[string]string
	// program, for a client of another language than Go, is the client
	// program whose image the pod runs (the stack's Images.Clients).
	program string
}

// planPods maps each client of the workload to its probe pod's flags:
// kind to --client, identity to --identity, every to --interval, timeout
// to --timeout, and the run's start (t0) plus the client's offset to
// --start-at, so that pods created one by one start on one clock.
func (r *runner) planPods(t0 time.Time) []podPlan {
	end := t0.Add(r.s.Duration())
	var out []podPlan
	reg, _ := registry()
	for _, g := range r.s.Workload.Clients {
		sel, expect := r.selection(g)
		language, program := "go", ""
		if reg != nil {
			if spec, err := reg.Lookup(g.Client); err == nil {
				language = spec.Language()
				if spec.New == nil {
					program = spec.Program.Name
				}
			}
		}
		n := g.Clients()
		timeout := g.Timeout.Duration
		if timeout == 0 {
			// No application deadline: --end-at cuts calls off at the end
			// of the workload, which no call can outlast.
			timeout = r.s.Duration()
		}
		for i := 1; i <= n; i++ {
			name, resource, first := r.client(g, i)
			args := []string{
				"--client=" + g.Client,
				"--identity=" + sel.String(),
				"--resource=" + resource,
				"--interval=" + g.Every.Duration.String(),
				"--duration=" + (r.s.Duration() - first).String(),
				"--timeout=" + timeout.String(),
				"--start-at=" + t0.Add(first).UTC().Format(time.RFC3339Nano),
				"--end-at=" + end.UTC().Format(time.RFC3339Nano),
				"--tag=" + clientTag + name,
			}
			out = append(out, podPlan{
				client: ClientResult{Name: name, Group: g.Name, Client: g.Client, Language: language, Identity: expect, Resource: resource},
				pod:    "probe-" + name, args: args, program: program,
			})
		}
	}
	return out
}

// cutOffSlack is how close to the end of the workload a failed attempt
// must end to count as cut off by --end-at rather than as a failure.
const cutOffSlack = 500 * time.Millisecond

// attemptsFromProbe converts a probe pod's result lines into its
// client's attempts on the run's clock (t0): the same records a local
// run's client makes. A call that --end-at cut off is Cancelled, as a
// local attempt still running at the end is.
func attemptsFromProbe(lines []probe.Result, t0 time.Time, workload time.Duration) []Attempt {
	var out []Attempt
	for _, l := range lines {
		a := Attempt{Start: Millis(l.Time.Sub(t0))}
		a.End = Millis(a.Start.D() + l.LatencyMs.D())
		switch {
		case l.OK():
			a.OK = true
			a.TokenAppID, a.TokenExp, a.ExpiresOn = l.ClientIDGot, l.TokenExp, l.ExpiresOn
			if l.ClaimsError != "" {
				a.Error = "token unreadable: " + l.ClaimsError
			}
		case a.End.D() >= workload-cutOffSlack && strings.Contains(l.Error, "context"):
			a.Cancelled = true
			a.Error = "cut off by the end of the workload"
		default:
			a.Error = oneLine(l.Error)
		}
		out = append(out, a)
	}
	return out
}

// readProbeLog returns a probe pod's result lines; a log without the
// summary line means the probe did not finish, and is an error.
func readProbeLog(log []byte) ([]probe.Result, error) {
	var out []probe.Result
	summary := false
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		l, err := probe.ParseLine(b)
		if err != nil {
			return nil, err
		}
		if l.Summary != nil {
			summary = true
			continue
		}
		out = append(out, l.Result)
	}
	if !summary {
		return out, errors.New("no summary line: the probe did not finish")
	}
	return out, nil
}

func (c *clusterRun) run(ctx context.Context) (*Result, error) {
	r := c.r
	// Progress lines count from here until the workload's start is set.
	r.start = time.Now()
	plans := r.planPods(time.Time{})
	r.printf("scenario %s: %s (in-cluster: node %s, seed %d, %d pods, %v)", r.s.ID, r.s.Title, c.node, c.seed, len(plans), r.s.Duration())
	if r.s.Setup.Seed != 0 && r.s.Setup.Seed != c.seed {
		r.printf("note: the node's seed is %d, not the scenario's %d; no rule of the scenario draws random numbers", c.seed, r.s.Setup.Seed)
	}
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns, Labels: fixtures.Labels}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s for the probe pods: %w", c.ns, err)
	}
	c.nsCreated = true
	if err := c.setupNode(ctx); err != nil {
		return nil, err
	}
	lead := c.lead
	if lead <= 0 {
		lead = DefaultLead(len(plans))
	}
	t0 := time.Now().Add(lead).Truncate(time.Millisecond)
	r.start = t0
	plans = r.planPods(t0)
	pods := map[string]string{}
	for _, p := range plans {
		image := c.image
		if p.program != "" {
			image = c.clientImages[p.program]
		}
		pod := probepod.Pod(probepod.Spec{Name: p.pod, Namespace: c.ns, Node: c.node, Image: image, Args: p.args, Env: p.env,
			Labels: map[string]string{"idharness.io/scenario": r.s.ID}})
		if _, err := c.kube.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create probe pod %s/%s: %w", c.ns, p.pod, err)
		}
		pods[p.client.Name] = p.pod
	}
	r.printf("%d probe pods created in %s on %s; the workload starts at %s", len(plans), c.ns, c.node, t0.UTC().Format("15:04:05.000"))
	if err := c.waitRunning(ctx, len(plans), t0); err != nil {
		return nil, err
	}
	if err := c.attributeByPodIP(ctx, pods); err != nil {
		return nil, err
	}
	res := &Result{Scenario: r.s.ID, Title: r.s.Title, File: r.s.file, Seed: c.seed, Started: t0,
		InCluster: &InCluster{Cluster: c.cluster, Node: c.node, Namespace: c.ns, Pods: pods}}
	end := t0.Add(r.s.Duration())
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	r.status = c.podStatus
	r.playTimeline(ctx, runCtx)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("run interrupted: %w", ctx.Err())
	}
	res.Duration = Millis(time.Since(t0))
	r.printf("workload ended; reading the pods' results")
	if err := c.waitDone(ctx, len(plans), time.Minute); err != nil {
		return nil, err
	}
	for _, p := range plans {
		log, err := c.kube.CoreV1().Pods(c.ns).GetLogs(p.pod, &corev1.PodLogOptions{Container: probepod.Container}).DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the log of probe pod %s/%s: %w", c.ns, p.pod, err)
		}
		lines, err := readProbeLog(log)
		if err != nil {
			return nil, fmt.Errorf("probe pod %s/%s (client %s): %w; its log:\n%s", c.ns, p.pod, p.client.Name, err, tail(log, 2000))
		}
		cr := p.client
		cr.Attempts = attemptsFromProbe(lines, t0, r.s.Duration())
		r.mu.Lock()
		r.clients = append(r.clients, &cr)
		r.mu.Unlock()
	}
	return r.finish(ctx, res)
}

// attributeByPodIP maps each probe pod's address to its client: a client
// program's requests carry no tag of the probe's, so the journal knows
// them by the pod they come from.
func (c *clusterRun) attributeByPodIP(ctx context.Context, pods map[string]string) error {
	list, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list the probe pods: %w", err)
	}
	byPod := map[string]string{}
	for client, pod := range pods {
		byPod[pod] = client
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	for _, p := range list.Items {
		if client, ok := byPod[p.Name]; ok && p.Status.PodIP != "" {
			c.r.source[p.Status.PodIP] = client
		}
	}
	return nil
}

// checkClientImages returns an error naming the first client program of
// s whose image the stack lacks.
func checkClientImages(s *Scenario, images map[string]string) error {
	reg, err := registry()
	if err != nil {
		return err
	}
	for _, g := range s.Workload.Clients {
		if g.Client == "" {
			continue
		}
		spec, err := reg.Lookup(g.Client)
		if err != nil {
			return err
		}
		if spec.New == nil && images[spec.Program.Name] == "" {
			return fmt.Errorf("client %s runs in the image of program %s, which this cluster's stack does not have: deploy it with `idharness run --keep-cluster --client-images %s`", g.Client, spec.Program.Name, spec.Program.Name)
		}
	}
	return nil
}

// setupNode gives the node's fakeimds the scenario's setup: its deployed
// state (POST /v1/reset: no rules, an empty journal), then exactly the
// scenario's identities, its token settings and its throttling.
func (c *clusterRun) setupNode(ctx context.Context) error {
	fc, cfg := c.r.ctl, c.r.cfg
	c.nodeTouched = true
	if err := fc.Reset(ctx); err != nil {
		return fmt.Errorf("reset fakeimds on %s: %w", c.node, err)
	}
	ids, err := fc.Identities(ctx)
	if err != nil {
		return fmt.Errorf("list the identities of fakeimds on %s: %w", c.node, err)
	}
	// The node's own user-assigned identities are not the scenario's: a
	// client asking for the host's default would get a 400 "multiple
	// identities" without a system-assigned identity.
	for _, id := range ids {
		if id.System {
			continue
		}
		if _, err := fc.Detach(ctx, client.Selector{ClientID: id.ClientID}); err != nil {
			return fmt.Errorf("detach the node's identity %s on %s: %w", id.Name, c.node, err)
		}
	}
	if cfg.SystemAssigned == nil {
		if err := fc.RemoveSystem(ctx); err != nil {
			return fmt.Errorf("remove the system-assigned identity on %s (setup.systemAssigned: false): %w", c.node, err)
		}
	}
	for _, id := range cfg.UserAssigned {
		if _, err := fc.Attach(ctx, id); err != nil {
			return fmt.Errorf("attach identity %s on %s (setup.identities): %w", id.Name, c.node, err)
		}
	}
	life, before := cfg.Tokens.Lifetime, cfg.Tokens.RefreshBefore
	cache := cfg.Tokens.CacheOn()
	if _, err := fc.SetTokens(ctx, api.TokenSettings{Lifetime: &life, RefreshBefore: &before, Cache: &cache}); err != nil {
		return fmt.Errorf("set token settings on %s (setup.tokenLifetime, setup.tokenRefreshBefore): %w", c.node, err)
	}
	if _, err := fc.SetThrottle(ctx, cfg.Chaos.Throttle); err != nil {
		return fmt.Errorf("set throttling on %s (setup.throttle): %w", c.node, err)
	}
	if old, err := fc.Journal(ctx, 0); err == nil && len(old) > 0 {
		c.r.cursor = old[len(old)-1].Seq
	}
	c.r.printf("fakeimds on %s set up: %d user-assigned identities, system-assigned %v, token lifetime %v, throttling %v",
		c.node, len(cfg.UserAssigned), cfg.SystemAssigned != nil, life, cfg.Chaos.Throttle.Enabled == nil || *cfg.Chaos.Throttle.Enabled)
	return nil
}

// waitRunning waits until every probe pod runs, which must happen
// before t0: a pod starting late would miss the workload's start.
func (c *clusterRun) waitRunning(ctx context.Context, n int, t0 time.Time) error {
	last := time.Time{}
	for {
		pods, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list the probe pods in %s: %w", c.ns, err)
		}
		running, waiting := 0, map[string]int{}
		for _, p := range pods.Items {
			switch p.Status.Phase {
			case corev1.PodRunning, corev1.PodSucceeded:
				running++
				continue
			case corev1.PodFailed:
				// The probe exits early only on bad usage: its log says why.
				log, _ := c.kube.CoreV1().Pods(c.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: probepod.Container}).DoRaw(ctx)
				return fmt.Errorf("probe pod %s/%s failed before the workload's start; its log:\n%s", c.ns, p.Name, tail(log, 2000))
			}
			waiting[podWaitReason(p)]++
		}
		if running == n {
			c.r.printf("%d/%d pods running, %.1fs before the start", running, n, time.Until(t0).Seconds())
			return nil
		}
		if !time.Now().Before(t0) {
			return fmt.Errorf("%d of %d probe pods in %s on %s were not running at the workload's start (%s); the node is slow or overloaded: try again, or give the pods more time with --lead", n-running, n, c.ns, c.node, reasons(waiting))
		}
		if time.Since(last) >= ProgressEvery {
			c.r.printf("%d/%d pods running (%s)", running, n, reasons(waiting))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run interrupted: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitDone waits until every probe pod has exited.
func (c *clusterRun) waitDone(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		pods, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list the probe pods in %s: %w", c.ns, err)
		}
		done, busy := 0, []string{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				done++
			} else {
				busy = append(busy, p.Name)
			}
		}
		if done == n {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(busy)
			return fmt.Errorf("probe pods %s in %s did not exit within %v of the workload's end (--end-at stops them): see `kubectl -n %s logs POD`", strings.Join(busy, ", "), c.ns, limit, c.ns)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run interrupted: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// podStatus counts the probe pods by phase for the progress lines.
func (c *clusterRun) podStatus(ctx context.Context) string {
	pods, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "pods: " + err.Error()
	}
	phases := map[string]int{}
	for _, p := range pods.Items {
		phases[strings.ToLower(string(p.Status.Phase))]++
	}
	return "pods " + reasons(phases)
}

// podWaitReason says why a pod is not running yet: its container's
// waiting reason (ContainerCreating, ErrImageNeverPull, …) or its phase.
func podWaitReason(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason
		}
	}
	return string(p.Status.Phase)
}

func reasons(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cleanup resets the node's fakeimds and deletes the pods' namespace,
// with a context of its own: it runs after cancellation too.
func (c *clusterRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if c.nodeTouched {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.r.ctl.Reset(ctx); err != nil {
				c.r.printf("cleanup: could not reset fakeimds on %s: %v; its rules and identities may be the scenario's until `idharness run --keep-cluster` redeploys it", c.node, err)
				return
			}
			c.r.printf("cleanup: fakeimds on %s reset to its deployed state", c.node)
		}()
	}
	if c.nsCreated {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bg := metav1.DeletePropagationBackground
			if err := c.kube.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
				c.r.printf("cleanup: could not delete namespace %s: %v; delete it with `kubectl delete namespace %s`", c.ns, err, c.ns)
				return
			}
			c.r.printf("cleanup: namespace %s and its pods deleted", c.ns)
		}()
	}
	wg.Wait()
}
