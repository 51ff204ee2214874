package scenario

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/probepod"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/proberesult"
	"github.com/idharness/idharness/pkg/yamlfile"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// clusterScenario has one group of every kind and every way of naming
// an identity; its line numbers matter to TestCheckCluster.
const clusterScenario = `id: pods
title: in-cluster mapping
links: [https://example.com/incident]
setup:
  seed: 7
  identities:
    - {name: web, clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01, objectId: 4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02}
timeline:
  - {name: slow, at: 2s, for: 3s, fault: {name: slow, match: {faces: [imds]}, action: {type: latency, delay: 100ms}}}
workload:
  duration: 20s
  clients:
    - {name: mi, client: azidentity-mi, count: 2, every: 2s, start: 1s, spread: 4s, identity: web}
    - {name: dac, client: azidentity-default, every: 5s}
    - {name: msal, client: msal-mi, every: 3s, identity: web, selectBy: objectId, timeout: 10s}
    - {name: raw, client: raw, every: 1s, identity: web, selectBy: resourceId, resource: https://vault.azure.net}
expect:
  - {kind: success-rate, minPercent: 100}
`

func mustParse(t *testing.T, text string) *Scenario {
	t.Helper()
	s, err := Parse("pods.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nodeConfig is a node's fakeimds configuration as the stack deploys it.
func nodeConfig() config.Config {
	c := config.Default()
	c.Host.SubscriptionID = "00000000-0000-4000-8000-00000000c1a5"
	c.Host.ResourceGroup = "rg-kind"
	c.SystemAssigned = &config.Identity{Name: "node-system", ClientID: "5b1c3f1a-0000-4000-8000-000000000001", ObjectID: "5b1c3f1a-0000-4000-8000-000000000002"}
	c.UserAssigned = []config.Identity{{Name: "id-a", ClientID: "6b1c3f1a-0000-4000-8000-000000000001", ObjectID: "6b1c3f1a-0000-4000-8000-000000000002"}}
	return c
}

func TestPlanPods(t *testing.T) {
	s := mustParse(t, clusterScenario)
	cfg, system, err := s.clusterConfig(nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{s: s, cfg: cfg, nonce: "n1", system: system}
	plans := r.planPods()
	webRID := "/subscriptions/00000000-0000-4000-8000-00000000c1a5/resourceGroups/rg-kind/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web"
	cases := []struct {
		pod, client, identity, resource, interval, duration, timeout, startAt, expect string
		env                                                                           map[string]string
	}{
		{"probe-mi-1", "azidentity-mi", "client_id=3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", "https://management.azure.com/idharness/n1/mi-1",
			"2s", "19s", "20s", "1s", "3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", nil},
		// spread 4s over 2 clients: the second starts 2 s after the first.
		{"probe-mi-2", "azidentity-mi", "client_id=3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", "https://management.azure.com/idharness/n1/mi-2",
			"2s", "17s", "20s", "3s", "3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", nil},
		{"probe-dac-1", "azidentity-default", "system", "https://management.azure.com/idharness/n1/dac-1",
			"5s", "20s", "20s", "0s", "5b1c3f1a-0000-4000-8000-000000000001", nil},
		{"probe-msal-1", "msal-mi", "object_id=4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02", "https://management.azure.com/idharness/n1/msal-1",
			"3s", "20s", "10s", "0s", "3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", nil},
		{"probe-raw-1", "raw", "resource_id=" + webRID, "https://vault.azure.net/idharness/n1/raw-1",
			"1s", "20s", "20s", "0s", "3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", nil},
	}
	if len(plans) != len(cases) {
		t.Fatalf("%d pods, want %d: %+v", len(plans), len(cases), plans)
	}
	for i, c := range cases {
		p := plans[i]
		name := strings.TrimPrefix(c.pod, "probe-")
		t.Run(name, func(t *testing.T) {
			want := []string{"--client=" + c.client, "--identity=" + c.identity, "--resource=" + c.resource, "--interval=" + c.interval,
				"--duration=" + c.duration, "--timeout=" + c.timeout, "--start-offset=" + c.startAt, "--end-offset=20s",
				"--tag=idharness-client/" + name}
			if p.pod != c.pod || !reflect.DeepEqual(p.args, want) || !reflect.DeepEqual(p.env, c.env) {
				t.Errorf("pod %s args %q env %v\nwant %s args %q env %v", p.pod, p.args, p.env, c.pod, want, c.env)
			}
			if first, _ := time.ParseDuration(c.startAt); p.first != first {
				t.Errorf("first call at %s, want %s", p.first, first)
			}
			if p.client.Name != name || p.client.Identity != c.expect || p.client.Resource != c.resource {
				t.Errorf("client %+v", p.client)
			}
			// The probe must accept the identity it is given.
			if _, err := probe.ParseIdentity(c.identity); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestClusterConfig(t *testing.T) {
	node := nodeConfig()
	t.Run("scenario identities replace the node's", func(t *testing.T) {
		s := mustParse(t, strings.Replace(clusterScenario, "seed: 7", "seed: 7\n  tokenLifetime: 6m\n  throttle: {enabled: false}", 1))
		cfg, system, err := s.clusterConfig(node)
		if err != nil {
			t.Fatal(err)
		}
		if system.ClientID != node.SystemAssigned.ClientID || cfg.SystemAssigned == nil || cfg.SystemAssigned.ClientID != node.SystemAssigned.ClientID {
			t.Errorf("system %+v, config's %+v: want the node's", system, cfg.SystemAssigned)
		}
		if len(cfg.UserAssigned) != 1 || cfg.UserAssigned[0].Name != "web" {
			t.Errorf("user-assigned %+v: want only the scenario's web", cfg.UserAssigned)
		}
		if cfg.Tokens.Lifetime.Duration != 6*time.Minute || cfg.Chaos.Throttle.Enabled == nil || *cfg.Chaos.Throttle.Enabled {
			t.Errorf("tokens %+v, throttle %+v", cfg.Tokens, cfg.Chaos.Throttle)
		}
		if !reflect.DeepEqual(cfg.Host, node.Host) {
			t.Errorf("host %+v: want the node's", cfg.Host)
		}
	})
	t.Run("no system-assigned identity", func(t *testing.T) {
		s := mustParse(t, strings.Replace(strings.Replace(clusterScenario, "seed: 7", "seed: 7\n  systemAssigned: false", 1),
			"    - {name: dac, client: azidentity-default, every: 5s}\n", "", 1))
		cfg, system, err := s.clusterConfig(node)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SystemAssigned != nil || system.ClientID != node.SystemAssigned.ClientID {
			t.Errorf("config's system %+v, attach-system identity %+v", cfg.SystemAssigned, system)
		}
	})
}

func TestCheckCluster(t *testing.T) {
	many := strings.Replace(clusterScenario, "count: 2, every: 2s", "count: 99, every: 2s", 1)
	cases := []struct {
		name, text, field string
		line              int
	}{
		{"ok", clusterScenario, "", 0},
		{"rule matching client addresses", strings.Replace(clusterScenario, "match: {faces: [imds]}", "match: {faces: [imds], sources: [127.0.0.1]}", 1),
			"timeline[0].fault.match.sources", 9},
		{"more pods than a node takes", many, "workload.clients", 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mustParse(t, c.text).CheckCluster()
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) || ye.Field != c.field || ye.Line != c.line {
				t.Fatalf("error %v (%+v): want field %s at line %d", err, ye, c.field, c.line)
			}
		})
	}
}

func TestCheckSeed(t *testing.T) {
	jitter := strings.Replace(clusterScenario, "delay: 100ms}", "delay: 100ms, distribution: uniform, jitter: 50ms}", 1)
	coin := strings.Replace(clusterScenario, "match: {faces: [imds]}", "match: {faces: [imds], probability: 0.5}", 1)
	cases := []struct {
		name, text string
		nodeSeed   int64
		wantErr    bool
	}{
		{"fixed rules run with any seed", clusterScenario, 99, false},
		{"same seed", jitter, 7, false},
		{"jitter with another seed", jitter, 99, true},
		{"probability with another seed", coin, 99, true},
		{"scenario without a seed", strings.Replace(coin, "seed: 7", "seed: 0", 1), 99, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mustParse(t, c.text).checkSeed("w1", c.nodeSeed)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error %v", err, c.wantErr)
			}
			var ye *yamlfile.Error
			if err != nil && (!errors.As(err, &ye) || ye.Field != "setup.seed" || !strings.Contains(err.Error(), "--seed 7")) {
				t.Errorf("error %v: want setup.seed and the flag that fixes it", err)
			}
		})
	}
}

func TestAttemptsFromProbe(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	exp := time.Date(2026, 1, 3, 15, 4, 5, 0, time.UTC)
	ms := func(d time.Duration) duration.Millis { return duration.Millis(d) }
	cases := []struct {
		name string
		line proberesult.Result
		want Attempt
	}{
		{"token", proberesult.Result{Time: t0.Add(time.Second), Status: proberesult.StatusOK, LatencyMs: ms(20 * time.Millisecond), ClientIDGot: "app", TokenExp: exp, ExpiresOn: exp},
			Attempt{Start: ms(time.Second), End: ms(1020 * time.Millisecond), OK: true, TokenAppID: "app", TokenExp: exp, ExpiresOn: exp}},
		{"failure on several lines", proberesult.Result{Time: t0.Add(2 * time.Second), Status: proberesult.StatusError, LatencyMs: ms(time.Second), Error: "ManagedIdentityCredential: failed\n---\nRESPONSE 410\n"},
			Attempt{Start: ms(2 * time.Second), End: ms(3 * time.Second), Error: "ManagedIdentityCredential: failed | RESPONSE 410"}},
		{"cut off by --end-at", proberesult.Result{Time: t0.Add(8 * time.Second), Status: proberesult.StatusError, LatencyMs: ms(2 * time.Second), Error: "Get …: context deadline exceeded"},
			Attempt{Start: ms(8 * time.Second), End: ms(10 * time.Second), Cancelled: true, Error: "cut off by the end of the workload"}},
		{"failure just before the end", proberesult.Result{Time: t0.Add(9 * time.Second), Status: proberesult.StatusError, LatencyMs: ms(700 * time.Millisecond), Error: "IMDS answered 503"},
			Attempt{Start: ms(9 * time.Second), End: ms(9700 * time.Millisecond), Error: "IMDS answered 503"}},
		{"resource refused", proberesult.Result{Time: t0.Add(3 * time.Second), Status: proberesult.StatusError, Stage: proberesult.StageResource, LatencyMs: ms(30 * time.Millisecond), ClientIDGot: "app", ResourceStatus: 403, Error: "protected resource: 403"},
			Attempt{Start: ms(3 * time.Second), End: ms(3030 * time.Millisecond), OK: true, TokenAppID: "app", ResourceStatus: 403, ResourceError: "protected resource: 403"}},
		{"resource call cut off by --end-at", proberesult.Result{Time: t0.Add(9 * time.Second), Status: proberesult.StatusError, Stage: proberesult.StageResource, LatencyMs: ms(time.Second), ClientIDGot: "app", Error: "protected resource: Get …: context deadline exceeded"},
			Attempt{Start: ms(9 * time.Second), End: ms(10 * time.Second), OK: true, TokenAppID: "app", ResourceError: "protected resource: Get …: context deadline exceeded", Cancelled: true, Error: "cut off by the end of the workload"}},
		{"unreadable token", proberesult.Result{Time: t0, Status: proberesult.StatusOK, LatencyMs: ms(time.Millisecond), ClaimsError: "token is not a signed JWT"},
			Attempt{End: ms(time.Millisecond), OK: true, Error: "token unreadable: token is not a signed JWT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := attemptsFromProbe([]proberesult.Result{c.line}, t0, 10*time.Second)
			if len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestReadProbeLog(t *testing.T) {
	ok := `{"time":"2026-01-02T15:04:06Z","client":"raw","status":"ok","latencyMs":3,"requests":1}`
	sum := `{"summary":true,"attempts":1}`
	cases := []struct {
		name    string
		log     string
		lines   int
		wantErr bool
	}{
		{"lines and summary", ok + "\n" + ok + "\n" + sum + "\n", 2, false},
		{"runtime noise skipped", "starting\n" + ok + "\n\n" + sum, 1, false},
		{"no summary: the probe did not finish", ok + "\n", 1, true},
		{"broken line", `{"time": 3}` + "\n" + sum, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readProbeLog([]byte(c.log))
			if (err != nil) != c.wantErr || (!c.wantErr && len(got) != c.lines) {
				t.Errorf("%d lines, error %v; want %d lines, error %v", len(got), err, c.lines, c.wantErr)
			}
		})
	}
}

func TestPickNode(t *testing.T) {
	st := &stack.Stack{Namespace: "idharness-system", Nodes: map[string]config.Config{"kind-control-plane": {}, "kind-worker": {}, "kind-worker2": {}}}
	cases := []struct{ want, got, err string }{
		{"", "kind-worker2", ""},
		{"kind-worker", "kind-worker", ""},
		{"kind-worker9", "", `node "kind-worker9" has no fakeimds; nodes: kind-control-plane, kind-worker, kind-worker2`},
	}
	for _, c := range cases {
		got, err := pickNode(st, c.want, false)
		if got != c.got || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("pickNode(%q) = %q, %v; want %q, %q", c.want, got, err, c.got, c.err)
		}
	}
	// Client programs go to the last node with their images unpacked; Go
	// clients, and a cluster that unpacked them everywhere, to the last.
	st.Images.ClientNodes = []string{"kind-worker"}
	for _, c := range []struct {
		programs bool
		got      string
	}{{true, "kind-worker"}, {false, "kind-worker2"}} {
		if got, err := pickNode(st, "", c.programs); got != c.got || err != nil {
			t.Errorf("pickNode with ClientNodes %v, programs %v = %q, %v; want %q", st.Images.ClientNodes, c.programs, got, err, c.got)
		}
	}
	// Asked for by name, a node without the client images is refused for
	// client programs (their pods would never start), not for Go clients.
	if got, err := pickNode(st, "kind-worker2", true); err == nil || !strings.Contains(err.Error(), `node "kind-worker2" lacks the client programs' images (the run that deployed the stack loaded them into kind-worker only)`) {
		t.Errorf("client programs on a node without their images: %q, %v", got, err)
	}
	if got, err := pickNode(st, "kind-worker2", false); got != "kind-worker2" || err != nil {
		t.Errorf("Go clients on a node without the client images: %q, %v", got, err)
	}
	if _, err := pickNode(&stack.Stack{Namespace: "x"}, "", false); err == nil || !strings.Contains(err.Error(), "idharness run --keep-cluster") {
		t.Errorf("no nodes: %v", err)
	}
}

// TestClientProgramsInCluster checks that a client program's pod runs
// its program's image, and that a stack without that image is refused
// with the command that deploys it.
func TestClientProgramsInCluster(t *testing.T) {
	s, err := Parse("t.yaml", []byte(`id: t
title: t
links: [https://learn.microsoft.com/x]
workload:
  duration: 10s
  clients:
    - {name: py, client: py-azidentity-mi, every: 5s}
    - {name: go, client: azidentity-mi, every: 5s}
expect:
  - kind: own-identity
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckCluster(); err != nil {
		t.Fatalf("CheckCluster: %v", err)
	}
	r := &runner{s: s, nonce: "n1", source: map[string]string{}}
	plans := r.planPods()
	if len(plans) != 2 || plans[0].program != "python-azure-identity" || plans[0].client.Language != "python" || plans[1].program != "" || plans[1].client.Language != "go" {
		t.Fatalf("plans %+v", plans)
	}
	if err := checkClientImages(s, map[string]string{"python-azure-identity": "idharness.local/client-python-azure-identity:dev"}); err != nil {
		t.Errorf("with the image: %v", err)
	}
	err = checkClientImages(s, nil)
	if err == nil || !strings.Contains(err.Error(), "--client-images python-azure-identity") {
		t.Errorf("without the image: %v, want the command that deploys it", err)
	}
}

// TestLateStarts: a client whose first call began more than
// StartTolerance after its planned start (the run's start plus its
// offset) makes the run fail; one on time, one offset by its spread and
// one planned to start at the workload's end that made no call do not;
// one planned within it that made none does.
func TestLateStarts(t *testing.T) {
	cr := func(name string, first ...time.Duration) *ClientResult {
		c := &ClientResult{Name: name}
		for _, f := range first {
			c.Attempts = append(c.Attempts, Attempt{Start: Millis(f)})
		}
		return c
	}
	offsets := map[string]time.Duration{"a-1": 0, "a-2": 2 * time.Second, "after-1": time.Minute, "late-1": 0, "never-1": 0}
	ok := []*ClientResult{cr("a-1", 40*time.Millisecond), cr("a-2", 2900*time.Millisecond), cr("after-1")}
	if err := lateStarts(ok, offsets, time.Minute); err != nil {
		t.Errorf("on time: %v", err)
	}
	err := lateStarts(append(ok, cr("late-1", 1500*time.Millisecond, 2*time.Second)), offsets, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "late-1 1.5s late") || strings.Contains(err.Error(), "a-2") {
		t.Errorf("late: %v", err)
	}
	// IDH-CHAOS-0004 once had a pod that learned its start after the
	// workload's end: no call at all, which must not pass for a client
	// that merely got no token.
	if err := lateStarts(append(ok, cr("never-1")), offsets, time.Minute); err == nil || !strings.Contains(err.Error(), "never-1 never") {
		t.Errorf("never started: %v", err)
	}
}

// TestWaitReady: running is not enough, the probe must have said it is
// ready (its startupProbe passed); a pod not ready by the deadline fails
// the wait with its reason and the flag that gives more time.
func TestWaitReady(t *testing.T) {
	s := mustParse(t, clusterScenario)
	pod := func(name string, ready bool) *corev1.Pod {
		p := s.probePod(podPlan{pod: name}, "run", "w", "img")
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
		if ready {
			p.Status.Conditions[0].Status = corev1.ConditionTrue
		}
		return p
	}
	ctx := context.Background()
	c := &clusterRun{r: &runner{progress: io.Discard}, kube: fake.NewClientset(pod("probe-a-1", true), pod("probe-a-2", true)), ns: "run", node: "w"}
	if err := c.waitReady(ctx, 2, time.Now()); err != nil {
		t.Errorf("both ready: %v", err)
	}
	c.kube = fake.NewClientset(pod("probe-a-1", true), pod("probe-a-2", false))
	err := c.waitReady(ctx, 2, time.Now().Add(600*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 probe pods") || !strings.Contains(err.Error(), "--lead") {
		t.Errorf("one running, not ready: %v", err)
	}
}

// TestSetStart: every probe pod gets the start, then the nudges while
// the start is still StartNudgeSlack away (the kubelet's projection can
// miss one update).
func TestSetStart(t *testing.T) {
	s := mustParse(t, clusterScenario)
	var objs []runtime.Object
	var plans []podPlan
	for _, n := range []string{"probe-a-1", "probe-a-2", "probe-b-1"} {
		plans = append(plans, podPlan{pod: n})
		objs = append(objs, s.probePod(podPlan{pod: n}, "run", "w", "img"))
	}
	kube := fake.NewClientset(objs...)
	c := &clusterRun{r: &runner{progress: io.Discard}, kube: kube, ns: "run", node: "w"}
	before := time.Now()
	t0, err := c.setStart(context.Background(), plans)
	if err != nil {
		t.Fatal(err)
	}
	if m := StartMargin(3); t0.Before(before.Add(m-10*time.Millisecond)) || time.Until(t0) < StartNudgeSlack-200*time.Millisecond {
		t.Errorf("start %v from %v: want %s ahead, returned at least %s before it", t0, before, m, StartNudgeSlack)
	}
	for _, p := range plans {
		pod, err := kube.CoreV1().Pods("run").Get(context.Background(), p.pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := pod.Annotations[probepod.StartAnnotation]; got != t0.UTC().Format(time.RFC3339Nano) {
			t.Errorf("%s start %q, want %v", p.pod, got, t0)
		}
		if got := pod.Annotations[probepod.StartAnnotation+"-nudge"]; got != "2" {
			t.Errorf("%s nudged %q times, want 2", p.pod, got)
		}
	}
}

// TestStartsLight checks which shipped plays start their pods without
// the start gate: few Go pods only. The storms and the client programs'
// runtimes keep it; a gate skipped by either would let them start their
// pods over another play's start.
func TestStartsLight(t *testing.T) {
	cases := []struct {
		file  string
		light bool
	}{
		{"token-refresh-during-outage.yaml", true},   // IDH-CHAOS-0011: three Go clients
		{"imds-429-cold-start-storm.yaml", false},    // IDH-CHAOS-0004: 50 pods
		{"authority-503-token-exchange.yaml", false}, // IDH-CHAOS-0020: Python, JavaScript, Java
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s, err := LoadFile(filepath.Join("..", "..", "scenarios", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r := &runner{s: s}
			pods := len(r.planPods())
			if got := s.startsLight(pods); got != tc.light {
				t.Errorf("startsLight(%d pods, programs %v) = %v, want %v", pods, s.ClientPrograms(), got, tc.light)
			}
		})
	}
}

// TestCleanupWaitsForThePodsOnly: cleanup deletes the run's pods itself
// and returns once they are gone, while the namespace is still being
// deleted (the namespace controller took 5 s more, each chaos play).
func TestCleanupWaitsForThePodsOnly(t *testing.T) {
	s := mustParse(t, clusterScenario)
	kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "run"}},
		s.probePod(podPlan{pod: "probe-a-1"}, "run", "w", "img"), s.probePod(podPlan{pod: "probe-a-2"}, "run", "w", "img"))
	// The namespace stays, terminating, and deletes none of its pods.
	kube.PrependReactor("delete", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	var out bytes.Buffer
	c := &clusterRun{r: &runner{progress: &out, kube: &kubeEnv{}}, kube: kube, ns: "run", node: "w", nsCreated: true}
	done := make(chan struct{})
	go func() { c.cleanup(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cleanup still waiting 10 s after the pods were deleted: it waits for the namespace")
	}
	if l, _ := kube.CoreV1().Pods("run").List(context.Background(), metav1.ListOptions{}); len(l.Items) > 0 {
		t.Errorf("%d pods left", len(l.Items))
	}
	if !strings.Contains(out.String(), "pods of namespace run are gone") {
		t.Errorf("progress:\n%s", out.String())
	}
}
