package deploy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// refused is the API server's answer while it cannot reach a webhook
// with failurePolicy Fail (as CI printed it at 9aa0727).
const refused = `Internal error occurred: failed calling webhook "wi.idharness.io": failed to call webhook: Post "https://wiwebhook.idharness-system.svc:443/mutate-v1-pod?timeout=5s": dial tcp 10.96.110.106:443: connect: connection refused`

// TestWebhookReached: admitted or denied by the webhook itself is
// reached; a failed call, another webhook's denial or any other error is
// not yet.
func TestWebhookReached(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"admitted", nil, true},
		{"denied by it", errors.New(`admission webhook "wi.idharness.io" denied the request: service account "x" of the pod was not found`), true},
		{"call refused", errors.New(refused), false},
		{"call timed out", errors.New(`Internal error occurred: failed calling webhook "wi.idharness.io": failed to call webhook: context deadline exceeded`), false},
		{"denied by another webhook", errors.New(`admission webhook "other.example.com" denied the request: no`), false},
		{"service account not yet made", errors.New(`pods "idharness-webhook-readiness" is forbidden: error looking up service account default/default: serviceaccount "default" not found`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := webhookReached("wi.idharness.io", tc.err)
			if got != tc.want || msg == "" {
				t.Errorf("webhookReached(%v) = %v, %q; want %v with a status", tc.err, got, msg, tc.want)
			}
		})
	}
}

// TestCreatesPods: only rules that cover creating core v1 pods count.
func TestCreatesPods(t *testing.T) {
	rule := func(ops []admissionregistrationv1.OperationType, groups, versions, resources []string) []admissionregistrationv1.RuleWithOperations {
		return []admissionregistrationv1.RuleWithOperations{{Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources}}}
	}
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	for _, tc := range []struct {
		name  string
		rules []admissionregistrationv1.RuleWithOperations
		want  bool
	}{
		{"pods create", rule(create, []string{""}, []string{"v1"}, []string{"pods"}), true},
		{"wildcards", rule([]admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}, []string{"*"}, []string{"*"}, []string{"*"}), true},
		{"update only", rule([]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, []string{""}, []string{"v1"}, []string{"pods"}), false},
		{"service accounts", rule(create, []string{""}, []string{"v1"}, []string{"serviceaccounts"}), false},
		{"another group", rule(create, []string{"apps"}, []string{"v1"}, []string{"pods"}), false},
		{"pods subresource", rule(create, []string{""}, []string{"v1"}, []string{"pods/exec"}), false},
		{"no rules", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := createsPods(tc.rules); got != tc.want {
				t.Errorf("createsPods = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDryRunTarget: the namespace is one the webhook selects, "default"
// first; none selected, a bad selector or failurePolicy Ignore means the
// webhook is not exercised.
func TestDryRunTarget(t *testing.T) {
	ns := func(name string, l map[string]string) corev1.Namespace {
		if l == nil {
			l = map[string]string{}
		}
		l["kubernetes.io/metadata.name"] = name
		return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	all := []corev1.Namespace{ns("kube-system", nil), ns("idharness-system", nil), ns("default", nil), ns("b-team", map[string]string{"team": "b"}), ns("a-team", map[string]string{"team": "a"})}
	// The reference webhook's selector (fixtures/sut/reference-webhook).
	reference := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "idharness-system"}},
		{Key: "idharness.io/own-webhook", Operator: metav1.LabelSelectorOpDoesNotExist},
	}}
	ignore := admissionregistrationv1.Ignore
	for _, tc := range []struct {
		name string
		hook podWebhook
		nss  []corev1.Namespace
		want string
	}{
		{"no selector", podWebhook{failurePolicy: admissionregistrationv1.Fail}, all, "default"},
		{"reference selector", podWebhook{failurePolicy: admissionregistrationv1.Fail, namespaceSelector: reference}, all, "default"},
		{"labelled teams only", podWebhook{failurePolicy: admissionregistrationv1.Fail, namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}}, all, "a-team"},
		{"none selected", podWebhook{failurePolicy: admissionregistrationv1.Fail, namespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "c"}}}, all, ""},
		{"bad selector", podWebhook{failurePolicy: admissionregistrationv1.Fail, namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}}, all, ""},
		{"terminating default", podWebhook{failurePolicy: admissionregistrationv1.Fail}, []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}, ns("z", nil)}, "z"},
		{"failurePolicy Ignore", podWebhook{failurePolicy: ignore}, all, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := dryRunTarget(tc.hook, tc.nss)
			if got != tc.want {
				t.Errorf("dryRunTarget = %q (%s), want %q", got, why, tc.want)
			}
			if got == "" && why == "" {
				t.Errorf("no namespace and no reason")
			}
		})
	}
}

// TestDryRunPodSelected: the dry-run pod carries labels the webhook's
// object selector selects.
func TestDryRunPodSelected(t *testing.T) {
	for _, sel := range []*metav1.LabelSelector{
		nil,
		{MatchLabels: map[string]string{"azure.workload.identity/use": "true"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}},
			{Key: "wi", Operator: metav1.LabelSelectorOpExists},
			{Key: "skip", Operator: metav1.LabelSelectorOpDoesNotExist},
			{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"prod"}},
		}},
	} {
		pod := dryRunPod("default", sel)
		s := labels.Everything()
		if sel != nil {
			var err error
			if s, err = metav1.LabelSelectorAsSelector(sel); err != nil {
				t.Fatal(err)
			}
		}
		if !s.Matches(labels.Set(pod.Labels)) || pod.Namespace != "default" {
			t.Errorf("pod %s/%v not selected by %v", pod.Namespace, pod.Labels, sel)
		}
	}
}

// TestWaitWebhookCalls: the wait dry-runs a pod against each Fail
// webhook of the Service until the API server reaches it, and goes on
// past webhooks of other Services or other resources.
func TestWaitWebhookCalls(t *testing.T) {
	fail := admissionregistrationv1.Fail
	hook := func(name, service string, resources ...string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:          name,
			FailurePolicy: &fail,
			ClientConfig:  admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "idharness-system", Name: service}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: resources},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"azure.workload.identity/use": "true"}},
		}
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "idharness-wiwebhook"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook("wi.idharness.io", "wiwebhook", "pods"), hook("other.example.com", "other", "pods"), hook("sa.idharness.io", "wiwebhook", "serviceaccounts")},
	}
	for _, tc := range []struct {
		name     string
		refusals int
		timeout  time.Duration
		wantErr  bool
	}{
		{"reached at once", 0, 10 * time.Second, false},
		{"refused twice", 2, 10 * time.Second, false},
		{"never reached", 1000, 1500 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewClientset(cfg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
			var creates int
			kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				ca := a.(k8stesting.CreateActionImpl)
				pod := ca.GetObject().(*corev1.Pod)
				if len(ca.CreateOptions.DryRun) != 1 || ca.CreateOptions.DryRun[0] != metav1.DryRunAll {
					t.Errorf("pod created without dryRun=All: %+v", ca.CreateOptions)
				}
				if pod.Labels["azure.workload.identity/use"] != "true" || ca.GetNamespace() != "default" {
					t.Errorf("dry-run pod %s/%v not selected by the webhook", ca.GetNamespace(), pod.Labels)
				}
				creates++
				if creates <= tc.refusals {
					return true, nil, errors.New(refused)
				}
				return true, pod, nil
			})
			c := &Client{Kube: kube, log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: tc.timeout}
			err := c.WaitWebhookCalls(context.Background(), "idharness-system", "wiwebhook")
			if (err != nil) != tc.wantErr {
				t.Fatalf("WaitWebhookCalls: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say the last status", err)
			}
			// One pod webhook of this Service: one dry run per attempt.
			if !tc.wantErr && creates != tc.refusals+1 {
				t.Errorf("%d dry runs, want %d", creates, tc.refusals+1)
			}
		})
	}
}
