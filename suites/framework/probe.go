package framework

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"github.com/onsi/ginkgo/v2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/probepod"
	"github.com/idharness/idharness/pkg/escape"
	"github.com/idharness/idharness/pkg/proberesult"
)

// Probe describes one run of the probe as a pod.
type Probe struct {
	// Node pins the pod to a node; empty lets the scheduler choose.
	Node string
	// Args are the probe's flags, e.g. --client=azidentity-mi --identity=system.
	Args []string
	// Env adds environment variables (App Service mode, …).
	Env map[string]string
	// Timeout bounds the wait for the pod to finish (default 2 minutes).
	Timeout time.Duration
	// Shared runs every client in one process. By default each client
	// gets a process of its own, a container of one pod (a pod of its own
	// when Customize makes init containers): MSAL Go and azidentity share
	// one token cache per process, so in one process only the first
	// client would really ask the metadata endpoint and the others would
	// be served its token.
	Shared bool
	// ServiceAccount runs the pod as this service account (default: the
	// namespace's "default").
	ServiceAccount string
	// Labels and Annotations are added to the pod's own (workload
	// identity's azure.workload.identity/use label, …).
	Labels      map[string]string
	Annotations map[string]string
	// Customize, when set, edits the pod just before it is created, for
	// what the fields above do not cover (volumes, mounts, …).
	Customize func(*corev1.Pod)
	// StartDelay makes the probe wait this long after it starts before
	// its first request (--start-delay), for specs that judge a pod past
	// its start-up (pod identity: PodIdentityWarmUp).
	StartDelay time.Duration
}

// ProbeRun is a finished probe pod: its results and where it ran.
type ProbeRun struct {
	Pod     string
	Node    string
	PodIP   string
	Results []proberesult.Result
	// Escapes are the results of a probe run with --escape.
	Escapes []escape.Result
	// NotApplicable names, with the reason, the clients a run of the
	// default clients left out because they cannot ask that way (a mode
	// they lack, a selector they cannot express): the matrix's "n/a".
	NotApplicable map[string]string
	// Log is the pod's whole output, for evidence.
	Log string
}

// Namespace creates a namespace of the spec's own, deleted after it.
func (f *Framework) Namespace(ctx context.Context) string {
	ns := "idh-spec-" + rand.String(6)
	kube := f.stack.Deployer().Kube
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: fixtures.Labels}}, metav1.CreateOptions{})
	if err != nil {
		Fail(fmt.Sprintf("create namespace %s: %v", ns, err))
	}
	DeferCleanup(func(ctx context.Context) {
		_ = kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	return ns
}

// RunProbe runs the probe in ns with p's flags — a container per client
// in one pod unless p.Shared, all at once — waits for it to finish and
// returns the result lines. The probe exits non-zero when an attempt
// failed; that is not an error here: specs judge the results.
func (f *Framework) RunProbe(ctx context.Context, ns string, p Probe) ProbeRun {
	GinkgoHelper()
	p = p.withStartDelay()
	clients := f.probeClients(p.Args)
	if p.Shared || len(clients) < 2 {
		// One pod, in the image of its one client, or the probe's when
		// it runs several (Shared) or none (--escape).
		run := func() ProbeRun {
			defer f.enterGate(ctx, f.imageFor(p.Args) != f.stack.Images.Probe, clients)()
			return f.runProbePod(ctx, ns, p)
		}()
		f.journalEvidence(ctx, run)
		return run
	}
	runs := make([]ProbeRun, len(clients))
	func() {
		defer f.enterGate(ctx, f.startsRuntimes(clients), clients)()
		name := "probe-" + rand.String(5)
		if pod := f.clientsPod(ns, name, p, clients); pod != nil {
			runs = f.runPod(ctx, ns, pod, p, clients)
			return
		}
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				runs[i] = f.runProbePod(ctx, ns, p.forClient(c))
			}()
		}
		wg.Wait()
	}()
	f.journalEvidence(ctx, runs...)
	merged := ProbeRun{Node: runs[0].Node, PodIP: runs[0].PodIP, NotApplicable: f.notApplicable(p.Args)}
	var pods, logs []string
	for _, r := range runs {
		if !slices.Contains(pods, r.Pod) {
			pods = append(pods, r.Pod)
		}
		logs = append(logs, r.Log)
		merged.Results = append(merged.Results, r.Results...)
	}
	merged.Pod, merged.Log = strings.Join(pods, ","), strings.Join(logs, "\n")
	sort.SliceStable(merged.Results, func(i, j int) bool { return merged.Results[i].Time.Before(merged.Results[j].Time) })
	return merged
}

// enterGate holds the run's start gate (RunOptions.StartGate) when the
// probe starts a pod in a client image (heavy: a program that is not
// Go, whose pod boots a runtime: a JVM, Node.js, Python), and returns
// what leaves it: the processes of a parallel run take turns at such
// bursts, so that no client's first call runs on a machine starved by
// another process's (internal/startgate). A run of one process has an
// open gate.
func (f *Framework) enterGate(ctx context.Context, heavy bool, clients []string) (leave func()) {
	GinkgoHelper()
	if f.gate.Path() == "" || !heavy {
		return func() {}
	}
	start := time.Now()
	leave, err := f.gate.Enter(ctx)
	if err != nil {
		Fail(fmt.Sprintf("wait for the start gate %s: %v", f.gate.Path(), err))
	}
	if waited := time.Since(start); waited >= time.Second {
		AddReportEntry("start gate", types.ReportEntryVisibilityFailureOrVerbose,
			fmt.Sprintf("waited %s for another process's client runtimes to start before starting %s", waited.Round(100*time.Millisecond), strings.Join(clients, ",")))
	}
	return leave
}

// startsRuntimes reports whether any of clients runs in a client image
// (a program that is not Go) rather than in the probe's own.
func (f *Framework) startsRuntimes(clients []string) bool {
	GinkgoHelper()
	for _, c := range clients {
		if f.imageFor([]string{"--client=" + c}) != f.stack.Images.Probe {
			return true
		}
	}
	return false
}

// probeClients returns the clients a probe with args runs: --client, or
// the probe's defaults for --mode and --identity.
func (f *Framework) probeClients(args []string) []string {
	if v := flagValue(args, "client"); v != "" {
		return strings.Split(v, ",")
	}
	mode := flagValue(args, "mode")
	if mode == "" {
		mode = probe.ModeIMDS
	}
	idArg := flagValue(args, "identity")
	if idArg == "" {
		idArg = "system"
	}
	id, err := probe.ParseIdentity(idArg)
	if err != nil {
		return nil
	}
	return f.defaultClients(mode, id)
}

// defaultClients are the clients of every language that support mode and
// can ask for id: the Go clients in the probe image, and each client
// program whose image the run built (the stack's Images.Clients).
func (f *Framework) defaultClients(mode string, id probe.Identity) []string {
	out := probe.DefaultClients(mode, id)
	reg, err := clients.Builtin()
	if err != nil || f.stack == nil {
		return out
	}
	for _, s := range reg.For(mode, id.Selects(), "") {
		if s.New == nil && f.stack.Images.Clients[s.Program.Name] != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// notApplicable returns the clients that a probe with args (running the
// default clients) leaves out, with the reason; nil when args name the
// clients.
func (f *Framework) notApplicable(args []string) map[string]string {
	if flagValue(args, "client") != "" {
		return nil
	}
	reg, err := clients.Builtin()
	if err != nil || f.stack == nil {
		return nil
	}
	mode := flagValue(args, "mode")
	if mode == "" {
		mode = probe.ModeIMDS
	}
	id, err := probe.ParseIdentity(flagValue(args, "identity"))
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, s := range reg.Specs() {
		if s.New == nil && f.stack.Images.Clients[s.Program.Name] == "" {
			continue // no image in this run: not a column
		}
		if ok, why := s.Supports(mode, id.Selects()); !ok {
			out[s.Name] = "n/a: " + why
		}
	}
	return out
}

// imageFor returns the image a probe pod running args's clients uses: a
// client program's own image when the pod runs one, else the probe's.
func (f *Framework) imageFor(args []string) string {
	names := strings.Split(flagValue(args, "client"), ",")
	reg, err := clients.Builtin()
	if err != nil || len(names) != 1 {
		return f.stack.Images.Probe
	}
	s, err := reg.Lookup(names[0])
	if err != nil || s.New != nil {
		return f.stack.Images.Probe
	}
	if img := f.stack.Images.Clients[s.Program.Name]; img != "" {
		return img
	}
	Fail(fmt.Sprintf("client %s needs the image of program %s, which this run did not build", s.Name, s.Program.Name))
	return ""
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func withoutFlag(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--"+name+"=") {
			out = append(out, a)
		}
	}
	return out
}

// withStartDelay returns p with its StartDelay passed to the probe as
// --start-delay.
func (p Probe) withStartDelay() Probe {
	if p.StartDelay > 0 {
		p.Args = append(slices.Clone(p.Args), "--start-delay="+p.StartDelay.String())
	}
	return p
}

// Background is a probe pod a spec keeps running while it does something
// else (a bound pod whose address another pod names): it makes its
// requests until Stop deletes it, and its results are not read.
type Background struct {
	Pod, Node, PodIP string
	ns               string
	f                *Framework
}

// StartProbe creates one probe pod with p's flags (every client of
// p.Args in it) and returns once it runs and has an address. The pod is
// deleted by Stop, or after the spec.
func (f *Framework) StartProbe(ctx context.Context, ns string, p Probe) Background {
	GinkgoHelper()
	p = p.withStartDelay()
	name := "probe-bg-" + rand.String(5)
	f.createPod(ctx, f.probePod(ns, name, p))
	b := Background{Pod: name, ns: ns, f: f}
	DeferCleanup(b.Stop)
	timeout := p.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	got, err := f.pollPod(ctx, ns, name, 200*time.Millisecond, timeout, func(got *corev1.Pod) (bool, error) {
		if got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("it ended (phase %s) before the spec was done with it: give it a longer --duration", got.Status.Phase)
		}
		return got.Status.Phase == corev1.PodRunning && got.Status.PodIP != "", nil
	})
	if err != nil {
		logs, _ := f.probeLogs(ctx, ns, name, probepod.Container, false, false)
		Fail(fmt.Sprintf("background probe pod %s/%s not running with an address after %s (phase %s): %v\nlogs:\n%s", ns, name, timeout, phase(got), err, logs))
	}
	b.Node, b.PodIP = got.Spec.NodeName, got.Status.PodIP
	return b
}

// Stop deletes the background pod at once; it may be called again.
func (b Background) Stop(ctx context.Context) {
	zero := int64(0)
	_ = b.f.stack.Deployer().Kube.CoreV1().Pods(b.ns).Delete(ctx, b.Pod, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

// probePod returns probe pod name in ns with p's flags, image,
// environment, labels and customization.
func (f *Framework) probePod(ns, name string, p Probe) *corev1.Pod {
	GinkgoHelper()
	pod := probepod.Pod(probepod.Spec{Name: name, Namespace: ns, Node: p.Node, Image: f.imageFor(p.Args), Args: p.Args, Env: p.Env,
		ServiceAccount: p.ServiceAccount, Labels: p.Labels, Annotations: p.Annotations})
	if p.Customize != nil {
		p.Customize(pod)
	}
	return pod
}

// forClient is p for one of its clients: its flags with --client=c.
func (p Probe) forClient(c string) Probe {
	p.Args = append(withoutFlag(p.Args, "client"), "--client="+c)
	return p
}

// clientsPod returns one pod for p with a container per client, named
// after it, in its image, with p's flags and --client=that client: the
// pod of each, as probePod makes it, merged. A client's process is its
// own (its token cache too), as in a pod of its own, and one pod instead
// of a dozen spares the node a sandbox, a network set-up and the API
// server's objects for each (docs/performance.md). It returns nil when
// p.Customize gives a client's pod init containers (IDH-CONF-0213), which
// would run one after another in one pod.
func (f *Framework) clientsPod(ns, name string, p Probe, clients []string) *corev1.Pod {
	GinkgoHelper()
	var pod *corev1.Pod
	volumes := map[string]bool{}
	for _, c := range clients {
		one := f.probePod(ns, name, p.forClient(c))
		if len(one.Spec.InitContainers) > 0 || len(one.Spec.Containers) != 1 {
			return nil
		}
		ct := one.Spec.Containers[0]
		ct.Name = c
		if pod == nil {
			pod = one
			pod.Spec.Containers = nil
		}
		for _, v := range one.Spec.Volumes {
			if !volumes[v.Name] {
				volumes[v.Name] = true
				if pod != one {
					pod.Spec.Volumes = append(pod.Spec.Volumes, v)
				}
			}
		}
		pod.Spec.Containers = append(pod.Spec.Containers, ct)
	}
	return pod
}

// createPod creates pod.
func (f *Framework) createPod(ctx context.Context, pod *corev1.Pod) {
	GinkgoHelper()
	if _, err := f.stack.Deployer().Kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		Fail(fmt.Sprintf("create probe pod: %v", err))
	}
}

// pollPod reads pod ns/name every interval until done says so, done
// fails, or timeout passes; a pod not yet found is waited for. It returns
// the last pod read (nil if none was).
func (f *Framework) pollPod(ctx context.Context, ns, name string, interval, timeout time.Duration, done func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	kube := f.stack.Deployer().Kube
	var got *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		got = pod
		return done(pod)
	})
	return got, err
}

// finished reports whether the pod's work is done: its phase says so, or
// (restart policy Never, so that nothing starts again) every one of its
// containers has terminated. The kubelet sets the phase
// about a second after the last container ends (its next status sync);
// the logs are whole once the containers are, and a spec waits on every
// pod it runs, so that second counts once per spec.
func finished(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever || len(p.Spec.Containers) == 0 || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated == nil {
			return false
		}
	}
	return true
}

// runProbePod runs one probe pod, its probe in the container
// probepod.Container (an init container, if p.Customize made it one).
func (f *Framework) runProbePod(ctx context.Context, ns string, p Probe) ProbeRun {
	GinkgoHelper()
	return f.runPod(ctx, ns, f.probePod(ns, "probe-"+rand.String(5), p), p, []string{probepod.Container})[0]
}

// runPod creates pod, waits up to p's timeout for it to finish and
// returns a run per container named in containers, in that order: each
// container's result lines (or escape lines, for --escape). A container
// that printed none fails the spec.
func (f *Framework) runPod(ctx context.Context, ns string, pod *corev1.Pod, p Probe, containers []string) []ProbeRun {
	GinkgoHelper()
	name := pod.Name
	f.createPod(ctx, pod)
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	got, err := f.pollPod(ctx, ns, name, 500*time.Millisecond, timeout, func(got *corev1.Pod) (bool, error) {
		return finished(got), nil
	})
	escapes := flagValue(p.Args, "escape") != ""
	logs := make([][]byte, len(containers))
	lerrs := make([]error, len(containers))
	for i, c := range containers {
		logs[i], lerrs[i] = f.probeLogs(ctx, ns, name, c, err == nil, escapes)
	}
	if err != nil {
		var all []string
		for i, c := range containers {
			all = append(all, fmt.Sprintf("container %s:\n%s%s", c, logs[i], errText(lerrs[i])))
		}
		Fail(fmt.Sprintf("probe pod %s/%s did not finish in %s (phase %s): %v\nlogs:\n%s", ns, name, timeout, phase(got), err, strings.Join(all, "\n")))
	}
	runs := make([]ProbeRun, len(containers))
	for i, c := range containers {
		what := name
		if len(containers) > 1 {
			what = name + "/" + c
		}
		run := ProbeRun{Pod: name, Node: got.Spec.NodeName, PodIP: got.Status.PodIP, Log: string(logs[i])}
		run.Results = parseResults(logs[i])
		AddReportEntry("probe "+what+" on "+run.Node, types.ReportEntryVisibilityFailureOrVerbose, strings.Join(append([]string{"args: " + strings.Join(containerArgs(pod, c), " ")}, nonEmpty(strings.Split(string(logs[i]), "\n"))...), "\n"))
		if escapes {
			run.Escapes = parseEscapes(logs[i])
			if len(run.Escapes) == 0 {
				Fail(fmt.Sprintf("probe pod %s printed no escape lines (phase %s):\n%s%s", what, phase(got), logs[i], errText(lerrs[i])))
			}
		} else if len(run.Results) == 0 {
			Fail(fmt.Sprintf("probe pod %s printed no result lines (phase %s):\n%s%s", what, phase(got), logs[i], errText(lerrs[i])))
		}
		runs[i] = run
	}
	return runs
}

// containerArgs returns the arguments of pod's container (or init
// container) name, without the --exit-zero every probe pod gets.
func containerArgs(pod *corev1.Pod, name string) []string {
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if c.Name == name {
			return slices.DeleteFunc(slices.Clone(c.Args), func(a string) bool { return a == "--exit-zero" })
		}
	}
	return nil
}

// probeLogs reads the output of a probe pod's container. A pod that has finished may not
// have its last lines in the kubelet's log file yet, or the kubelet may
// answer with an error for a moment (an empty log with phase Succeeded
// was seen once in CI): when the pod finished and its output holds no
// line the spec reads, it is read again for up to logSettle.
func (f *Framework) probeLogs(ctx context.Context, ns, name, container string, finished, escapes bool) ([]byte, error) {
	kube := f.stack.Deployer().Kube
	read := func(ctx context.Context) ([]byte, error) {
		return kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	}
	if !finished {
		return read(ctx)
	}
	complete := func(logs []byte) bool { return len(parseResults(logs)) > 0 }
	if escapes {
		complete = func(logs []byte) bool { return len(parseEscapes(logs)) > 0 }
	}
	return rereadLogs(ctx, read, complete, time.Second, logSettle)
}

// rereadLogs reads a log with read until complete says it holds what is
// wanted, every interval for up to bound. It returns the last log read
// with its error; an error with no log does not replace a log read
// before it, so that the failure shows what the pod did print.
func rereadLogs(ctx context.Context, read func(context.Context) ([]byte, error), complete func([]byte) bool, interval, bound time.Duration) ([]byte, error) {
	logs, err := read(ctx)
	if err == nil && complete(logs) {
		return logs, nil
	}
	_ = wait.PollUntilContextTimeout(ctx, interval, bound, false, func(ctx context.Context) (bool, error) {
		l, e := read(ctx)
		if e == nil || len(l) > 0 {
			logs, err = l, e
		}
		return err == nil && complete(logs), nil
	})
	return logs, err
}

// logSettle bounds how long a finished probe pod's output is read again
// when it holds no result line.
const logSettle = 10 * time.Second

// errText formats an error reading a pod's log for a failure message.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return "\n(reading the log: " + err.Error() + ")"
}

func phase(p *corev1.Pod) string {
	if p == nil {
		return "unknown"
	}
	return string(p.Status.Phase)
}

func nonEmpty(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// parseResults reads the probe's JSON result lines, skipping its summary
// line and anything else.
func parseResults(logs []byte) []proberesult.Result {
	var out []proberesult.Result
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' || bytes.Contains(line, []byte(`"summary":true`)) {
			continue
		}
		var r proberesult.Result
		if json.Unmarshal(line, &r) == nil && r.Client != "" {
			out = append(out, r)
		}
	}
	return out
}

// parseEscapes reads the probe's escape result lines.
func parseEscapes(logs []byte) []escape.Result {
	var out []escape.Result
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r escape.Result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Escape != "" {
			out = append(out, r)
		}
	}
	return out
}

// ByClient groups results by client name.
func ByClient(rs []proberesult.Result) map[string][]proberesult.Result {
	m := map[string][]proberesult.Result{}
	for _, r := range rs {
		m[r.Client] = append(m[r.Client], r)
	}
	return m
}

// RecordClients adds the per-client outcome of the spec to the report's
// spec × client matrix.
func RecordClients(outcome map[string]bool, notApplicable ...map[string]string) {
	m := map[string]string{}
	for _, na := range notApplicable {
		for c, why := range na {
			m[c] = why
		}
	}
	for c, ok := range outcome {
		if ok {
			m[c] = "passed"
		} else {
			m[c] = "failed"
		}
	}
	b, _ := json.Marshal(m)
	AddReportEntry(clientsEntry, types.ReportEntryVisibilityNever, string(b))
}

const clientsEntry = "idharness-clients"

// journalEvidence adds to the report what each run's node's fakeimds
// journaled for its pod's address: the server's side of the same
// requests.
func (f *Framework) journalEvidence(ctx context.Context, runs ...ProbeRun) {
	byNode := map[string][]ProbeRun{}
	for _, r := range runs {
		if r.PodIP != "" && r.Node != "" {
			byNode[r.Node] = append(byNode[r.Node], r)
		}
	}
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		rs := byNode[node]
		c, err := f.stack.FakeIMDS(ctx, node)
		if err != nil {
			continue
		}
		ips := make([]string, 0, len(rs))
		for _, r := range rs {
			ips = append(ips, r.PodIP)
		}
		// One read per node for the spec's pods, filtered by the server:
		// the whole journal, read once per pod, went through the API
		// server's proxy a dozen times at once.
		entries, err := c.JournalFrom(ctx, 0, ips...)
		if err != nil {
			continue
		}
		lines := journalLines(entries, rs)
		seen := map[string]bool{}
		for _, r := range rs {
			// The runs of one pod's containers share its address.
			if seen[r.Pod] {
				continue
			}
			seen[r.Pod] = true
			if l := lines[r.Pod]; len(l) > 0 {
				AddReportEntry("fakeimds journal on "+r.Node+" for "+r.Pod, types.ReportEntryVisibilityFailureOrVerbose, strings.Join(l, "\n"))
			}
		}
	}
}

// journalLines sorts entries to the runs' pods by source address, as
// JSON lines, keyed by pod name.
func journalLines(entries []journal.Entry, runs []ProbeRun) map[string][]string {
	pods := map[string]string{}
	for _, r := range runs {
		pods[r.PodIP] = r.Pod
	}
	out := map[string][]string{}
	for _, e := range entries {
		if pod, ok := pods[e.RemoteHost()]; ok {
			b, _ := json.Marshal(e)
			out[pod] = append(out[pod], string(b))
		}
	}
	return out
}
