package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// readinessPodName names the dry-run pod WaitWebhookCalls admits.
const readinessPodName = "idharness-webhook-readiness"

// WaitWebhookCalls waits until the API server's calls reach the pod
// webhooks served by Service ns/service. A ready endpoint is not enough:
// the API server dials the Service's ClusterIP, which kube-proxy on its
// node programs some time after the EndpointSlice is published, and until
// then a webhook with failurePolicy Fail refuses every pod it selects
// ("failed calling webhook ... connection refused"). So for each mutating
// or validating webhook of that Service whose rules cover pod creation, it
// creates a pod the webhook selects, in a namespace it selects, with
// dryRun=All (nothing is stored, and the webhook is called: it must
// declare sideEffects None or NoneOnDryRun), until the API server either
// admits the pod or the webhook itself denies it. A webhook it cannot
// exercise (failurePolicy Ignore, no namespace it selects) is logged and passed
// over: the endpoint wait stays its only check.
func (c *Client) WaitWebhookCalls(ctx context.Context, ns, service string) error {
	hooks, err := c.podWebhooks(ctx, ns, service)
	if err != nil {
		return err
	}
	nss, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces for the webhook's dry run: %w", err)
	}
	for _, h := range hooks {
		target, why := dryRunTarget(h, nss.Items)
		if target == "" {
			c.log.Info("webhook not exercised before the specs", "webhook", h.name, "why", why)
			continue
		}
		pod := dryRunPod(target, h.objectSelector)
		err := c.poll(ctx, "webhook "+h.name+" called by the API server", func(ctx context.Context) (bool, string, error) {
			_, err := c.Kube.CoreV1().Pods(target).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
			ok, msg := webhookReached(h.name, err)
			return ok, msg, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// podWebhook is one webhook of a configuration that admits pod creation.
type podWebhook struct {
	name              string
	failurePolicy     admissionregistrationv1.FailurePolicyType
	namespaceSelector *metav1.LabelSelector
	objectSelector    *metav1.LabelSelector
}

// podWebhooks lists the mutating and validating webhooks served by
// ns/service whose rules cover creating pods.
func (c *Client) podWebhooks(ctx context.Context, ns, service string) ([]podWebhook, error) {
	var out []podWebhook
	serves := func(cc admissionregistrationv1.WebhookClientConfig) bool {
		return cc.Service != nil && cc.Service.Namespace == ns && cc.Service.Name == service
	}
	mut, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list mutating webhook configurations: %w", err)
	}
	for _, cfg := range mut.Items {
		for _, w := range cfg.Webhooks {
			if serves(w.ClientConfig) && createsPods(w.Rules) {
				out = append(out, podWebhook{w.Name, policyOf(w.FailurePolicy), w.NamespaceSelector, w.ObjectSelector})
			}
		}
	}
	val, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list validating webhook configurations: %w", err)
	}
	for _, cfg := range val.Items {
		for _, w := range cfg.Webhooks {
			if serves(w.ClientConfig) && createsPods(w.Rules) {
				out = append(out, podWebhook{w.Name, policyOf(w.FailurePolicy), w.NamespaceSelector, w.ObjectSelector})
			}
		}
	}
	return out, nil
}

// policyOf is a webhook's failure policy, Fail when unset (the API's
// default).
func policyOf(p *admissionregistrationv1.FailurePolicyType) admissionregistrationv1.FailurePolicyType {
	if p == nil {
		return admissionregistrationv1.Fail
	}
	return *p
}

// createsPods reports whether rules match the creation of a core v1 pod.
func createsPods(rules []admissionregistrationv1.RuleWithOperations) bool {
	has := func(list []string, want string) bool {
		for _, v := range list {
			if v == want || v == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		create := false
		for _, op := range r.Operations {
			if op == admissionregistrationv1.Create || op == admissionregistrationv1.OperationAll {
				create = true
			}
		}
		if create && has(r.APIGroups, "") && has(r.APIVersions, "v1") && has(r.Resources, "pods") {
			return true
		}
	}
	return false
}

// dryRunTarget picks the namespace the dry-run pod goes to: the first, by
// name, that the webhook's namespace selector selects. It prefers
// "default", which every cluster has and no spec changes.
func dryRunTarget(h podWebhook, nss []corev1.Namespace) (string, string) {
	if h.failurePolicy == admissionregistrationv1.Ignore {
		// The API server admits the pod whether or not the call reached
		// the webhook: the answer tells nothing.
		return "", "its failurePolicy is Ignore"
	}
	sel := labels.Everything()
	if h.namespaceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(h.namespaceSelector)
		if err != nil {
			return "", "its namespaceSelector does not parse: " + err.Error()
		}
		sel = s
	}
	var names []string
	for _, n := range nss {
		if n.Status.Phase == corev1.NamespaceTerminating || !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		if n.Name == metav1.NamespaceDefault {
			return n.Name, ""
		}
		names = append(names, n.Name)
	}
	if len(names) == 0 {
		return "", "no namespace of the cluster matches its namespaceSelector"
	}
	sort.Strings(names)
	return names[0], ""
}

// dryRunPod is a pod the object selector selects: its matchLabels, the
// first value of each In expression and a value for each Exists one.
func dryRunPod(ns string, sel *metav1.LabelSelector) *corev1.Pod {
	l := map[string]string{"app.kubernetes.io/part-of": "idharness"}
	if sel != nil {
		for k, v := range sel.MatchLabels {
			l[k] = v
		}
		for _, e := range sel.MatchExpressions {
			switch {
			case e.Operator == metav1.LabelSelectorOpIn && len(e.Values) > 0:
				l[e.Key] = e.Values[0]
			case e.Operator == metav1.LabelSelectorOpExists:
				l[e.Key] = "true"
			}
		}
	}
	no := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: readinessPodName, Namespace: ns, Labels: l},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			// Never pulled: a dry run stores and starts nothing.
			Containers: []corev1.Container{{Name: "readiness", Image: "idharness.local/webhook-readiness:dry-run"}},
		},
	}
}

// webhookReached classifies the dry-run's answer: admitted, or denied by
// the webhook itself, means the API server reached it; a failed call
// (refused, timed out, a TLS error) or any other refusal (the namespace's
// service account not yet made, say) means not yet, and says why.
func webhookReached(name string, err error) (bool, string) {
	if err == nil {
		return true, "admitted"
	}
	msg := err.Error()
	if strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", name)) {
		return true, "denied by the webhook"
	}
	return false, msg
}
