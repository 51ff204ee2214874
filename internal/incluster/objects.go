// Package incluster runs the suites as a Job inside the target cluster
// (`idharness run --in-cluster`): the runner image (this program on an
// empty root), a ServiceAccount with the least privilege the suites use,
// the Job that runs `idharness run-job` against the stack deployed in the
// cluster, and the starting side that waits for it, shows its progress
// and copies its report out of its log.
package incluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/images"
	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

// ImageKey is the runner image's key among the run's images
// (fixtures.Images.Extra), under which it is loaded or pushed with them.
const ImageKey = "idharness"

// ImageRepository is the runner image's name; its tag is the program's
// content hash, so that a rebuilt idharness gets a new image.
const ImageRepository = "idharness.local/idharness"

// ServiceAccount is the runner's ServiceAccount (and its Role's and
// RoleBinding's name) in the stack's namespace.
const ServiceAccount = "idharness-runner"

// JobCommand is the (hidden) command the runner's container runs.
const JobCommand = "run-job"

// UID is the runner's user: the nonroot user of images.MinimalRoot.
const UID = 65532

// Labels mark the runner's objects.
var Labels = map[string]string{"app.kubernetes.io/part-of": "idharness", "app.kubernetes.io/component": "runner"}

// ClusterRoleName is the runner's ClusterRole (and ClusterRoleBinding)
// for the stack in namespace ns: one per stack, so that two stacks'
// runners do not share a binding.
func ClusterRoleName(ns string) string { return "idharness-runner-" + ns }

// Image builds the runner image from exe, a statically linked idharness:
// the program on images.MinimalRoot, run as nonroot.
func Image(exe string) (images.Built, error) {
	if err := images.CheckStatic(exe, "runner image"); err != nil {
		return images.Built{}, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return images.Built{}, fmt.Errorf("runner image: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return images.Built{}, fmt.Errorf("runner image: read %s: %w", exe, err)
	}
	root, err := images.Layer(images.MinimalRoot())
	if err != nil {
		return images.Built{}, err
	}
	app, err := images.Layer([]images.File{{Path: "/usr/local/bin/idharness", Source: exe, Mode: 0o755}})
	if err != nil {
		return images.Built{}, err
	}
	img, err := images.Assemble(images.Spec{
		Layers:     []v1.Layer{root, app},
		Entrypoint: []string{"/usr/local/bin/idharness"},
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/tmp",
		Labels:     map[string]string{images.LabelManaged: "true", images.LabelSource: "idharness " + JobCommand},
	})
	if err != nil {
		return images.Built{}, err
	}
	return images.Built{Name: ImageRepository + ":" + hex.EncodeToString(h.Sum(nil))[:12], Image: img, Binary: exe}, nil
}

// ClusterRules are what the suites do outside the stack's namespace:
// every spec makes namespaces of its own and runs its probe pods there.
// Each rule names the code that needs it; TestRulesCoverTheSuites checks
// the list against the suites' calls.
func ClusterRules(ns string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		// framework.newNamespace, the scenarios' run namespaces; the pod
		// identity specs label theirs (framework/podidentity.go).
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "delete", "patch"}},
		// stack.Workers, deploy.NodeNames, conformance/escape.go.
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
		// Probe pods (framework/probe.go, scenario/incluster.go); the pod
		// identity specs relabel one (patch); the workload identity specs
		// create one with dry-run; a scenario run starts its probes and
		// the dns step sets its faults by writing an annotation of the
		// run's pods (patch: scenario/incluster.go setStart,
		// scenario/dns.go resolverPod).
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "create", "patch"}},
		// The probes' verdicts are their logs, and the run's DNS resolver
		// reports the faults it applied and their hits on its log
		// (scenario/dns.go).
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		// The workload identity specs' client configuration and service
		// accounts (conformance/workloadidentity.go).
		{APIGroups: []string{""}, Resources: []string{"configmaps", "serviceaccounts"}, Verbs: []string{"create"}},
		// Pod identity bindings and exceptions (internal/podidentity,
		// scenario unbind steps, conformance/podidentity.go).
		{APIGroups: []string{podidapi.Group}, Resources: []string{podidapi.AzureIdentityGVR.Resource, podidapi.AzureIdentityBindingGVR.Resource, podidapi.AzurePodIdentityExceptionGVR.Resource}, Verbs: []string{"create", "delete"}},
		// The webhook-down spec sets the stack's webhook's failurePolicy
		// (stack.WorkloadIdentity.SetFailurePolicy), and only that one.
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{"idharness-wiwebhook-" + ns}, Verbs: []string{"patch"}},
		// The workload identity specs read the service account issuer
		// (most clusters grant it to every service account already).
		{NonResourceURLs: []string{"/.well-known/openid-configuration"}, Verbs: []string{"get"}},
	}
}

// NamespaceRules are what the suites do in the stack's namespace.
func NamespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		// stack.Connect: the run's record, fakeimds's configuration, the
		// workload identity authority's CA.
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		// stack.Connect: the control token of fakeimds's control API,
		// and no other secret (the signing key stays out of reach).
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{fixtures.ControlTokenSecretName}, Verbs: []string{"get"}},
		// The control APIs of fakeimds and the authority, through the API
		// server's pod proxy (stack.controlClient): every method the
		// client sends.
		{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Verbs: []string{"get", "create", "update", "patch", "delete"}},
		// The restart step deletes an agent's pod.
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}},
		// Specs look for the agents' DaemonSets; the webhook-down spec
		// scales the webhook and waits for it.
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
	}
}

// RBAC returns the runner's ServiceAccount, Role, RoleBinding,
// ClusterRole and ClusterRoleBinding for the stack in ns.
func RBAC(ns string) (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	meta := func(name, ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: Labels}
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccount, Namespace: ns}}
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(ServiceAccount, ns)}
	role := &rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: meta(ServiceAccount, ns), Rules: NamespaceRules()}
	rb := &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: meta(ServiceAccount, ns),
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ServiceAccount}, Subjects: subject}
	cr := &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: meta(ClusterRoleName(ns), ""), Rules: ClusterRules(ns)}
	crb := &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}, ObjectMeta: meta(ClusterRoleName(ns), ""),
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName(ns)}, Subjects: subject}
	return sa, role, rb, cr, crb
}

// JobOptions describe the runner's Job.
type JobOptions struct {
	// Namespace is the stack's namespace, where the Job runs.
	Namespace string
	// Image is the runner image (Image, as loaded or pushed).
	Image string
	// Args are `idharness run-job`'s flags (JobArgs).
	Args []string
	// Deadline bounds the Job (activeDeadlineSeconds); 0 is two hours.
	DeadlineSeconds int64
}

// JobArgs are the flags of `idharness run-job` for a run of suite with
// the (already composed) label filter, focus and seed against the stack
// in ns.
func JobArgs(ns, suite, labelFilter, focus string, seed int64) []string {
	args := []string{"--idh-namespace", ns, "--suite", suite, "--label-filter", labelFilter, "--seed", fmt.Sprint(seed)}
	if focus != "" {
		args = append(args, "--focus", focus)
	}
	return args
}

// PodSpec is the runner's pod: this program as nonroot with no
// capabilities, on any node (the control plane's too, so that the specs'
// workers stay theirs), never restarted (a retried run would report
// twice).
func PodSpec(image string, args []string) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName: ServiceAccount,
		RestartPolicy:      corev1.RestartPolicyNever,
		Tolerations:        []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 100, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.NodeSelectorOpExists}}},
		}}}},
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ref(true), RunAsUser: ref(int64(UID)), RunAsGroup: ref(int64(UID)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name:            "runner",
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            append([]string{JobCommand}, args...),
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ref(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		}},
	}
}

// Job returns the runner's Job; its name is generated, so that runs do
// not wait for each other's Jobs to go.
func Job(o JobOptions) *batchv1.Job {
	if o.DeadlineSeconds == 0 {
		o.DeadlineSeconds = 2 * 3600
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "idharness-runner-", Namespace: o.Namespace, Labels: Labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ref(int32(0)),
			ActiveDeadlineSeconds: ref(o.DeadlineSeconds),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: Labels},
				Spec:       PodSpec(o.Image, o.Args),
			},
		},
	}
}

// ref returns a pointer to v, for the API's optional fields.
func ref[T any](v T) *T { return &v }
