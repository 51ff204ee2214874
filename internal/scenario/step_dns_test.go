package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/dnsfault"
	"github.com/idharness/idharness/internal/dnsfault/dnsfaulttest"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// TestDNSStepValidate checks the dns step's errors against the shipped
// NXDOMAIN scenario, each with its file and line.
func TestDNSStepValidate(t *testing.T) {
	base, err := os.ReadFile("../../scenarios/authority-dns-nxdomain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const step = "    dns: {host: authority, nxdomain: true}"
	if !strings.Contains(string(base), step) {
		t.Fatalf("the shipped file lacks %q", step)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"other host", step, "    dns: {host: vault, nxdomain: true}", "timeline[0].dns.host: want authority"},
		{"no host", step, "    dns: {nxdomain: true}", "timeline[0].dns.host: want authority"},
		{"does nothing", step, "    dns: {host: authority}", "timeline[0].dns: does nothing"},
		{"nxdomain false", step, "    dns: {host: authority, nxdomain: false}", "timeline[0].dns: does nothing"},
		{"negative delay", step, "    dns: {host: authority, delay: -1s}", "timeline[0].dns.delay: want 0 to 1m0s"},
		{"delay beyond every resolver", step, "    dns: {host: authority, delay: 61s}", "timeline[0].dns.delay: want 0 to 1m0s (every resolver has given up by then), got 1m1s"},
		{"unknown parameter", step, "    dns: {host: authority, servfail: true}", "servfail: unknown field"},
		{"without for", "    for: 30s\n", "", "timeline[0].for: required: a dns step must end"},
		{"without workload identity", "  workloadIdentity: {identity: wi-dns-nx, expirationSeconds: 3600}\n", "", "timeline[0].dns: needs setup.workloadIdentity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(base), tc.old) {
				t.Fatalf("the shipped file lacks %q", tc.old)
			}
			src := strings.Replace(string(base), tc.old, tc.new, 1)
			if tc.name == "without workload identity" {
				// The groups need it too; leave them without it.
				src = strings.ReplaceAll(src, ", workloadIdentity: true}", "}")
				src = strings.ReplaceAll(src, "client: azidentity-wi", "client: azidentity-mi")
				src = strings.ReplaceAll(src, "client: msal-wi", "client: msal-mi")
				src = strings.ReplaceAll(src, "client: py-azidentity-wi", "client: py-azidentity-mi")
				src = strings.ReplaceAll(src, "client: js-azidentity-wi", "client: js-azidentity-mi")
				src = strings.ReplaceAll(src, "client: java-azidentity-wi", "client: java-azidentity-mi")
			}
			_, err := Parse("dns.yaml", []byte(src))
			var ye *yamlfile.Error
			if !errors.As(err, &ye) || !strings.HasPrefix(err.Error(), "dns.yaml:") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a file:line error with %q", err, tc.want)
			}
		})
	}
	s, err := Parse("dns.yaml", base)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.checkLocal(); err == nil || !strings.Contains(err.Error(), "timeline[0].dns") || !strings.Contains(err.Error(), "run this scenario in a cluster") {
		t.Errorf("local run: %v, want the dns step refused", err)
	}
	if !s.usesDNS() {
		t.Error("usesDNS() = false for a scenario with a dns step")
	}
	if plain, _ := LoadFile("../../scenarios/authority-503-token-exchange.yaml"); plain == nil || plain.usesDNS() {
		t.Error("usesDNS() must be false without a dns step: such runs start no resolver")
	}
}

// TestDNSStepApply plays the step against a real resolver on loopback,
// its faults written as the run writes them into its pod's annotation:
// the step returns once the resolver reports the fault applied; while it
// lasts the authority's name answers NXDOMAIN to a real DNS client,
// other names resolve, and its undo removes it; an undo after a fault no
// query hit fails the step, since it tested nothing.
func TestDNSStepApply(t *testing.T) {
	// The upstream: a port with nothing behind it, so that a forwarded
	// query gets SERVFAIL, never NXDOMAIN.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := pc.LocalAddr().String()
	pc.Close()
	dns, pod := dnsfaulttest.Start(t, up)
	var printed strings.Builder
	r := &runner{progress: &printed, kube: &kubeEnv{dns: &dnsRun{ctl: dnsfault.NewControl(pod), host: "wi-authority.idharness.svc", pod: "ns/idh-dns-resolver"}}}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns)
	}}
	lookup := func(name string) error { _, err := res.LookupHost(context.Background(), name); return err }
	notFound := func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsNotFound
	}
	ctx := context.Background()

	step := Step{Name: "nxdomain", For: duration.Of(30 * time.Second), Kind: "dns", Action: &dnsStep{Host: DNSHostAuthority, NXDomain: true}}
	t0 := time.Now()
	undo, detail, err := step.Action.apply(ctx, r, step)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "wi-authority.idharness.svc answers NXDOMAIN") {
		t.Errorf("detail %q", detail)
	}
	log, _ := pod.Log(ctx)
	var applied *dnsfault.Event
	for _, e := range dnsfault.ParseEvents(log) {
		if e.Event == dnsfault.EventApplied {
			applied = &e
		}
	}
	// The step's window starts when apply returns: the fault must be in
	// force by then, and must end by itself at the step's end.
	if applied == nil || applied.Time.After(time.Now()) || applied.Spec == nil || applied.Fault != "nxdomain" ||
		applied.Spec.Until.Before(t0.Add(30*time.Second+dnsEndMargin)) || applied.Spec.Until.After(time.Now().Add(30*time.Second+dnsEndMargin)) {
		t.Errorf("applied event %+v: want nxdomain in force when apply returned, until %v after the step's end", applied, dnsEndMargin)
	}
	if err := lookup("wi-authority.idharness.svc.cluster.local."); !notFound(err) {
		t.Errorf("the authority during the step: %v, want NXDOMAIN", err)
	}
	if err := lookup("vault.idharness.svc."); err == nil || notFound(err) {
		t.Errorf("another name during the step: %v, want it forwarded (SERVFAIL from the dead upstream)", err)
	}
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(printed.String(), "it hit 1 queries") && !strings.Contains(printed.String(), "it hit 2 queries") {
		t.Errorf("undo printed %q, want the hits counted", printed.String())
	}
	if err := lookup("wi-authority.idharness.svc."); notFound(err) {
		t.Error("the authority after the undo still answers NXDOMAIN")
	}

	idle := Step{For: duration.Of(30 * time.Second), Kind: "dns", Action: &dnsStep{Host: DNSHostAuthority, Delay: duration.Of(2 * time.Second)}}
	undo, _, err = idle.Action.apply(ctx, r, idle)
	if err != nil {
		t.Fatal(err)
	}
	if err := undo(ctx); err == nil || !strings.Contains(err.Error(), "tested nothing") {
		t.Errorf("undo of a fault no query hit: %v, want the step failed", err)
	}

	// A resolver that does not take the fault: the step fails with why.
	pod.Annotation = func(string) string { return `{"seq":9,"faults":{}}` }
	if _, _, err := step.Action.apply(ctx, r, step); err == nil || !strings.Contains(err.Error(), "neither applied nor rejected") {
		t.Errorf("a resolver that drops the fault: %v", err)
	}

	r.kube.dns = nil
	if _, _, err := step.Action.apply(ctx, r, step); err == nil || !strings.Contains(err.Error(), "resolver") {
		t.Errorf("without a resolver: %v", err)
	}
}

// TestDNSRunPoint: the run's pods resolve through its resolver with the
// cluster's search list and options.
func TestDNSRunPoint(t *testing.T) {
	d := &dnsRun{}
	d.policy, d.config = dnsfault.DNSConfig("10.244.2.9", dnsfault.Resolv{Search: []string{"ns.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5", "edns0"}})
	pod := &corev1.Pod{}
	d.point(pod)
	c := pod.Spec.DNSConfig
	if pod.Spec.DNSPolicy != corev1.DNSNone || c == nil || len(c.Nameservers) != 1 || c.Nameservers[0] != "10.244.2.9" ||
		strings.Join(c.Searches, " ") != "ns.svc.cluster.local svc.cluster.local" || len(c.Options) != 2 ||
		c.Options[0].Name != "ndots" || c.Options[0].Value == nil || *c.Options[0].Value != "5" || c.Options[1].Name != "edns0" || c.Options[1].Value != nil {
		t.Errorf("pod DNS: %v %+v", pod.Spec.DNSPolicy, c)
	}
	c.Searches[0] = "changed"
	if d.config.Searches[0] != "ns.svc.cluster.local" {
		t.Error("point shares the run's configuration with the pod")
	}
}

// TestProbePodsLeaveTheResolverOut: the run's DNS resolver shares the
// namespace with the probe pods, and must not count as one. Counted, a
// run of 2 probes with the resolver running saw 3 running pods and
// failed with "-1 of 2 probe pods were not running" (now: not ready).
func TestProbePodsLeaveTheResolverOut(t *testing.T) {
	ctx := context.Background()
	s, err := LoadFile("../../scenarios/authority-dns-nxdomain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	running := func(p *corev1.Pod) *corev1.Pod {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		return p
	}
	kube := fake.NewClientset(
		running(s.probePod(podPlan{pod: "probe-go-1"}, "run", "w", "img")),
		running(s.probePod(podPlan{pod: "probe-py-1"}, "run", "w", "img")),
		running(dnsfault.Pod(dnsfault.PodSpec{Name: dnsResolverPod, Namespace: "run", Node: "w", Image: "fakeimds"})))
	var out strings.Builder
	c := &clusterRun{r: &runner{progress: &out}, kube: kube, ns: "run", node: "w"}
	if err := c.waitReady(ctx, 2, time.Now()); err != nil {
		t.Errorf("waitReady: %v", err)
	}
	if got := c.podStatus(ctx); got != "pods running: 2" {
		t.Errorf("podStatus = %q, want the 2 probes alone", got)
	}
}

// TestResolverPodPatch: the run writes the faults into the resolver
// pod's annotation, which its downward API volume projects, and nothing
// else of the pod; a pod that is not there is an error.
func TestResolverPodPatch(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset(dnsfault.Pod(dnsfault.PodSpec{Name: dnsResolverPod, Namespace: "run", Node: "w", Image: "fakeimds"}))
	st := dnsfault.State{Seq: 3, Faults: map[string]dnsfault.Fault{"nx": {Names: []string{"a.example"}, NXDomain: true, Until: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}}}
	patch, err := dnsfault.FaultsPatch(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pod, want string
	}{
		{"the resolver's pod", dnsResolverPod, ""},
		{"no such pod", "idh-other", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := resolverPod{kube: kube, ns: "run", name: tc.pod}.Patch(ctx, patch)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Patch: %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := kube.CoreV1().Pods("run").Get(ctx, tc.pod, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got dnsfault.State
			if err := json.Unmarshal([]byte(p.Annotations[dnsfault.FaultsAnnotation]), &got); err != nil || got.Seq != 3 || !got.Faults["nx"].NXDomain ||
				p.Labels["app.kubernetes.io/name"] != "dns-resolver" || len(p.Spec.Volumes) != 1 {
				t.Errorf("pod after the patch: annotations %v (%v), labels %v", p.Annotations, err, p.Labels)
			}
		})
	}
}
