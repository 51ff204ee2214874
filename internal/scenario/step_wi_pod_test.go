package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
	"github.com/idharness/idharness/pkg/proberesult"
)

// wiStep is base with its fault step replaced by a wiPod step.
func wiStep(params string) string {
	return strings.Replace(base, "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    wiPod: "+params, 1)
}

// TestWIPodValidation: every parameter of a wiPod step is checked, with
// the step's line and field.
func TestWIPodValidation(t *testing.T) {
	for _, tc := range []struct {
		name, params, want, contains string
	}{
		{"no identity", "{shape: sidecar}", "t.yaml:11: timeline[0].wiPod.identity: ", "required"},
		{"system identity", "{identity: system}", "t.yaml:11: timeline[0].wiPod.identity: ", "required"},
		{"unknown identity", "{identity: nobody}", "t.yaml:11: timeline[0].wiPod.identity: ", `"nobody" is not one of setup.identities`},
		{"unknown shape", "{identity: web, shape: daemon}", "t.yaml:11: timeline[0].wiPod.shape: ", "want one of plain, sidecar, non-root, reinvoked"},
		{"negative ready", "{identity: web, ready: -1s}", "t.yaml:11: timeline[0].wiPod.ready: ", "want a wait between"},
		{"timeout 0", "{identity: web, webhook: {delay: 5s, timeoutSeconds: 0, failurePolicy: Fail}}", "t.yaml:11: timeline[0].wiPod.webhook.timeoutSeconds: ", "want 1 to 30"},
		{"timeout 31", "{identity: web, webhook: {delay: 5s, timeoutSeconds: 31, failurePolicy: Fail}}", "t.yaml:11: timeline[0].wiPod.webhook.timeoutSeconds: ", "want 1 to 30"},
		{"delay not beyond the timeout", "{identity: web, webhook: {delay: 2500ms, timeoutSeconds: 2, failurePolicy: Fail}}", "t.yaml:11: timeline[0].wiPod.webhook.delay: ", "at least a second more than timeoutSeconds"},
		{"delay beyond the bound", "{identity: web, webhook: {delay: 31s, timeoutSeconds: 2, failurePolicy: Fail}}", "t.yaml:11: timeline[0].wiPod.webhook.delay: ", "at most 30s"},
		{"bad policy", "{identity: web, webhook: {delay: 5s, timeoutSeconds: 2, failurePolicy: fail}}", "t.yaml:11: timeline[0].wiPod.webhook.failurePolicy: ", "want Fail or Ignore"},
		{"reinvoked behind a slow webhook", "{identity: web, shape: reinvoked, webhook: {delay: 5s, timeoutSeconds: 2, failurePolicy: Ignore}}", "t.yaml:11: timeline[0].wiPod.webhook: ", "needs the identity webhook to answer"},
		{"unknown parameter", "{identity: web, image: x}", "t.yaml:11: ", "image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(wiStep(tc.params)))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("error\n  %v\nwant prefix %q with %q", err, tc.want, tc.contains)
			}
		})
	}
	s, err := Parse("t.yaml", []byte(wiStep("{identity: web, webhook: {delay: 3s, timeoutSeconds: 2, failurePolicy: Ignore}}")))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Timeline[0].blocks() {
		t.Error("a wiPod step must block: its end is when the pod has ended")
	}
	_, err = Run(context.Background(), s, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml:11: timeline[0].wiPod: ") || !strings.Contains(err.Error(), "--cluster") {
		t.Fatalf("local run: error %v, want the step refused with its line and --cluster", err)
	}
	if _, err := Parse("t.yaml", []byte(strings.Replace(wiStep("{identity: web}"), "    wiPod:", "    for: 3s\n    wiPod:", 1))); err == nil || !strings.Contains(err.Error(), "for") {
		t.Errorf("for on a wiPod step: error %v, want it refused", err)
	}
}

// TestWIPodShapes: each shape is the pod the docs promise.
func TestWIPodShapes(t *testing.T) {
	for _, tc := range []struct {
		shape string
		check func(t *testing.T, p *corev1.Pod)
	}{
		{WIShapePlain, func(t *testing.T, p *corev1.Pod) {
			if len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 || !hasArg(p.Spec.Containers[0], "--count=1") {
				t.Errorf("plain: %+v", p.Spec)
			}
		}},
		{WIShapeSidecar, func(t *testing.T, p *corev1.Pod) {
			ic := p.Spec.InitContainers
			if len(ic) != 2 || ic[0].Name != "init" || ic[0].RestartPolicy != nil || ic[1].Name != "sidecar" || ic[1].RestartPolicy == nil || *ic[1].RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Fatalf("want a plain init container then a native sidecar, got %+v", ic)
			}
			if !hasArg(ic[1], "--duration=60s") || !hasArg(p.Spec.Containers[0], "--start-delay=2s") {
				t.Errorf("the sidecar must call while the app runs: %v / %v", ic[1].Args, p.Spec.Containers[0].Args)
			}
		}},
		{WIShapeNonRoot, func(t *testing.T, p *corev1.Pod) {
			if p.Spec.SecurityContext == nil || !*p.Spec.SecurityContext.RunAsNonRoot || p.Spec.SecurityContext.FSGroup != nil {
				t.Errorf("pod security context %+v: want runAsNonRoot and no fsGroup", p.Spec.SecurityContext)
			}
			uids := map[int64]bool{}
			for _, c := range p.Spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
					t.Fatalf("container %s: %+v", c.Name, sc)
				}
				uids[*sc.RunAsUser] = true
			}
			if len(uids) != 2 {
				t.Errorf("want two containers of two UIDs, got %v", uids)
			}
		}},
		{WIShapeReinvoked, func(t *testing.T, p *corev1.Pod) {
			if len(p.Spec.Containers) != 1 {
				t.Errorf("the second webhook adds the other container: %+v", p.Spec.Containers)
			}
		}},
	} {
		t.Run(tc.shape, func(t *testing.T) {
			p := (&wiPodStep{Identity: "web", Shape: tc.shape}).pod("p", "ns", "node", "sa", "img")
			if p.Labels[workloadidentity.UseLabel] != "true" || p.Spec.ServiceAccountName != "sa" || p.Spec.NodeName != "node" {
				t.Errorf("pod meta %+v", p.ObjectMeta)
			}
			for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
				if !hasArg(c, "--mode="+probe.ModeWorkloadIdentity) || !hasArg(c, "--client="+probe.ClientAzidentityWI) || !hasArg(c, "--ca-file="+wiCADir+"/ca.crt") || len(c.VolumeMounts) != 1 {
					t.Errorf("container %s: args %v mounts %v", c.Name, c.Args, c.VolumeMounts)
				}
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "AZURE_") {
						t.Errorf("container %s sets %s itself: only the webhook may", c.Name, e.Name)
					}
				}
			}
			tc.check(t, p)
		})
	}
}

func hasArg(c corev1.Container, a string) bool {
	for _, x := range c.Args {
		if x == a {
			return true
		}
	}
	return false
}

// mutatedPod is a pod of the given shape as a webhook admits it by the
// contract (pkg/api/workloadidentity): the four variables and the
// projected token in every container. It is written from the contract,
// not taken from the reference webhook: the judge must not learn from it.
func mutatedPod(t *testing.T, shape string) *corev1.Pod {
	t.Helper()
	p := (&wiPodStep{Identity: "web", Shape: shape}).pod("p", "ns", "node", "sa", "img")
	if shape == WIShapeReinvoked {
		// The second webhook, then the identity webhook's reinvocation.
		p = withAddedContainer(p)
	}
	return mutateByContract(p)
}

// mutateByContract gives every container of p the workload identity
// variables and the projected token.
func mutateByContract(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	exp := int64(workloadidentity.DefaultTokenExpiration)
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "azure-identity-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: workloadidentity.TokenAudience, ExpirationSeconds: &exp, Path: "azure-identity-token"}}}}}})
	mutate := func(c *corev1.Container) {
		for _, name := range []string{workloadidentity.EnvClientID, workloadidentity.EnvTenantID, workloadidentity.EnvTokenFile, workloadidentity.EnvAuthorityHost} {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: "x"})
		}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "azure-identity-token", MountPath: "/var/run/secrets/azure/tokens", ReadOnly: true})
	}
	for i := range p.Spec.InitContainers {
		mutate(&p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		mutate(&p.Spec.Containers[i])
	}
	return p
}

// withAddedContainer is what the reinvocation's second webhook does: a
// copy of the first container, without identity settings.
func withAddedContainer(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	c := *p.Spec.Containers[0].DeepCopy()
	c.Name, c.Env, c.VolumeMounts = "added", nil, nil
	p.Spec.Containers = append(p.Spec.Containers, c)
	return p
}

// TestCheckAdmitted: the pod as admitted has workload identity in every
// container (mutated) or nowhere (failurePolicy Ignore).
func TestCheckAdmitted(t *testing.T) {
	unmutated := (&wiPodStep{Shape: WIShapeSidecar}).pod("p", "ns", "node", "sa", "img")
	for _, tc := range []struct {
		name    string
		pod     func(t *testing.T) *corev1.Pod
		mutated bool
		want    string // "": no error
	}{
		{"sidecar shape mutated", func(t *testing.T) *corev1.Pod { return mutatedPod(t, WIShapeSidecar) }, true, ""},
		{"non-root shape mutated", func(t *testing.T) *corev1.Pod { return mutatedPod(t, WIShapeNonRoot) }, true, ""},
		{"reinvoked shape mutated", func(t *testing.T) *corev1.Pod { return mutatedPod(t, WIShapeReinvoked) }, true, ""},
		{"added container without reinvocation", func(t *testing.T) *corev1.Pod {
			p := mutatedPod(t, WIShapePlain)
			return withAddedContainer(p)
		}, true, "container added has [] of the variables"},
		{"skipped sidecar", func(t *testing.T) *corev1.Pod {
			p := mutatedPod(t, WIShapeSidecar)
			p.Spec.InitContainers[1].Env, p.Spec.InitContainers[1].VolumeMounts = nil, nil
			return p
		}, true, "container sidecar has [] of the variables"},
		{"no token volume", func(t *testing.T) *corev1.Pod { return unmutated }, true, "has no projected token"},
		{"unmutated, as Ignore must leave it", func(t *testing.T) *corev1.Pod { return unmutated }, false, ""},
		{"mutated although the webhook timed out", func(t *testing.T) *corev1.Pod { return mutatedPod(t, WIShapePlain) }, false, "has a projected token with audience"},
		{"a variable although the webhook timed out", func(t *testing.T) *corev1.Pod {
			p := unmutated.DeepCopy()
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: workloadidentity.EnvClientID, Value: "x"}}
			return p
		}, false, "container app has [AZURE_CLIENT_ID]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAdmitted(tc.pod(t), tc.mutated)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCheckShape: admission must keep the containers and a native
// sidecar's restartPolicy (azure-workload-identity#1312 dropped it).
func TestCheckShape(t *testing.T) {
	asked := (&wiPodStep{Shape: WIShapeSidecar}).pod("p", "ns", "node", "sa", "img")
	if err := checkShape(asked, mutatedPod(t, WIShapeSidecar)); err != nil {
		t.Fatalf("the reference webhook's pod: %v", err)
	}
	dropped := mutatedPod(t, WIShapeSidecar)
	dropped.Spec.InitContainers[1].RestartPolicy = nil
	if err := checkShape(asked, dropped); err == nil || !strings.Contains(err.Error(), "init container sidecar: restartPolicy unset, asked for Always") {
		t.Errorf("restartPolicy dropped: error %v", err)
	}
	gone := mutatedPod(t, WIShapeSidecar)
	gone.Spec.Containers = nil
	if err := checkShape(asked, gone); err == nil || !strings.Contains(err.Error(), "container app is gone") {
		t.Errorf("container dropped: error %v", err)
	}
}

// TestJudgeTokens: with workload identity every container needs a token
// of its identity; without, no container may get any token.
func TestJudgeTokens(t *testing.T) {
	ok := func(id string) proberesult.Result {
		return proberesult.Result{Status: proberesult.StatusOK, ClientIDGot: id}
	}
	fail := proberesult.Result{Status: proberesult.StatusError, Error: "mode workload-identity needs AZURE_TENANT_ID set"}
	for _, tc := range []struct {
		name    string
		results map[string][]proberesult.Result
		mutated bool
		want    string // "" : passes
	}{
		{"every container its token", map[string][]proberesult.Result{"app": {ok("c")}, "sidecar": {ok("c"), ok("c")}}, true, ""},
		{"a container without a result", map[string][]proberesult.Result{"app": {ok("c")}, "init": nil}, true, "container init got no token and wrote no result"},
		{"a container failed", map[string][]proberesult.Result{"app": {ok("c")}, "added": {fail}}, true, "container added got no token: mode workload-identity needs AZURE_TENANT_ID"},
		{"another identity", map[string][]proberesult.Result{"app": {ok("c"), ok("other")}}, true, "got a token for client ID other"},
		{"unmutated, no token", map[string][]proberesult.Result{"app": {fail}}, false, ""},
		{"unmutated but its identity's token", map[string][]proberesult.Result{"app": {ok("c")}}, false, "although the webhook did not mutate"},
		{"unmutated but another identity", map[string][]proberesult.Result{"app": {ok("node")}}, false, "got a token for client ID node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := judgeTokens(tc.results, "c", tc.mutated)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// fakePods answers Get with a pod or NotFound.
type fakePods struct{ exists bool }

func (f fakePods) Create(context.Context, *corev1.Pod, metav1.CreateOptions) (*corev1.Pod, error) {
	return nil, errors.New("not used")
}

func (f fakePods) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.Pod, error) {
	if f.exists {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

// TestJudgeRefused: under failurePolicy Fail the creation is refused in
// time, the error names the webhook, and no pod exists.
func TestJudgeRefused(t *testing.T) {
	s := &wiPodStep{Webhook: &wiSlowWebhook{Delay: duration.Of(6 * time.Second), TimeoutSeconds: 2, FailurePolicy: "Fail"}}
	refusal := errors.New(`Internal error occurred: failed calling webhook "` + wiSlowHook + `": failed to call webhook: Post "https://wiwebhook.idharness-system.svc:443/slow/6s/mutate-v1-pod?timeout=2s": context deadline exceeded`)
	for _, tc := range []struct {
		name   string
		err    error
		exists bool
		took   time.Duration
		want   string
	}{
		{"refused, no pod", refusal, false, 2 * time.Second, ""},
		{"admitted", nil, true, 2 * time.Second, "admitted pod p although"},
		{"refused without naming the webhook", errors.New("Internal error occurred"), false, 2 * time.Second, "does not name the webhook"},
		{"refused but a pod exists", refusal, true, 2 * time.Second, "but pod p exists"},
		{"refused late", refusal, false, 8 * time.Second, "the refusal took 8s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.judgeRefused(context.Background(), fakePods{exists: tc.exists}, "p", tc.err, tc.took)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestWIPodNeedsOnlyTheStack: a wiPod step makes its own service
// account, so a cluster run without setup.workloadIdentity (kubeEnv.wi
// nil) must still reach the stack's workload identity part; only a run
// with no cluster is refused. The first case fails if apply checks the
// run's workload identity set-up instead of the stack.
func TestWIPodNeedsOnlyTheStack(t *testing.T) {
	reached := errors.New("reached the stack")
	for _, tc := range []struct {
		name string
		kube *kubeEnv
		want string
	}{
		{"cluster run without setup.workloadIdentity", &kubeEnv{runNamespace: "idh-scenario-abcde",
			wiStack: func(context.Context) (*stack.WorkloadIdentity, error) { return nil, reached }}, reached.Error()},
		{"no cluster", nil, "a wiPod step needs a cluster"},
		{"cluster without the stack's workload identity", &kubeEnv{runNamespace: "idh-scenario-abcde"}, "a wiPod step needs a cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{s: &Scenario{}, kube: tc.kube, source: map[string]string{}}
			step := &wiPodStep{Identity: "web"}
			_, _, err := step.apply(context.Background(), r, Step{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("apply: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNotApplicable: a wiPod step that reaches the reference webhook's
// test paths (a slow webhook, a reinvocation) does not apply when the
// webhook under test is another implementation's, or there is none; any
// other shape applies to every webhook, and a stack that does not say
// which webhook it runs is left to the step itself. A vendor's webhook
// is the input that must make the scenario not applicable.
func TestNotApplicable(t *testing.T) {
	const slow = "{identity: web, webhook: {delay: 3s, timeoutSeconds: 2, failurePolicy: Ignore}}"
	for _, tc := range []struct {
		name, params, webhook, want string
	}{
		{"slow webhook, vendor's", slow, "acme-wi", "not applicable to this implementation: t.yaml: timeline[0].wiPod puts the run's namespace behind the reference webhook's slow test path (/slow/DELAY/mutate-v1-pod), and the workload identity webhook under test is acme-wi's, not idharness's reference webhook"},
		{"reinvoked, vendor's", "{identity: web, shape: reinvoked}", "acme-wi", "not applicable to this implementation: t.yaml: timeline[0].wiPod adds a container through the reference webhook's /add-container test path, and the workload identity webhook under test is acme-wi's"},
		{"reinvoked, no webhook", "{identity: web, shape: reinvoked}", stack.WIWebhookNone, "/add-container test path, and the stack deploys no workload identity webhook"},
		{"slow webhook, reference", slow, stack.WIWebhookReference, ""},
		{"reinvoked, reference", "{identity: web, shape: reinvoked}", stack.WIWebhookReference, ""},
		{"slow webhook, not recorded", slow, "", ""},
		{"plain, vendor's", "{identity: web}", "acme-wi", ""},
		{"sidecar, vendor's", "{identity: web, shape: sidecar}", "acme-wi", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(wiStep(tc.params)))
			if err != nil {
				t.Fatal(err)
			}
			got := s.NotApplicable(tc.webhook)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("NotApplicable(%q) = %q, want %q", tc.webhook, got, tc.want)
			}
		})
	}
	// A fault step needs no webhook at all.
	s, err := Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.NotApplicable("acme-wi"); got != "" {
		t.Errorf("a scenario without a wiPod step: %q", got)
	}
}
