package scenario

// A cluster run whose scenario has a dns step starts a DNS resolver of
// its own (internal/dnsfault) in its namespace, on its node, and points
// its pods at it: the dns steps' faults then reach the run's pods and
// no other. The run sets the faults in an annotation of the resolver's
// pod, which the resolver reads from a downward API file, and reads what
// the resolver did from its log (dnsfault.Control): it takes the rights
// to patch a pod and read its log, which the in-cluster runner has and
// the pods under test do not, and the resolver listens on nothing but
// DNS.

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/dnsfault"
)

// dnsResolverPod is the resolver's pod in the run's namespace.
const dnsResolverPod = "idh-dns-resolver"

// dnsReady bounds the resolver pod's start: its image (fakeimds's) is
// on every node already.
const dnsReady = time.Minute

// dnsRun is a cluster run's resolver, once started.
type dnsRun struct {
	ctl *dnsfault.Control
	// host is the name the dns steps fault: the authority's host.
	host string
	// pod is the resolver's pod, ns/name, for the report's details.
	pod    string
	policy corev1.DNSPolicy
	config *corev1.PodDNSConfig
}

// point makes pod resolve through the run's resolver.
func (d *dnsRun) point(pod *corev1.Pod) {
	pod.Spec.DNSPolicy, pod.Spec.DNSConfig = d.policy, d.config.DeepCopy()
}

// setupDNS starts the run's resolver when the scenario has a dns step:
// after setupWorkloadIdentity, which knows the authority's host.
func (c *clusterRun) setupDNS(ctx context.Context) error {
	if !c.r.s.usesDNS() {
		return nil
	}
	wi := c.r.kube.wi
	if wi == nil {
		return c.r.s.fieldError("setup.workloadIdentity", "required by the dns steps: only workload identity clients resolve the authority's name")
	}
	u, err := url.Parse(wi.authorityHost)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("the stack's authority host %q has no host name to fault (%v)", wi.authorityHost, err)
	}
	if c.stack.Images.FakeIMDS == "" {
		return fmt.Errorf("the stack in %s records no fakeimds image, which runs the DNS resolver; redeploy it with `idharness run --keep-cluster`", c.stack.Namespace)
	}
	pods := c.kube.CoreV1().Pods(c.ns)
	pod := dnsfault.Pod(dnsfault.PodSpec{Name: dnsResolverPod, Namespace: c.ns, Node: c.node, Image: c.stack.Images.FakeIMDS, Labels: fixtures.Labels})
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the DNS resolver's pod %s/%s: %w", c.ns, dnsResolverPod, err)
	}
	ip, err := c.waitResolver(ctx)
	if err != nil {
		return err
	}
	d := &dnsRun{ctl: dnsfault.NewControl(resolverPod{kube: c.kube, ns: c.ns, name: dnsResolverPod}), host: strings.ToLower(u.Hostname()), pod: c.ns + "/" + dnsResolverPod}
	c.r.kube.dns = d
	rc, err := d.ctl.Ready(ctx)
	if err != nil {
		return err
	}
	if len(rc.Search) == 0 {
		return fmt.Errorf("the DNS resolver's pod %s has no search list in its resolv.conf, so the run's pods could not resolve the cluster's short names through it", d.pod)
	}
	d.policy, d.config = dnsfault.DNSConfig(ip, rc)
	c.r.printf("dns: resolver %s (%s) serves the run's pods (search %s); it forwards to the cluster's DNS except during the dns steps, which fault %s",
		d.pod, ip, strings.Join(rc.Search, " "), d.host)
	return nil
}

// waitResolver waits until the resolver's pod is ready and returns its
// address, or says what holds it up.
func (c *clusterRun) waitResolver(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsReady)
	defer cancel()
	status := "not created"
	for {
		p, err := c.kube.CoreV1().Pods(c.ns).Get(ctx, dnsResolverPod, metav1.GetOptions{})
		if err == nil {
			status = string(p.Status.Phase)
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil {
					status = w.Reason + ": " + w.Message
				}
				if t := cs.State.Terminated; t != nil {
					return "", fmt.Errorf("the DNS resolver's pod %s/%s ended (%s, exit %d): look at kubectl -n %s logs %s", c.ns, dnsResolverPod, t.Reason, t.ExitCode, c.ns, dnsResolverPod)
				}
			}
			if podReady(*p) && p.Status.PodIP != "" {
				return p.Status.PodIP, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the DNS resolver's pod %s/%s is not ready after %v (%s): look at kubectl -n %s describe pod %s", c.ns, dnsResolverPod, dnsReady, status, c.ns, dnsResolverPod)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// resolverPod is the resolver's pod through the API server: the run
// writes its faults by patching the pod (pods patch) and reads the
// resolver's events from its log (pods/log get).
type resolverPod struct {
	kube     kubernetes.Interface
	ns, name string
}

func (p resolverPod) Patch(ctx context.Context, patch []byte) error {
	_, err := p.kube.CoreV1().Pods(p.ns).Patch(ctx, p.name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (p resolverPod) Log(ctx context.Context) ([]byte, error) {
	return p.kube.CoreV1().Pods(p.ns).GetLogs(p.name, &corev1.PodLogOptions{Container: dnsfault.Container}).DoRaw(ctx)
}
