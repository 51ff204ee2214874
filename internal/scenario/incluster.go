package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/podidentity"
	"github.com/idharness/idharness/internal/probepod"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/vault"
	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
	"github.com/idharness/idharness/pkg/proberesult"
	"github.com/idharness/idharness/pkg/yamlfile"
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
	// Lead bounds how long the pods, once created, may take to be ready
	// (their clients built); the workload starts StartMargin after they
	// all are. Zero picks DefaultLead for the number of pods (and
	// ProgramLead more for client programs).
	Lead time.Duration
	// StartGate, when set, is held (a send) from the creation of the
	// run's namespace until its pods run, and released (a receive) then:
	// runs sharing one (a Pool's) start their pods one run at a time,
	// except runs that start few Go pods only (LightPods), which do not
	// take it.
	// Pod start-up is where a 2-core cluster is busiest (image, sandbox,
	// network and runtime start for every pod): five runs creating 100
	// pods at once left one run's pods short of running at its start.
	StartGate chan struct{}
}

// LightPods is the most pods a run of Go clients only may start without
// the start gate (ClusterOptions.StartGate). Such pods run the probe's
// small static image and are running within a few seconds; the gate is
// for the pod storms (32 and 50 pods) and the Python, JavaScript and Java
// runtimes, whose starts took a loaded node's CPU. Holding it for every
// run made it the suite's queue: 28 plays on 8 nodes, 5 to 9 s each
// through the gate, and the eighth play of the first wave started its
// workload 76 s into the suite.
const LightPods = 10

// startsLight tells whether a run of s with pods pods may start them
// without the start gate (LightPods).
func (s *Scenario) startsLight(pods int) bool {
	return pods <= LightPods && len(s.ClientPrograms()) == 0
}

// ProgressEvery is the time between an in-cluster run's progress lines:
// each reads the journal through the API server.
const ProgressEvery = 5 * time.Second

// DefaultLead is the time the pods of an in-cluster run get to be ready:
// 10 s, and a second more per pod. Half a second per pod was too little
// for a 32-pod storm on a node of a 2-core machine running four other
// plays (22 of 32 running after 26 s, in a clean-clone CI run).
func DefaultLead(pods int) time.Duration {
	return 10*time.Second + time.Duration(pods)*time.Second
}

// ProgramLead is added to the lead of a run whose pods run client
// programs (Python, JavaScript, Java), whose images are hundreds of MB:
// on a loaded 2-core machine five such pods took 4.4 s to run in one
// play, and more than 15 s (all ContainerCreating at the start) and
// 36.7 s in two plays of IDH-CHAOS-0031 right after their images were
// loaded.
const ProgramLead = 40 * time.Second

// defaultLead is the lead of s's in-cluster run when none is given.
func (s *Scenario) defaultLead(pods int) time.Duration {
	if len(s.ClientPrograms()) > 0 {
		return DefaultLead(pods) + ProgramLead
	}
	return DefaultLead(pods)
}

// CheckCluster returns an error, with the file's line, naming the first
// field an in-cluster run cannot honour, so that such a scenario fails
// rather than passes while judging another workload than the file's.
func (s *Scenario) CheckCluster() error {
	if err := s.checkClusterWorkload(); err != nil {
		return err
	}
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
		if cc, ok := st.Action.(clusterChecker); ok {
			field := fmt.Sprintf("timeline[%d].%s", i, st.Kind)
			if err := cc.checkCluster(s, field); err != nil {
				f, problem, _ := strings.Cut(err.Error(), ": ")
				return s.fieldError(f, "%s", problem)
			}
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
		if f, ok := st.Action.(*faultStep); ok && drawsRandom(&f.Rule) {
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
	if why := s.NotApplicable(st.WIWebhook); why != "" {
		return nil, errors.New(why)
	}
	node, err := pickNode(st, o.Node, len(s.ClientPrograms()) > 0)
	if err != nil {
		return nil, err
	}
	if st.Images.Probe == "" {
		return nil, fmt.Errorf("the stack in %s records no probe image; redeploy it with `idharness run --keep-cluster`", st.Namespace)
	}
	if err := checkClientImages(s, st.Images.Clients); err != nil {
		return nil, err
	}
	var dyn dynamic.Interface
	if s.podIdentity() {
		if dyn, err = podIdentityAgent(ctx, st); err != nil {
			return nil, err
		}
	}
	if s.usesVault() && st.Images.Vault == "" {
		return nil, fmt.Errorf("a group sets useToken: vault, but the stack in %s has no protected resource deployed; redeploy it with `idharness run --keep-cluster`", st.Namespace)
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
	ns := "idh-scenario-" + rand.String(5)
	r := &runner{s: s, cfg: cfg, ctl: fc, progress: o.Progress, nonce: newNonce(), system: system, every: ProgressEvery, source: map[string]string{},
		kube: &kubeEnv{kube: st.Deployer().Kube, dyn: dyn, namespace: st.Namespace, runNamespace: ns, node: node, vaultURL: st.VaultURL(), agents: st.PodIdentityAgents(),
			wiStack: st.WorkloadIdentity, probeImage: st.Images.Probe}}
	c := &clusterRun{r: r, stack: st, kube: st.Deployer().Kube, dyn: dyn, node: node, image: st.Images.Probe, clientImages: st.Images.Clients, cluster: o.Cluster, lead: o.Lead, gate: o.StartGate,
		ns: ns, seed: state.Seed}
	defer c.cleanup()
	return c.run(ctx)
}

// pickNode returns the node to run on: the one asked for, or the last;
// for a run of client programs (programs), the last of the nodes with
// their images, if the run that deployed the stack loaded them into
// some nodes only (Images.ClientNodes), and never another.
func pickNode(st *stack.Stack, want string, programs bool) (string, error) {
	names := st.NodeNames()
	if len(names) == 0 {
		return "", fmt.Errorf("the stack in %s has no fakeimds nodes; redeploy it with `idharness run --keep-cluster`", st.Namespace)
	}
	if want == "" {
		if programs {
			for i := len(names) - 1; i >= 0; i-- {
				if st.Images.ClientsUnpacked(names[i]) {
					return names[i], nil
				}
			}
		}
		// The last node is a worker: the API server's node stays out of it.
		return names[len(names)-1], nil
	}
	for _, n := range names {
		if n != want {
			continue
		}
		if programs && !st.Images.ClientsUnpacked(n) {
			return "", fmt.Errorf("node %q lacks the client programs' images (the run that deployed the stack loaded them into %s only): pass one of those to --node, or leave --node out", want, strings.Join(st.Images.ClientNodes, ", "))
		}
		return n, nil
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

// kubeEnv is what steps acting on the cluster need: a client, the
// stack's namespace and the run's node.
type kubeEnv struct {
	kube kubernetes.Interface
	// dyn reaches the pod identity objects; nil when setup has none.
	dyn dynamic.Interface
	// namespace is the stack's; runNamespace the run's own, where its
	// pods and pod identity objects live.
	namespace, runNamespace string
	node                    string
	// vaultURL is the stack's protected resource, where groups with
	// useToken: vault use their tokens.
	vaultURL string
	// agents are the stack's pod identity agents' DaemonSets.
	agents []string
	// pods are the run's probe pods, by client, once created.
	pods map[string]string
	// wiStack returns the stack's workload identity part (wiPod steps).
	wiStack func(context.Context) (*stack.WorkloadIdentity, error)
	// probeImage is the probe's image, which wiPod steps' pods run.
	probeImage string
	// wi is the run's workload identity set-up; nil without one.
	wi *wiRun
	// dns is the run's DNS resolver; nil when no dns step needs one.
	dns *dnsRun
}

// clusterRun is one in-cluster run.
type clusterRun struct {
	r *runner
	// stack is the deployed stack the run plays against.
	stack *stack.Stack
	kube  kubernetes.Interface
	// dyn creates the pod identity objects; nil when setup has none.
	dyn   dynamic.Interface
	node  string
	image string
	// clientImages are the client programs' images, by program.
	clientImages map[string]string
	cluster      string
	ns           string
	lead         time.Duration
	seed         int64
	// gate is ClusterOptions.StartGate.
	gate chan struct{}

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
	// labels are the group's labels for the pod.
	labels map[string]string
	// wi: the pod is a workload identity pod (setup.workloadIdentity).
	wi bool
	// first is when its client's first call starts, from the run's start.
	first time.Duration
}

// scenarioLabel labels each probe pod with its scenario's id.
const scenarioLabel = "idharness.io/scenario"

// planPods maps each client of the workload to its probe pod's flags:
// kind to --client, identity to --identity, every to --interval, timeout
// to --timeout, and the client's offset to --start-offset and the
// workload's end to --end-offset, both from the run's start, which the
// pods learn once they are all ready (probepod.Spec.Gated), so that pods
// created one by one start on one clock.
func (r *runner) planPods() []podPlan {
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
			if g.UseToken == UseTokenVault {
				// The stack's vault accepts its own audience only; each
				// pod is a process of its own, whose SDK cache no other
				// client shares.
				resource = vault.DefaultAudience
			}
			args := []string{
				"--client=" + g.Client,
				"--identity=" + sel.String(),
				"--resource=" + resource,
				"--interval=" + g.Every.Duration.String(),
				"--duration=" + (r.s.Duration() - first).String(),
				"--timeout=" + timeout.String(),
				"--start-offset=" + first.String(),
				"--end-offset=" + r.s.Duration().String(),
				"--tag=" + clientTag + name,
			}
			if g.Parallel > 1 {
				args = append(args, fmt.Sprintf("--parallel=%d", g.Parallel))
			}
			if g.WorkloadIdentity {
				args = append(args, wiProbeArgs()...)
			}
			if g.UseToken == UseTokenVault && r.kube != nil {
				args = append(args, "--vault-url="+r.kube.vaultURL, "--secret="+fixtures.SecretNode)
			}
			out = append(out, podPlan{
				client: ClientResult{Name: name, Group: g.Name, Client: g.Client, Language: language, Identity: expect, Resource: resource},
				pod:    "probe-" + name, args: args, program: program, labels: g.Labels, wi: g.WorkloadIdentity, first: first,
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
func attemptsFromProbe(lines []proberesult.Result, t0 time.Time, workload time.Duration) []Attempt {
	var out []Attempt
	for _, l := range lines {
		a := Attempt{Start: Millis(l.Time.Sub(t0)), Call: l.Call, ResourceStatus: l.ResourceStatus}
		a.End = Millis(a.Start.D() + l.LatencyMs.D())
		if l.Stage == proberesult.StageResource {
			// The token came; its use at the resource failed, which is
			// the resource's verdict, not the call's.
			a.ResourceError = oneLine(l.Error)
			l.Status, l.Error = proberesult.StatusOK, ""
		}
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
		if a.ResourceError != "" && a.End.D() >= workload-cutOffSlack && strings.Contains(a.ResourceError, "context") {
			// --end-at cut the call off at the resource: like a call cut
			// off in GetToken, it counts for nothing.
			a.Cancelled = true
			a.Error = "cut off by the end of the workload"
		}
		out = append(out, a)
	}
	return out
}

// errNoSummary: the probe's log ends without its summary line.
var errNoSummary = errors.New("no summary line: the probe did not finish")

// readProbeLog returns a probe pod's result lines; a log without the
// summary line means the probe did not finish, and is an error.
func readProbeLog(log []byte) ([]proberesult.Result, error) {
	var out []proberesult.Result
	summary := false
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		l, err := proberesult.ParseLine(b)
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
		return out, errNoSummary
	}
	return out, nil
}

func (c *clusterRun) run(ctx context.Context) (*Result, error) {
	r := c.r
	// Progress lines count from here until the workload's start is set.
	r.start = time.Now()
	plans := r.planPods()
	r.printf("scenario %s: %s (in-cluster: node %s, seed %d, %d pods, %v)", r.s.ID, r.s.Title, c.node, c.seed, len(plans), r.s.Duration())
	if r.s.Setup.Seed != 0 && r.s.Setup.Seed != c.seed {
		r.printf("note: the node's seed is %d, not the scenario's %d; no rule of the scenario draws random numbers", c.seed, r.s.Setup.Seed)
	}
	// release lets the next run sharing the gate start its pods: once
	// this run's pods run, or when it returns before that.
	release := func() {}
	if c.gate != nil && !r.s.startsLight(len(plans)) {
		select {
		case c.gate <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("run interrupted: %w", ctx.Err())
		}
		var once sync.Once
		release = func() { once.Do(func() { <-c.gate }) }
		defer release()
		r.printf("starting pods (other runs' pods are not starting meanwhile)")
	} else if c.gate != nil {
		r.printf("starting pods beside other runs' (%d pods, Go clients only)", len(plans))
	}
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns, Labels: r.s.namespaceLabels()}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s for the probe pods: %w", c.ns, err)
	}
	c.nsCreated = true
	if err := c.bindIdentities(ctx); err != nil {
		return nil, err
	}
	if err := c.setupWorkloadIdentity(ctx, c.stack); err != nil {
		return nil, err
	}
	if err := c.setupDNS(ctx); err != nil {
		return nil, err
	}
	if err := c.setupNode(ctx); err != nil {
		return nil, err
	}
	lead := c.lead
	if lead <= 0 {
		lead = r.s.defaultLead(len(plans))
	}
	plans = r.planPods()
	for _, p := range plans {
		r.clientNames = append(r.clientNames, p.client.Name)
	}
	pods := map[string]string{}
	for _, p := range plans {
		image := c.image
		if p.program != "" {
			image = c.clientImages[p.program]
		}
		pod := r.s.probePod(p, c.ns, c.node, image)
		if r.kube.dns != nil && p.wi {
			r.kube.dns.point(pod)
		}
		if _, err := c.kube.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create probe pod %s/%s: %w", c.ns, p.pod, err)
		}
		pods[p.client.Name] = p.pod
	}
	r.printf("%d probe pods created in %s on %s; the workload starts once they are all ready (at most %s)", len(plans), c.ns, c.node, lead.Round(time.Second))
	err := c.waitReady(ctx, len(plans), time.Now().Add(lead))
	release()
	if err != nil {
		return nil, err
	}
	r.kube.pods = pods
	if err := r.attributePods(ctx); err != nil {
		return nil, err
	}
	t0, err := c.setStart(ctx, plans)
	if err != nil {
		return nil, err
	}
	r.start = t0
	r.printf("the workload starts at %s", t0.UTC().Format("15:04:05.000"))
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
	first := map[string]time.Duration{}
	for _, p := range plans {
		lines, err := c.probeLines(ctx, p)
		if err != nil {
			return nil, err
		}
		cr := p.client
		cr.Attempts = attemptsFromProbe(lines, t0, r.s.Duration())
		r.mu.Lock()
		r.clients = append(r.clients, &cr)
		r.mu.Unlock()
		first[cr.Name] = p.first
	}
	if err := lateStarts(r.clients, first, r.s.Duration()); err != nil {
		return nil, err
	}
	return r.finish(ctx, res)
}

// probePod is the pod of one client's probe. A scenario that restarts
// its node restarts its probes too (restartPolicy OnFailure): the node's
// restart kills the probe with no summary line, and its next instance
// goes on with the same --start-at and --end-at to the workload's end.
func (s *Scenario) probePod(p podPlan, namespace, node, image string) *corev1.Pod {
	pod := probepod.Pod(probepod.Spec{Name: p.pod, Namespace: namespace, Node: node, Image: image, Args: p.args, Env: p.env,
		Labels: podLabels(p.labels, s.ID), Gated: true})
	if s.restartsNode() {
		pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}
	if p.wi && s.Setup.WorkloadIdentity != nil {
		wiPod(pod, *s.Setup.WorkloadIdentity)
	}
	return pod
}

// podLabels are a probe pod's labels: its group's and its scenario's.
func podLabels(group map[string]string, scenario string) map[string]string {
	out := map[string]string{scenarioLabel: scenario}
	for k, v := range group {
		out[k] = v
	}
	return out
}

// podIdentity reports whether the run's pods run in a namespace opted in
// to pod identity (validation makes it all groups or none).
func (s *Scenario) podIdentity() bool {
	for _, g := range s.Workload.Clients {
		if g.PodIdentity {
			return true
		}
	}
	return false
}

// usesVault reports whether a group uses its tokens at the vault.
func (s *Scenario) usesVault() bool {
	for _, g := range s.Workload.Clients {
		if g.UseToken == UseTokenVault {
			return true
		}
	}
	return false
}

// namespaceLabels are the labels of the run's namespace: the stack's,
// and the pod identity opt-in when the groups ask for it, as the suites'
// PodIdentityNamespace does.
func (s *Scenario) namespaceLabels() map[string]string {
	out := map[string]string{}
	for k, v := range fixtures.Labels {
		out[k] = v
	}
	if s.podIdentity() {
		out[podidentity.OptInLabel] = podidentity.OptInValue
	}
	return out
}

// podIdentityAgent returns a client for the pod identity objects when a
// pod identity agent runs in the stack, and an error saying how to
// deploy one otherwise: without it, the groups' calls would reach the
// node's IMDS directly and judge another setup than the scenario's.
func podIdentityAgent(ctx context.Context, st *stack.Stack) (dynamic.Interface, error) {
	found := false
	for _, ds := range st.PodIdentityAgents() {
		_, err := st.Deployer().Kube.AppsV1().DaemonSets(st.Namespace).Get(ctx, ds, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("look for the pod identity agent %s in %s: %w", ds, st.Namespace, err)
		}
		found = found || err == nil
	}
	if !found {
		return nil, fmt.Errorf("the scenario runs its pods with pod identity, but the stack in %s has no pod identity agent (DaemonSets recorded: %q): deploy one with `idharness run --profile reference --keep-cluster` (or aad-pod-identity)", st.Namespace, st.PodIdentityAgents())
	}
	dyn, err := dynamic.NewForConfig(st.REST())
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for the pod identity objects: %w", err)
	}
	return dyn, nil
}

// bindIdentities creates setup.podIdentity's objects in the run's
// namespace before any pod starts; deleting the namespace deletes them.
func (c *clusterRun) bindIdentities(ctx context.Context) error {
	pi := c.r.s.Setup.PodIdentity
	if pi == nil {
		return nil
	}
	if c.dyn == nil {
		return errors.New("setup.podIdentity without a client for the pod identity objects")
	}
	for _, b := range pi.Bindings {
		id, _ := c.r.s.Identity(b.Identity)
		rid := id.ResourceID
		if rid == "" {
			rid = c.r.cfg.UserAssignedResourceID(id.Name)
		}
		name, err := podidentity.Bind(ctx, c.dyn, c.ns, id.Name, id.ClientID, rid, b.Selector)
		if err != nil {
			return fmt.Errorf("setup.podIdentity: %w", err)
		}
		c.r.printf("pod identity: %s binds %s (client %s) to pods labelled %s=%s", name, id.Name, id.ClientID, podidapi.BindingLabel, b.Selector)
	}
	return nil
}

// attributePods maps each probe pod's address to its client: a client
// program's requests carry no tag of the probe's, so the journal knows
// them by the pod they come from. A pod whose node restarted may have a
// new address; its old one stays its own.
func (r *runner) attributePods(ctx context.Context) error {
	k := r.kube
	list, err := k.kube.CoreV1().Pods(k.runNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list the probe pods: %w", err)
	}
	byPod := map[string]string{}
	for client, pod := range k.pods {
		byPod[pod] = client
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range list.Items {
		if client, ok := byPod[p.Name]; ok && p.Status.PodIP != "" {
			r.source[p.Status.PodIP] = client
		}
	}
	return nil
}

// probeLines returns a probe pod's result lines. A probe whose node
// restarted has two instances: the killed one, whose log ends without a
// summary (perhaps in the middle of a line), and the one that went on to
// the end; the kubelet keeps the log of the last instance before the
// current one.
func (c *clusterRun) probeLines(ctx context.Context, p podPlan) ([]proberesult.Result, error) {
	logOf := func(previous bool) ([]byte, error) {
		log, err := c.kube.CoreV1().Pods(c.ns).GetLogs(p.pod, &corev1.PodLogOptions{Container: probepod.Container, Previous: previous}).DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the log of probe pod %s/%s: %w", c.ns, p.pod, err)
		}
		return log, nil
	}
	var lines []proberesult.Result
	pod, err := c.kube.CoreV1().Pods(c.ns).Get(ctx, p.pod, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read probe pod %s/%s: %w", c.ns, p.pod, err)
	}
	restarts := int32(0)
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == probepod.Container {
			restarts = cs.RestartCount
		}
	}
	if restarts > 1 {
		return nil, fmt.Errorf("probe pod %s/%s (client %s) restarted %d times: the kubelet keeps the logs of its last two instances only", c.ns, p.pod, p.client.Name, restarts)
	}
	if restarts == 1 {
		// Kept by the node's restart: the kubelet serves no previous log
		// of a pod that has ended.
		c.r.mu.Lock()
		log, ok := c.r.killedLogs[p.client.Name]
		c.r.mu.Unlock()
		if !ok {
			if log, err = logOf(true); err != nil {
				return nil, err
			}
		}
		if lines, err = readKilledProbeLog(log); err != nil {
			return nil, fmt.Errorf("probe pod %s/%s (client %s), its instance before the restart: %w; its log:\n%s", c.ns, p.pod, p.client.Name, err, tail(log, 2000))
		}
	}
	log, err := logOf(false)
	if err != nil {
		return nil, err
	}
	rest, err := readProbeLog(log)
	if err != nil {
		return nil, fmt.Errorf("probe pod %s/%s (client %s): %w; its log:\n%s", c.ns, p.pod, p.client.Name, err, tail(log, 2000))
	}
	return append(lines, rest...), nil
}

// readKilledProbeLog returns the result lines of a probe killed with its
// node: no summary line, and its last line may be cut short.
func readKilledProbeLog(log []byte) ([]proberesult.Result, error) {
	if i := bytes.LastIndexByte(bytes.TrimRight(log, "\n"), '\n'); i >= 0 && !json.Valid(bytes.TrimSpace(log[i+1:])) {
		log = log[:i+1]
	} else if i < 0 && !json.Valid(bytes.TrimSpace(log)) {
		log = nil
	}
	lines, err := readProbeLog(log)
	if err == nil {
		return nil, errors.New("it wrote its summary line: it ended rather than being killed with its node")
	}
	if !errors.Is(err, errNoSummary) {
		return nil, err
	}
	return lines, nil
}

// ClientPrograms returns the client programs, sorted and each once,
// whose images the scenario's groups run in a cluster: those of its
// clients that are not Go (a Go client runs in the probe's image).
func (s *Scenario) ClientPrograms() []string {
	reg, err := registry()
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range s.Workload.Clients {
		if g.Client == "" {
			continue
		}
		if spec, err := reg.Lookup(g.Client); err == nil && spec.New == nil && !slices.Contains(out, spec.Program.Name) {
			out = append(out, spec.Program.Name)
		}
	}
	slices.Sort(out)
	return out
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
	c.nodeTouched = true
	if err := c.r.configureNode(ctx, c.node); err != nil {
		return err
	}
	if old, err := c.r.ctl.Journal(ctx, 0); err == nil && len(old) > 0 {
		c.r.cursor = old[len(old)-1].Seq
	}
	return nil
}

// configureNode resets node's fakeimds and gives it the scenario's
// identities, token settings and throttling; setupNode does it before
// the run, a node restart again after it.
func (r *runner) configureNode(ctx context.Context, node string) error {
	fc, cfg := r.ctl, r.cfg
	if err := fc.Reset(ctx); err != nil {
		return fmt.Errorf("reset fakeimds on %s: %w", node, err)
	}
	ids, err := fc.Identities(ctx)
	if err != nil {
		return fmt.Errorf("list the identities of fakeimds on %s: %w", node, err)
	}
	// The node's own user-assigned identities are not the scenario's: a
	// client asking for the host's default would get a 400 "multiple
	// identities" without a system-assigned identity.
	for _, id := range ids {
		if id.System {
			continue
		}
		if _, err := fc.Detach(ctx, client.Selector{ClientID: id.ClientID}); err != nil {
			return fmt.Errorf("detach the node's identity %s on %s: %w", id.Name, node, err)
		}
	}
	if cfg.SystemAssigned == nil {
		if err := fc.RemoveSystem(ctx); err != nil {
			return fmt.Errorf("remove the system-assigned identity on %s (setup.systemAssigned: false): %w", node, err)
		}
	}
	for _, id := range cfg.UserAssigned {
		if _, err := fc.Attach(ctx, id); err != nil {
			return fmt.Errorf("attach identity %s on %s (setup.identities): %w", id.Name, node, err)
		}
	}
	life, before := cfg.Tokens.Lifetime, cfg.Tokens.RefreshBefore
	cache := cfg.Tokens.CacheOn()
	if _, err := fc.SetTokens(ctx, api.TokenSettings{Lifetime: &life, RefreshBefore: &before, Cache: &cache}); err != nil {
		return fmt.Errorf("set token settings on %s (setup.tokenLifetime, setup.tokenRefreshBefore): %w", node, err)
	}
	if _, err := fc.SetThrottle(ctx, cfg.Chaos.Throttle); err != nil {
		return fmt.Errorf("set throttling on %s (setup.throttle): %w", node, err)
	}
	r.printf("fakeimds on %s set up: %d user-assigned identities, system-assigned %v, token lifetime %v, throttling %v",
		node, len(cfg.UserAssigned), cfg.SystemAssigned != nil, life, cfg.Chaos.Throttle.Enabled == nil || *cfg.Chaos.Throttle.Enabled)
	return nil
}

// waitReady waits until every probe pod is ready (its clients built:
// probepod.Spec.Gated), which must happen by deadline.
func (c *clusterRun) waitReady(ctx context.Context, n int, deadline time.Time) error {
	last := time.Time{}
	for {
		pods, err := c.probePods(ctx)
		if err != nil {
			return fmt.Errorf("list the probe pods in %s: %w", c.ns, err)
		}
		ready, waiting := 0, map[string]int{}
		for _, p := range pods.Items {
			switch {
			case p.Status.Phase == corev1.PodFailed:
				// The probe exits early only on bad usage: its log says why.
				log, _ := c.kube.CoreV1().Pods(c.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: probepod.Container}).DoRaw(ctx)
				return fmt.Errorf("probe pod %s/%s failed before the workload's start; its log:\n%s", c.ns, p.Name, tail(log, 2000))
			case podReady(p):
				ready++
				continue
			}
			waiting[podWaitReason(p)]++
		}
		if ready == n {
			c.r.printf("%d/%d pods ready", ready, n)
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%d of %d probe pods in %s on %s were not ready (clients built) in time (%s); the node is slow or overloaded: try again, or give the pods more time with --lead", n-ready, n, c.ns, c.node, reasons(waiting))
		}
		if time.Since(last) >= ProgressEvery {
			c.r.printf("%d/%d pods ready (%s)", ready, n, reasons(waiting))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run interrupted: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// StartMargin is the time between the runner's choice of the run's
// start and the start: enough to write the start into every probe pod's
// annotation and for the kubelet to project it into the pod's file
// (0.5-1.0 s measured on a kind node, a second more under load). A pod
// that learns it late starts late, which the run reports (lateStarts).
func StartMargin(pods int) time.Duration {
	return 3500*time.Millisecond + time.Duration(pods)*30*time.Millisecond
}

// setStart chooses the run's start, StartMargin from now, and writes it
// into every probe pod (probepod.StartAnnotation), which starts them.
// The kubelet projects an annotation into a downward API file on the
// pod's next sync, and that sync can miss the change (kubernetes#29633,
// #59813: the volume manager may remount with the pod it had), leaving
// the file stale until the periodic sync a minute later: one of 50 pods
// of IDH-CHAOS-0004 learned its start after the workload's end. So the
// runner then updates every pod again (startNudges times, a second
// apart, while the start is still StartNudgeSlack away), each update a
// sync that projects the start again.
func (c *clusterRun) setStart(ctx context.Context, plans []podPlan) (time.Time, error) {
	names := make([]string, len(plans))
	for i, p := range plans {
		names[i] = p.pod
	}
	chosen := time.Now()
	t0 := chosen.Add(StartMargin(len(plans))).Truncate(time.Millisecond)
	if err := patchPods(ctx, c.kube, c.ns, names, probepod.StartPatch(t0)); err != nil {
		return t0, fmt.Errorf("set the start of the probe pods: %w", err)
	}
	for i := 1; i <= startNudges; i++ {
		at := chosen.Add(time.Duration(i) * time.Second)
		if at.After(t0.Add(-StartNudgeSlack)) {
			break
		}
		select {
		case <-ctx.Done():
			return t0, fmt.Errorf("run interrupted: %w", ctx.Err())
		case <-time.After(time.Until(at)):
		}
		if err := patchPods(ctx, c.kube, c.ns, names, probepod.NudgePatch(i)); err != nil {
			return t0, fmt.Errorf("update the probe pods again: %w", err)
		}
	}
	return t0, nil
}

// startNudges is how many times setStart updates the pods again.
const startNudges = 2

// StartNudgeSlack is how long before the start the last update must be
// sent: the kubelet's projection takes 0.5-1.0 s.
const StartNudgeSlack = 1500 * time.Millisecond

// patchPods applies patch to the named pods of namespace ns, a few at a
// time: 50 pods one by one took 3.6 s on a loaded node, most of
// StartMargin.
func patchPods(ctx context.Context, kube kubernetes.Interface, ns string, pods []string, patch []byte) error {
	var g errgroup.Group
	g.SetLimit(8)
	for _, name := range pods {
		g.Go(func() error {
			if _, err := kube.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return fmt.Errorf("pod %s/%s: %w", ns, name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// StartTolerance is how much later than planned a client's first call
// may start before the run reports that its pod learned the start late.
const StartTolerance = time.Second

// lateStarts returns an error naming the clients whose first call
// started more than StartTolerance after their planned start (the run's
// start plus the client's offset), or that made none though planned to
// start within the workload: their pod learned the start late (or never),
// and the run did not play what the scenario says.
func lateStarts(clients []*ClientResult, first map[string]time.Duration, workload time.Duration) error {
	var late []string
	for _, cr := range clients {
		f := first[cr.Name]
		switch {
		case len(cr.Attempts) == 0 && f < workload:
			late = append(late, cr.Name+" never")
		case len(cr.Attempts) == 0:
		case cr.Attempts[0].Start.D()-f > StartTolerance:
			late = append(late, fmt.Sprintf("%s %s late", cr.Name, (cr.Attempts[0].Start.D()-f).Round(time.Millisecond)))
		}
	}
	if len(late) == 0 {
		return nil
	}
	return fmt.Errorf("probe pods began their first call after their start (%s): their node projected the start into them late; the node is slow or overloaded: try again", strings.Join(late, ", "))
}

// probePods lists the run's probe pods: its namespace also holds pods
// that are not the workload's (the DNS resolver, a wiPod step's pod),
// which the counts of running and finished probes must leave out.
func (c *clusterRun) probePods(ctx context.Context) (*corev1.PodList, error) {
	return c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: scenarioLabel})
}

// waitDone waits until every probe pod has exited. It asks every quarter
// second: the pods end together at the workload's end (--end-at), and a
// play waited half a second on average past it at one ask a second.
func (c *clusterRun) waitDone(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		pods, err := c.probePods(ctx)
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
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podStatus counts the probe pods by phase for the progress lines.
func (c *clusterRun) podStatus(ctx context.Context) string {
	pods, err := c.probePods(ctx)
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
	// Two minutes: a node deletes 100 pods in about one.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Before the namespace goes: the authority is shared, and the run's
	// identity there trusts the namespace's service account.
	c.cleanupWorkloadIdentity(ctx)
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
			// Wait until the pods are gone: the node tears their sandboxes
			// down one by one, and a run that starts meanwhile (the next
			// chaos spec) would find its own pods queued behind them, not
			// running at its start. The pods are deleted here rather than
			// left to the namespace controller, which came to them about
			// 5 s after the namespace's deletion, and only they are waited
			// for: the namespace itself goes on being deleted.
			c.r.printf("cleanup: deleting namespace %s and its pods", c.ns)
			// One by one, not DeleteCollection: the in-cluster runner's
			// role grants delete, not deletecollection (internal/incluster).
			if l, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{}); err == nil {
				for _, p := range l.Items {
					if err := c.kube.CoreV1().Pods(c.ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
						c.r.printf("cleanup: could not delete pod %s/%s: %v; the namespace's deletion deletes it", c.ns, p.Name, err)
					}
				}
			}
			gone := false
			for !gone && ctx.Err() == nil {
				if l, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{}); err == nil && len(l.Items) == 0 {
					gone = true
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			if !gone {
				c.r.printf("cleanup: the pods of namespace %s are still being deleted; the next run on %s may find the node busy", c.ns, c.node)
				return
			}
			c.r.printf("cleanup: the pods of namespace %s are gone (the namespace goes on being deleted)", c.ns)
		}()
	}
	wg.Wait()
}
