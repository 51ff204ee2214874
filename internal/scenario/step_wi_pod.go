package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/hookpaths"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/probepod"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
	"github.com/idharness/idharness/pkg/proberesult"
)

func init() {
	registerStep("wiPod", "creates a workload identity pod of a given shape (plain, sidecar, non-root, reinvoked) for a setup identity, optionally behind a slow webhook (delay beyond timeoutSeconds, failurePolicy Fail or Ignore), and checks what the contract requires: every container gets the identity's token, or with a slow webhook the pod is refused (Fail) or admitted without workload identity and gets no token (Ignore); cluster runs with the reference webhook only", func() StepAction { return &wiPodStep{} })
}

// The shapes of a wiPod step's pod.
const (
	// WIShapePlain: one container.
	WIShapePlain = "plain"
	// WIShapeSidecar: a plain init container and a native sidecar (an
	// init container with restartPolicy: Always) before the container.
	WIShapeSidecar = "sidecar"
	// WIShapeNonRoot: two containers, each as a non-root user of its own
	// (runAsNonRoot, UIDs 1234 and 5678, no fsGroup) with a read-only
	// root file system: the token file must be readable by both.
	WIShapeNonRoot = "non-root"
	// WIShapeReinvoked: one container; a second webhook (the reference
	// webhook's add-container path, under a configuration the step
	// creates and removes) adds another after the identity webhook ran,
	// so only a reinvocation (reinvocationPolicy: IfNeeded) gives it the
	// identity.
	WIShapeReinvoked = "reinvoked"
)

// wiShapes lists the shapes in the order the docs give them.
var wiShapes = []string{WIShapePlain, WIShapeSidecar, WIShapeNonRoot, WIShapeReinvoked}

// wiPodStep creates one workload identity pod and judges it. It blocks
// until the pod ended (or was refused): the step's end is that moment.
type wiPodStep struct {
	// Identity names a user-assigned identity of setup.identities: the
	// pod's service account names it, and the authority trusts the
	// service account for it (a federated credential) during the step.
	Identity string `json:"identity"`
	// Shape is the pod's shape (default plain).
	Shape string `json:"shape,omitempty"`
	// Webhook, when set, puts the run's namespace behind a webhook
	// configuration of its own that reaches the reference webhook on its
	// slow path.
	Webhook *wiSlowWebhook `json:"webhook,omitempty"`
	// Ready bounds the step: configurations taking effect, the pod
	// starting and ending (default 60s).
	Ready duration.Duration `json:"ready,omitempty"`
}

// wiSlowWebhook is a webhook that answers later than the API server
// waits for it.
type wiSlowWebhook struct {
	// Delay is how late the webhook answers; more than timeoutSeconds.
	Delay duration.Duration `json:"delay"`
	// TimeoutSeconds is the configuration's timeoutSeconds (1 to 30).
	TimeoutSeconds int32 `json:"timeoutSeconds"`
	// FailurePolicy is Fail (the pod must be refused) or Ignore (the pod
	// must be admitted without workload identity, and get no token).
	FailurePolicy string `json:"failurePolicy"`
}

// WIPodReadyDefault bounds a wiPod step.
const WIPodReadyDefault = 60 * time.Second

func (s *wiPodStep) needsCluster() string {
	return "a wiPod step creates a pod that the cluster's workload identity webhook mutates"
}

// blocks: the step ends when the pod has ended or was refused.
func (s *wiPodStep) blocks() bool { return true }

// needsHost: a slow webhook and a reinvocation need webhook
// configurations of the step's own, cluster-wide objects the in-cluster
// runner's role may not create.
func (s *wiPodStep) needsHost() string {
	if s.Webhook != nil || s.shape() == WIShapeReinvoked {
		return "creates mutating webhook configurations (cluster-wide), which the in-cluster runner's role does not grant"
	}
	return ""
}

// referenceWebhook: a slow webhook and a reinvocation reach test paths
// only the reference webhook serves (wiwebhook serve --test-paths).
func (s *wiPodStep) referenceWebhook() string {
	switch {
	case s.Webhook != nil:
		return "puts the run's namespace behind the reference webhook's slow test path (/slow/DELAY/mutate-v1-pod)"
	case s.shape() == WIShapeReinvoked:
		return "adds a container through the reference webhook's /add-container test path"
	}
	return ""
}

func (s *wiPodStep) validate(sc *Scenario, ids identities, field string) error {
	if s.Identity == "" || s.Identity == "system" {
		return bad(field+".identity", "required: one of setup.identities (workload identity federates a user-assigned identity)")
	}
	if _, ok := ids[s.Identity]; !ok {
		return bad(field+".identity", "%q is not one of setup.identities", s.Identity)
	}
	if s.Shape != "" && !slices.Contains(wiShapes, s.Shape) {
		return bad(field+".shape", "want one of %s, got %q", strings.Join(wiShapes, ", "), s.Shape)
	}
	if s.Ready.Duration < 0 || s.Ready.Duration > MaxDuration {
		return bad(field+".ready", "want a wait between 0 and %v, got %v", MaxDuration, s.Ready.Duration)
	}
	if w := s.Webhook; w != nil {
		if w.TimeoutSeconds < 1 || w.TimeoutSeconds > 30 {
			return bad(field+".webhook.timeoutSeconds", "want 1 to 30 (the API server's bounds), got %d", w.TimeoutSeconds)
		}
		timeout := time.Duration(w.TimeoutSeconds) * time.Second
		if w.Delay.Duration < timeout+time.Second || w.Delay.Duration > hookpaths.MaxSlowDelay {
			return bad(field+".webhook.delay", "%v: want at least a second more than timeoutSeconds (%v), so that the API server gives up first, and at most %v", w.Delay.Duration, timeout, hookpaths.MaxSlowDelay)
		}
		switch w.FailurePolicy {
		case string(admissionregistrationv1.Fail), string(admissionregistrationv1.Ignore):
		default:
			return bad(field+".webhook.failurePolicy", "want Fail or Ignore, got %q", w.FailurePolicy)
		}
		if s.Shape == WIShapeReinvoked {
			return bad(field+".webhook", "a reinvoked pod needs the identity webhook to answer: leave webhook out, or use another shape")
		}
	}
	return nil
}

func (s *wiPodStep) shape() string {
	if s.Shape == "" {
		return WIShapePlain
	}
	return s.Shape
}

// The webhook configurations a wiPod step makes; its containers find the
// authority's CA as a workload identity run's do (wiCAConfigMap, wiCADir).
const (
	wiSlowHook = "slow.wi.idharness.io"
	wiAddHook  = "add-container.idharness.io"
)

// wiSlowConfigName and wiAddConfigName name the configurations a step
// makes for namespace ns. The add-container one sorts after the stack's
// (idharness-wiwebhook-…): the API server calls mutating webhooks in
// the order of their configurations' names, so it runs after the
// identity webhook, which only a reinvocation then runs again.
func wiSlowConfigName(ns string) string { return "idharness-wi-slow-" + ns }
func wiAddConfigName(ns string) string  { return "idharness-z-add-container-" + ns }

func (s *wiPodStep) apply(ctx context.Context, r *runner, st Step) (func(context.Context) error, string, error) {
	k := r.kube
	detail := fmt.Sprintf("a %s workload identity pod for %s", s.shape(), s.Identity)
	if s.Webhook != nil {
		detail += fmt.Sprintf(" behind a webhook %v late for its %ds timeout, failurePolicy %s", s.Webhook.Delay.Duration, s.Webhook.TimeoutSeconds, s.Webhook.FailurePolicy)
	}
	// wiStack, not wi: a wiPod step makes its own service account and
	// needs no setup.workloadIdentity.
	if k == nil || k.wiStack == nil {
		return nil, detail, errors.New("a wiPod step needs a cluster")
	}
	wait := s.Ready.Duration
	if wait == 0 {
		wait = WIPodReadyDefault
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// Clean-up must run even when the run's context has ended.
	cleanCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}
	var cleanups []func(context.Context)
	defer func() {
		c, cancel := cleanCtx()
		defer cancel()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i](c)
		}
	}()
	wi, err := k.wiStack(ctx)
	if err != nil {
		return nil, detail, err
	}
	var id config.Identity
	for _, i := range r.s.Setup.Identities {
		if i.Name == s.Identity {
			id = i
		}
	}
	ns, suffix := k.runNamespace, rand.String(5)
	sa := "wi-" + suffix
	kube := k.kube
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: wiCAConfigMap, Namespace: ns}, Data: map[string]string{"ca.crt": wi.CAPEM}}
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, detail, fmt.Errorf("copy the authority's CA into %s: %w", ns, err)
	}
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns, Annotations: map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID}}}
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, acct, metav1.CreateOptions{}); err != nil {
		return nil, detail, fmt.Errorf("create service account %s/%s: %w", ns, sa, err)
	}
	// The authority trusts this service account for the identity while
	// the step lasts; the identity is the scenario's own (its client ID
	// is in the file), so no other spec uses it.
	id.FederatedCredentials = []config.FederatedCredential{{Issuer: wi.Issuer, Subject: "system:serviceaccount:" + ns + ":" + sa}}
	_, _ = wi.Authority.Detach(ctx, client.Selector{ClientID: id.ClientID})
	if err := r.s.attachToAuthority(ctx, wi.Authority, id); err != nil {
		return nil, detail, fmt.Errorf("give the authority %s with a federated credential for %s/%s: %w", s.Identity, ns, sa, err)
	}
	cleanups = append(cleanups, func(c context.Context) { _, _ = wi.Authority.Detach(c, client.Selector{ClientID: id.ClientID}) })

	hooks := &wiHooks{kube: k, ns: ns}
	if s.shape() == WIShapeReinvoked || s.Webhook != nil {
		base, err := hooks.stackHook(ctx)
		if err != nil {
			return nil, detail, err
		}
		if s.Webhook != nil {
			err = hooks.create(ctx, wiSlowConfigName(ns), wiSlowHook, base, hookpaths.SlowPath(s.Webhook.Delay.Duration), admissionregistrationv1.FailurePolicyType(s.Webhook.FailurePolicy), s.Webhook.TimeoutSeconds)
			cleanups = append(cleanups, func(c context.Context) { hooks.remove(c, wiSlowConfigName(ns)) })
			if err == nil {
				err = hooks.ownNamespace(ctx, true)
				cleanups = append(cleanups, func(c context.Context) { _ = hooks.ownNamespace(c, false) })
			}
		} else {
			err = hooks.create(ctx, wiAddConfigName(ns), wiAddHook, base, hookpaths.AddContainer, admissionregistrationv1.Fail, 5)
			cleanups = append(cleanups, func(c context.Context) { hooks.remove(c, wiAddConfigName(ns)) })
		}
		if err != nil {
			return nil, detail, err
		}
	}
	pod := s.pod("wi-"+s.shape()+"-"+suffix, ns, k.node, sa, k.probeImage)
	// Webhook configurations and namespace labels reach the API
	// server's admission through informers: dry runs show when they have.
	if err := s.waitInEffect(ctx, kube.CoreV1().Pods(ns), pod); err != nil {
		return nil, detail, err
	}
	from := time.Now()
	got, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if s.Webhook != nil && s.Webhook.FailurePolicy == string(admissionregistrationv1.Fail) {
		if err := s.judgeRefused(ctx, kube.CoreV1().Pods(ns), pod.Name, err, time.Since(from)); err != nil {
			return nil, detail, err
		}
		return nil, fmt.Sprintf("%s: refused after %v: %s", detail, time.Since(from).Round(100*time.Millisecond), oneLine(err.Error())), nil
	}
	if err != nil {
		return nil, detail, fmt.Errorf("create pod %s/%s: %w", ns, pod.Name, err)
	}
	cleanups = append(cleanups, func(c context.Context) { _ = kube.CoreV1().Pods(ns).Delete(c, pod.Name, metav1.DeleteOptions{}) })
	mutated := s.Webhook == nil
	if err := checkAdmitted(got, mutated); err != nil {
		return nil, detail, fmt.Errorf("pod %s/%s as admitted: %w", ns, pod.Name, err)
	}
	if err := checkShape(pod, got); err != nil {
		return nil, detail, fmt.Errorf("pod %s/%s as admitted: %w", ns, pod.Name, err)
	}
	ended, err := waitPodEnded(ctx, kube.CoreV1().Pods(ns), pod.Name)
	if err != nil {
		return nil, detail, err
	}
	results := map[string][]proberesult.Result{}
	for _, c := range append(slices.Clone(ended.Spec.InitContainers), ended.Spec.Containers...) {
		log, err := kube.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
		if err != nil {
			return nil, detail, fmt.Errorf("read the log of %s/%s container %s: %w", ns, pod.Name, c.Name, err)
		}
		// A sidecar stopped by the kubelet, or a probe that could not
		// start its client, ends without its summary line: its result
		// lines still count.
		lines, err := readProbeLog(log)
		if err != nil && !errors.Is(err, errNoSummary) {
			return nil, detail, fmt.Errorf("the log of %s/%s container %s: %w", ns, pod.Name, c.Name, err)
		}
		results[c.Name] = lines
	}
	verdict, err := judgeTokens(results, id.ClientID, mutated)
	if err != nil {
		return nil, detail, fmt.Errorf("pod %s/%s: %w", ns, pod.Name, err)
	}
	return nil, detail + ": " + verdict, nil
}

// pod is the step's pod: probes in workload identity mode, the Go
// azidentity client, trusting the authority's CA.
func (s *wiPodStep) pod(name, ns, node, sa, image string) *corev1.Pod {
	args := func(extra ...string) []string {
		return append([]string{"--exit-zero", "--mode=" + probe.ModeWorkloadIdentity, "--client=" + probe.ClientAzidentityWI,
			"--ca-file=" + wiCADir + "/ca.crt", "--disable-instance-discovery", "--timeout=15s"}, extra...)
	}
	p := probepod.Pod(probepod.Spec{Name: name, Namespace: ns, Node: node, Image: image, ServiceAccount: sa,
		Labels: map[string]string{workloadidentity.UseLabel: "true"}})
	ca := corev1.VolumeMount{Name: wiCAConfigMap, MountPath: wiCADir, ReadOnly: true}
	p.Spec.Volumes = []corev1.Volume{{Name: wiCAConfigMap, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: wiCAConfigMap}}}}}
	app := p.Spec.Containers[0]
	app.Name, app.Args, app.VolumeMounts = "app", args("--count=1"), []corev1.VolumeMount{ca}
	p.Spec.Containers = []corev1.Container{app}
	switch s.shape() {
	case WIShapeSidecar:
		always := corev1.ContainerRestartPolicyAlways
		init := app
		init.Name = "init"
		side := app
		// The sidecar calls until the app container has ended and the
		// kubelet stops it; the app starts after it, so both overlap.
		side.Name, side.Args, side.RestartPolicy = "sidecar", args("--duration=60s", "--interval=2s"), &always
		p.Spec.InitContainers = []corev1.Container{init, side}
		p.Spec.Containers[0].Args = args("--count=1", "--start-delay=2s")
	case WIShapeNonRoot:
		yes, no := true, false
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes}
		var cs []corev1.Container
		for _, uid := range []int64{1234, 5678} {
			c := app
			c.Name = fmt.Sprintf("app-uid-%d", uid)
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &uid,
				ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
			cs = append(cs, c)
		}
		p.Spec.Containers = cs
	}
	return p
}

// waitInEffect dry-runs the pod's creation until admission behaves as
// the step set it up: the added container present (reinvoked), a refusal
// (failurePolicy Fail), a pod without the identity (Ignore). Without
// configurations of the step's own there is nothing to wait for.
func (s *wiPodStep) waitInEffect(ctx context.Context, pods podClient, pod *corev1.Pod) error {
	var inEffect func(*corev1.Pod, error) bool
	switch {
	case s.Webhook != nil && s.Webhook.FailurePolicy == string(admissionregistrationv1.Fail):
		inEffect = func(_ *corev1.Pod, err error) bool { return err != nil }
	case s.Webhook != nil:
		inEffect = func(p *corev1.Pod, err error) bool { return err == nil && checkAdmitted(p, false) == nil }
	case s.shape() == WIShapeReinvoked:
		inEffect = func(p *corev1.Pod, err error) bool {
			return err == nil && slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == hookpaths.AddedContainer })
		}
	default:
		return nil
	}
	var last string
	for {
		p, err := pods.Create(ctx, pod.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if inEffect(p, err) {
			return nil
		}
		last = fmt.Sprintf("%v", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("the step's webhook configuration did not take effect before the step's ready bound (last dry run: %s)", last)
		case <-time.After(time.Second):
		}
	}
}

// judgeRefused checks a creation under a slow webhook with failurePolicy
// Fail: refused, the error naming the webhook that failed, and no pod.
func (s *wiPodStep) judgeRefused(ctx context.Context, pods podClient, name string, err error, took time.Duration) error {
	if err == nil {
		return fmt.Errorf("the API server admitted pod %s although its webhook answered %v after its %ds timeout under failurePolicy Fail", name, s.Webhook.Delay.Duration, s.Webhook.TimeoutSeconds)
	}
	msg := err.Error()
	if !strings.Contains(msg, wiSlowHook) {
		return fmt.Errorf("the pod was refused, but the error does not name the webhook %s that timed out, so a user cannot tell why: %s", wiSlowHook, msg)
	}
	if _, gerr := pods.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
		return fmt.Errorf("the creation was refused (%s), but pod %s exists (get: %v)", msg, name, gerr)
	}
	if limit := time.Duration(s.Webhook.TimeoutSeconds)*time.Second + 5*time.Second; took > limit {
		return fmt.Errorf("the refusal took %v, more than the %ds timeout and 5 s: %s", took.Round(100*time.Millisecond), s.Webhook.TimeoutSeconds, msg)
	}
	return nil
}

// podClient is what the step needs of the pods API.
type podClient interface {
	Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error)
}

// checkAdmitted checks the pod as admission left it: with mutated, every
// container has the four variables and a mount of a projected token with
// the contract's audience; without, no container has any of them and the
// pod has no such token (the webhook did not run: failurePolicy Ignore).
func checkAdmitted(p *corev1.Pod, mutated bool) error {
	vol := ""
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil && t.Audience == workloadidentity.TokenAudience {
				vol = v.Name
			}
		}
	}
	if !mutated && vol != "" {
		return fmt.Errorf("has a projected token with audience %s (volume %s) although the webhook did not answer", workloadidentity.TokenAudience, vol)
	}
	if mutated && vol == "" {
		return fmt.Errorf("has no projected token with audience %s", workloadidentity.TokenAudience)
	}
	envs := []string{workloadidentity.EnvClientID, workloadidentity.EnvTenantID, workloadidentity.EnvTokenFile, workloadidentity.EnvAuthorityHost}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		var have []string
		for _, e := range c.Env {
			if slices.Contains(envs, e.Name) {
				have = append(have, e.Name)
			}
		}
		mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return vol != "" && m.Name == vol })
		switch {
		case mutated && (len(have) != len(envs) || !mounted):
			return fmt.Errorf("container %s has %v of the variables %v and the token mounted: %v", c.Name, have, envs, mounted)
		case !mutated && len(have) > 0:
			return fmt.Errorf("container %s has %v although the webhook did not answer", c.Name, have)
		}
	}
	return nil
}

// checkShape checks that admission kept what the pod asked for: every
// container it had, and each init container's restartPolicy (a webhook
// that re-encodes init containers with an older API drops it, and the
// native sidecar becomes an init container that never ends).
func checkShape(asked, got *corev1.Pod) error {
	for _, a := range asked.Spec.InitContainers {
		i := slices.IndexFunc(got.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == a.Name })
		if i < 0 {
			return fmt.Errorf("init container %s is gone", a.Name)
		}
		g := got.Spec.InitContainers[i]
		if (a.RestartPolicy == nil) != (g.RestartPolicy == nil) || (a.RestartPolicy != nil && *a.RestartPolicy != *g.RestartPolicy) {
			return fmt.Errorf("init container %s: restartPolicy %v, asked for %v", a.Name, policyOf(g.RestartPolicy), policyOf(a.RestartPolicy))
		}
	}
	for _, a := range asked.Spec.Containers {
		if !slices.ContainsFunc(got.Spec.Containers, func(c corev1.Container) bool { return c.Name == a.Name }) {
			return fmt.Errorf("container %s is gone", a.Name)
		}
	}
	return nil
}

func policyOf(p *corev1.ContainerRestartPolicy) string {
	if p == nil {
		return "unset"
	}
	return string(*p)
}

// waitPodEnded waits until the pod's containers have ended (phase
// Succeeded or Failed) and returns it.
func waitPodEnded(ctx context.Context, pods podClient, name string) (*corev1.Pod, error) {
	last := ""
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			return p, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("phase %s %s", p.Status.Phase, podWaitReason(*p))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s did not end before the step's ready bound (last: %s)", name, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// judgeTokens judges the containers' probe results. mutated: every
// container got at least one token, and every token is for clientID.
// Not mutated: no container got any token (not this identity's, not any
// other's: a pod the webhook never saw has no identity at all).
func judgeTokens(byContainer map[string][]proberesult.Result, clientID string, mutated bool) (string, error) {
	var names []string
	for n := range byContainer {
		names = append(names, n)
	}
	slices.Sort(names)
	var said []string
	for _, n := range names {
		ok, other, lastErr := 0, "", ""
		for _, r := range byContainer[n] {
			switch {
			case r.OK() && r.ClientIDGot == clientID:
				ok++
			case r.OK():
				other = r.ClientIDGot
			default:
				lastErr = r.Error
			}
		}
		switch {
		case other != "":
			return "", fmt.Errorf("container %s got a token for client ID %s, not the service account's %s", n, other, clientID)
		case !mutated && ok > 0:
			return "", fmt.Errorf("container %s got %d tokens for %s although the webhook did not mutate the pod", n, ok, clientID)
		case mutated && ok == 0 && lastErr != "":
			return "", fmt.Errorf("container %s got no token: %s", n, oneLine(lastErr))
		case mutated && ok == 0:
			return "", fmt.Errorf("container %s got no token and wrote no result (its probe did not run a call)", n)
		}
		if mutated {
			said = append(said, fmt.Sprintf("%s %d tokens", n, ok))
		} else {
			said = append(said, n+" no token")
		}
	}
	return strings.Join(said, ", "), nil
}

// wiHooks makes a step's webhook configurations for the run's namespace.
type wiHooks struct {
	kube *kubeEnv
	ns   string
}

// stackHook returns the stack's identity webhook, whose client config
// (service and CA) the step's configurations reuse; only the reference
// webhook serves the test paths.
func (h *wiHooks) stackHook(ctx context.Context) (admissionregistrationv1.MutatingWebhook, error) {
	name := stack.WIWebhookConfigName(h.kube.namespace)
	cfg, err := h.kube.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(cfg.Webhooks) == 0 || cfg.Webhooks[0].ClientConfig.Service == nil {
		return admissionregistrationv1.MutatingWebhook{}, fmt.Errorf("the reference workload identity webhook's configuration %s (read: %v): this step needs the reference webhook (idharness run --profile reference --keep-cluster deploys it)", name, err)
	}
	return cfg.Webhooks[0], nil
}

// create makes a configuration with one webhook: base's service and CA
// at path, for labelled pods of the run's namespace only.
func (h *wiHooks) create(ctx context.Context, name, hook string, base admissionregistrationv1.MutatingWebhook, path string, policy admissionregistrationv1.FailurePolicyType, timeout int32) error {
	svc := *base.ClientConfig.Service
	svc.Path = &path
	never, none := admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.SideEffectClassNone
	if hook == wiSlowHook {
		// The identity webhook itself, reached late: reinvoked as the
		// stack's is.
		never = admissionregistrationv1.IfNeededReinvocationPolicy
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "idharness"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: hook, AdmissionReviewVersions: []string{"v1"},
			ClientConfig:       admissionregistrationv1.WebhookClientConfig{Service: &svc, CABundle: base.ClientConfig.CABundle},
			Rules:              base.Rules,
			ObjectSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{workloadidentity.UseLabel: "true"}},
			NamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": h.ns}},
			FailurePolicy:      &policy,
			SideEffects:        &none,
			ReinvocationPolicy: &never,
			TimeoutSeconds:     &timeout,
		}},
	}
	if _, err := h.kube.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the step's webhook configuration %s: %w", name, err)
	}
	return nil
}

// remove deletes a configuration the step made.
func (h *wiHooks) remove(ctx context.Context, name string) {
	_ = h.kube.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
}

// ownNamespace takes the run's namespace out of the stack's webhook
// configuration (on) or puts it back.
func (h *wiHooks) ownNamespace(ctx context.Context, on bool) error {
	v := `"step"`
	if !on {
		v = "null"
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, stack.WIOwnWebhookLabel, v)
	if _, err := h.kube.kube.CoreV1().Namespaces().Patch(ctx, h.ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label namespace %s %s: %w", h.ns, stack.WIOwnWebhookLabel, err)
	}
	return nil
}
