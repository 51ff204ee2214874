package scenario

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/probepod"
)

func init() {
	registerStep("restartNode", "crashes and boots the run's node (a kind node's container, restarted at once), with its pods, fakeimds and pod identity agent, and waits until the node, fakeimds, the agent and the run's pods are back; kind clusters on this machine only",
		func() StepAction { return &restartNodeStep{} })
}

// restartNodeStep restarts the run's node as a crash and a boot do: the
// kind node's container is restarted by the Docker engine with no grace
// (`docker restart --time 0`), so that every process on the node,
// pods included, is killed without a SIGTERM, and the node comes back
// with a new network namespace (no iptables or nftables rules, no
// link-local address), its kubelet restarting the pods. It returns once
// the node is Ready again, fakeimds answers there (given the scenario's
// set-up again: a restarted fakeimds has its deployed one), the pod
// identity agent is ready and the run's pods run again: the step's end
// is that moment. The Docker engine restarts the container itself, so
// the node comes back even if the run dies meanwhile.
type restartNodeStep struct {
	// Ready bounds the wait for everything to be back (default
	// RestartNodeReadyDefault).
	Ready duration.Duration `json:"ready,omitempty"`
}

// RestartNodeReadyDefault bounds a node restart's wait: a kind worker
// on a 2-core machine is Ready again some 10-20 s after its restart,
// its pods some seconds later.
const RestartNodeReadyDefault = 2 * time.Minute

// restartNodeDocker bounds the docker commands: a restart with no grace
// takes a second or two.
const restartNodeDocker = time.Minute

// fakeIMDSSelector selects the fakeimds DaemonSet's pods (as
// stack.FakeIMDS does).
const fakeIMDSSelector = "app.kubernetes.io/name=fakeimds"

// controlPlaneLabel marks kubeadm's (so kind's) control-plane nodes.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

func (s *restartNodeStep) needsCluster() string {
	return "a node restart restarts a kind node's container"
}

func (s *restartNodeStep) needsHost() string {
	return "restarts the kind node's container with the Docker engine of the machine running it"
}

// blocks: the step ends when the node and its pods are back.
func (s *restartNodeStep) blocks() bool { return true }

func (s *restartNodeStep) validate(sc *Scenario, _ identities, field string) error {
	if s.Ready.Duration < 0 || s.Ready.Duration > MaxDuration {
		return bad(field+".ready", "want a wait between 0 and %v, got %v", MaxDuration, s.Ready.Duration)
	}
	// Two restarts could overlap, and the second would judge the first's
	// recovery.
	n := 0
	for _, st := range sc.Timeline {
		if _, ok := st.Action.(*restartNodeStep); ok {
			n++
		}
	}
	if n > 1 {
		return bad(field, "%d restartNode steps: a run restarts its node once (play a second restart as a scenario of its own)", n)
	}
	return nil
}

func (s *restartNodeStep) wait() time.Duration {
	if s.Ready.Duration > 0 {
		return s.Ready.Duration
	}
	return RestartNodeReadyDefault
}

// restartMarks are the moments of a node restart on the run's clock,
// for the step's detail: the evidence of what the pods went through.
type restartMarks struct {
	down, up, nodeReady, fakeReady, agentReady, podsRunning time.Duration
	agent                                                   string
}

func (m restartMarks) String() string {
	f := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	agent := "no pod identity agent"
	if m.agent != "" {
		agent = m.agent + " ready " + f(m.agentReady)
	}
	return fmt.Sprintf("down %s, container up %s, node Ready %s, fakeimds ready %s, %s, pods running %s (run clock)",
		f(m.down), f(m.up), f(m.nodeReady), f(m.fakeReady), agent, f(m.podsRunning))
}

func (s *restartNodeStep) apply(ctx context.Context, r *runner, _ Step) (func(context.Context) error, string, error) {
	k := r.kube
	if k == nil {
		return nil, "restart node", errors.New("a node restart needs a cluster")
	}
	detail := "restart node " + k.node
	node, err := k.kube.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
	if err != nil {
		return nil, detail, fmt.Errorf("read node %s: %w", k.node, err)
	}
	if _, cp := node.Labels[controlPlaneLabel]; cp {
		return nil, detail, fmt.Errorf("node %s is a control-plane node: restarting it stops the API server; play the scenario on a worker (`idharness run` creates them: --workers)", k.node)
	}
	if _, err := dockerNodeStarted(ctx, k.node); err != nil {
		return nil, detail, err
	}
	agent, err := k.podIdentityAgent(ctx)
	if err != nil {
		return nil, detail, err
	}
	// What the node's fakeimds journalled so far: its journal dies with it.
	if err := r.fetchJournal(ctx); err != nil {
		r.printf("journal before the restart: %v", err)
	}
	clock := func() time.Duration { return time.Since(r.start).Round(100 * time.Millisecond) }
	m := restartMarks{down: clock(), agent: agent}
	// One call to the engine, which stops and starts the container itself:
	// even if the run is interrupted here, the node comes back.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restartNodeDocker)
	out, err := exec.CommandContext(dctx, "docker", "restart", "--time", "0", k.node).CombinedOutput()
	cancel()
	if err != nil {
		err = fmt.Errorf("docker restart --time 0 %s: %w: %s", k.node, err, strings.TrimSpace(string(out)))
		// Leave the node running whatever went wrong.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restartNodeDocker)
		defer cancel()
		if _, serr := dockerNodeStarted(sctx, k.node); serr != nil {
			if out, serr := exec.CommandContext(sctx, "docker", "start", k.node).CombinedOutput(); serr != nil {
				err = fmt.Errorf("%w; docker start %s: %v: %s: start it yourself", err, k.node, serr, strings.TrimSpace(string(out)))
			}
		}
		return nil, detail, err
	}
	started, err := dockerNodeStarted(context.WithoutCancel(ctx), k.node)
	if err != nil {
		return nil, detail, err
	}
	m.up = clock()
	deadline := time.Now().Add(s.wait())
	// Kubernetes stores times in seconds: anything the new boot did is
	// at or after the container's start, truncated.
	since := started.Truncate(time.Second)
	step := func(what string, done func(context.Context) (bool, error)) (time.Duration, error) {
		for {
			ok, err := done(ctx)
			if err != nil {
				return 0, err
			}
			if ok {
				return clock(), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%s not back within %v of the restart (ready: bounds it); so far: %s", what, s.wait(), m)
			}
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if m.nodeReady, err = step("node "+k.node+" Ready", func(ctx context.Context) (bool, error) { return nodeReadySince(ctx, k, since) }); err != nil {
		return nil, detail, err
	}
	if m.fakeReady, err = step("fakeimds", func(ctx context.Context) (bool, error) {
		return podsReadySince(ctx, k, k.namespace, fakeIMDSSelector, since, 1)
	}); err != nil {
		return nil, detail, err
	}
	// A restarted fakeimds has its deployed identities and an empty
	// journal: give it the scenario's set-up again and read its journal
	// from the start.
	if err := r.configureNode(ctx, k.node); err != nil {
		return nil, detail, fmt.Errorf("set fakeimds up again after the restart: %w", err)
	}
	r.journalRestarted(started)
	if agent != "" {
		if m.agentReady, err = step("pod identity agent "+agent, func(ctx context.Context) (bool, error) {
			return daemonSetPodReadySince(ctx, k, agent, since)
		}); err != nil {
			return nil, detail, err
		}
	}
	if m.podsRunning, err = step("the run's pods", func(ctx context.Context) (bool, error) {
		return podsReadySince(ctx, k, k.runNamespace, "", since, len(k.pods))
	}); err != nil {
		return nil, detail, err
	}
	// A pod's address may change with its new sandbox.
	if err := r.attributePods(ctx); err != nil {
		return nil, detail, err
	}
	// The killed instances' logs, while the kubelet still has them: once
	// a pod has ended it serves no previous log (and has removed the
	// file), and the workload's first part would be lost.
	if err := r.keepKilledLogs(ctx); err != nil {
		return nil, detail, err
	}
	return nil, detail + ": " + m.String(), nil
}

// dockerNodeStarted returns when the kind node's container, the Docker
// container named node, started; an error when there is no such
// container on this machine's Docker engine or it is not running.
func dockerNodeStarted(ctx context.Context, node string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, restartNodeDocker)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", node).Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("find node %s's container (a node restart needs a kind cluster on this machine's Docker engine): docker inspect: %w", node, err)
	}
	return parseDockerState(node, string(out))
}

// parseDockerState reads `docker inspect --format '{{.State.Running}}
// {{.State.StartedAt}}'`.
func parseDockerState(node, out string) (time.Time, error) {
	running, at, ok := strings.Cut(strings.TrimSpace(out), " ")
	if !ok {
		return time.Time{}, fmt.Errorf("node %s's container: want its state and start time from docker inspect, got %q", node, out)
	}
	if running != "true" {
		return time.Time{}, fmt.Errorf("node %s's container is not running: `docker start %s` brings it back", node, node)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, fmt.Errorf("node %s's container: start time %q: %w", node, at, err)
	}
	return t, nil
}

// nodeReadySince reports whether the node is Ready as posted by a
// kubelet started at or after since: a node's Ready condition stays True
// for the controller's grace period (40 s) while its kubelet is down,
// but the new kubelet's first status carries a new heartbeat.
func nodeReadySince(ctx context.Context, k *kubeEnv, since time.Time) (bool, error) {
	n, err := k.kube.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
	if err != nil {
		// The API server is elsewhere and up; a failed read is retried.
		return false, nil
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(since), nil
		}
	}
	return false, nil
}

// podsReadySince reports whether at least want pods of namespace on the
// run's node, selected by selector, are ready with every container
// started at or after since (their new instances: a pod object survives
// its node's restart, its containers do not).
func podsReadySince(ctx context.Context, k *kubeEnv, namespace, selector string, since time.Time, want int) (bool, error) {
	pods, err := k.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector, FieldSelector: "spec.nodeName=" + k.node})
	if err != nil {
		return false, nil
	}
	n := 0
	for _, p := range pods.Items {
		if podRestartedSince(p, since) {
			n++
		}
	}
	return n >= want, nil
}

// podRestartedSince reports whether p's containers all run, started at
// or after since, and p is ready.
func podRestartedSince(p corev1.Pod, since time.Time) bool {
	if p.DeletionTimestamp != nil || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.State.Running.StartedAt.Time.Before(since) || !cs.Ready {
			return false
		}
	}
	return podReady(p)
}

// podReady reports whether p's Ready condition is True.
func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// daemonSetPodReadySince reports whether DaemonSet ds's pod on the
// run's node runs again, restarted at or after since.
func daemonSetPodReadySince(ctx context.Context, k *kubeEnv, ds string, since time.Time) (bool, error) {
	d, err := k.kube.AppsV1().DaemonSets(k.namespace).Get(ctx, ds, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read DaemonSet %s/%s: %w", k.namespace, ds, err)
	}
	return podsReadySince(ctx, k, k.namespace, metav1.FormatLabelSelector(d.Spec.Selector), since, 1)
}

// restartsNode reports whether the timeline restarts the run's node.
func (s *Scenario) restartsNode() bool {
	for _, st := range s.Timeline {
		if _, ok := st.Action.(*restartNodeStep); ok {
			return true
		}
	}
	return false
}

// journalRestarted starts reading the node's journal again from its
// beginning: the fakeimds that started at started numbers its entries
// from 1 again. Entries of the new journal read before now (a progress
// line's read, skipped or kept) are dropped and read again.
func (r *runner) journalRestarted(started time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.requests[:0]
	for _, q := range r.requests {
		if q.Entry.Time.Before(started) {
			kept = append(kept, q)
		}
	}
	r.requests = kept
	r.cursor = 0
}

// keepKilledLogs reads the log of each probe's instance killed with
// the node (the API server's previous log) and keeps it for the run's
// end.
func (r *runner) keepKilledLogs(ctx context.Context) error {
	k := r.kube
	logs := map[string][]byte{}
	for client, pod := range k.pods {
		log, err := k.kube.CoreV1().Pods(k.runNamespace).GetLogs(pod, &corev1.PodLogOptions{Container: probepod.Container, Previous: true}).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("read the log of probe pod %s/%s's instance killed with the node: %w", k.runNamespace, pod, err)
		}
		logs[client] = log
	}
	r.mu.Lock()
	r.killedLogs = logs
	r.mu.Unlock()
	return nil
}
