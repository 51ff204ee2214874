// Package wiwebhook is idharness's reference workload identity webhook: a
// mutating admission webhook that gives pods labelled
// azure.workload.identity/use=true what Azure's workload identity webhook
// gives them — AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE
// and AZURE_AUTHORITY_HOST, and a projected service account token with the
// audience the authority expects — so that suites can test clients and
// authorities against known-good mutation, and vendors can compare their
// webhook with it. The mutation itself (Mutate) is a pure function of the
// pod, its service account and the webhook's settings; Handler wraps it in
// the AdmissionReview protocol.
package wiwebhook

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// Where the webhook mounts the projected token. These are this webhook's
// choices, not the contract (see pkg/api/workloadidentity): clients find
// the file through AZURE_FEDERATED_TOKEN_FILE, and azure-workload-identity's
// own webhook has used other names over time. They follow the file path
// of azure-workload-identity's current webhook.
const (
	// TokenVolume names the projected volume and its mounts.
	TokenVolume = "azure-identity-token"
	// TokenPath is the token's file name inside the volume.
	TokenPath = "azure-identity-token"
	// TokenMountPath is where the volume is mounted in containers.
	TokenMountPath = "/var/run/secrets/azure/wi/token"
	// TokenFile is AZURE_FEDERATED_TOKEN_FILE.
	TokenFile = TokenMountPath + "/" + TokenPath
)

// Config are the webhook's settings, the same for every pod.
type Config struct {
	// TenantID is AZURE_TENANT_ID for service accounts that name none.
	TenantID string
	// AuthorityHost is AZURE_AUTHORITY_HOST, e.g. https://login.microsoftonline.com/.
	AuthorityHost string
	// ProxyImage is the image of the proxy sidecar (cmd/wiwebhook); empty
	// refuses pods that ask for it.
	ProxyImage string
	// ProxyCAPEM is given to the proxy sidecar (ProxyCAEnv) to trust the
	// authority besides the system roots.
	ProxyCAPEM string
}

// Validate reports settings the webhook cannot work with.
func (c Config) Validate() error {
	if c.TenantID == "" {
		return fmt.Errorf("wiwebhook: the tenant ID is empty; set --tenant-id")
	}
	if !strings.HasPrefix(c.AuthorityHost, "https://") {
		return fmt.Errorf("wiwebhook: authority host %q: want an https:// URL (MSAL refuses others); set --authority-host", c.AuthorityHost)
	}
	return nil
}

// DeniedError is a pod the webhook refuses to admit, with the reason the
// user sees in kubectl's error.
type DeniedError struct{ Reason string }

// Error returns the reason.
func (e *DeniedError) Error() string { return e.Reason }

// Wants reports whether pod asks for workload identity.
func Wants(pod *corev1.Pod) bool { return pod.Labels[workloadidentity.UseLabel] == "true" }

// Mutate returns pod as the webhook admits it, given its service account
// (nil: the service account does not exist). A pod that does not ask for
// workload identity is returned unchanged. A *DeniedError means the pod
// must be refused. pod itself is never modified. Mutating an already
// mutated pod changes nothing, so reinvocation is harmless.
func Mutate(pod *corev1.Pod, sa *corev1.ServiceAccount, cfg Config) (*corev1.Pod, error) {
	if !Wants(pod) {
		return pod, nil
	}
	if sa == nil {
		return nil, &DeniedError{Reason: fmt.Sprintf("service account %q of the pod was not found: create it (annotated with %s) before the pod", serviceAccountName(pod), workloadidentity.ClientIDAnnotation)}
	}
	exp, err := tokenExpiration(pod, sa)
	if err != nil {
		return nil, err
	}
	tenant := cfg.TenantID
	if t := sa.Annotations[workloadidentity.TenantIDAnnotation]; t != "" {
		tenant = t
	}
	env := []corev1.EnvVar{}
	// Without a client ID on the service account the application must
	// name the identity itself, so only the variable is left out.
	if id := sa.Annotations[workloadidentity.ClientIDAnnotation]; id != "" {
		env = append(env, corev1.EnvVar{Name: workloadidentity.EnvClientID, Value: id})
	}
	env = append(env,
		corev1.EnvVar{Name: workloadidentity.EnvTenantID, Value: tenant},
		corev1.EnvVar{Name: workloadidentity.EnvTokenFile, Value: TokenFile},
		corev1.EnvVar{Name: workloadidentity.EnvAuthorityHost, Value: cfg.AuthorityHost},
	)
	skip := skipContainers(pod)
	out := pod.DeepCopy()
	if pod.Annotations[workloadidentity.ProxyAnnotation] == "true" && !hasContainer(out.Spec.InitContainers, ProxyContainer) {
		if pod.Spec.HostNetwork {
			// The sidecar would take the metadata address over for the
			// whole node.
			return nil, &DeniedError{Reason: fmt.Sprintf("the proxy sidecar (%s) cannot serve a pod on the host network: drop the annotation or hostNetwork", workloadidentity.ProxyAnnotation)}
		}
		if cfg.ProxyImage == "" {
			return nil, &DeniedError{Reason: fmt.Sprintf("the pod asks for the proxy sidecar (%s) but the webhook has no proxy image: start it with --proxy-image", workloadidentity.ProxyAnnotation)}
		}
		out.Spec.InitContainers = append([]corev1.Container{proxyContainer(cfg)}, out.Spec.InitContainers...)
	}
	for i := range out.Spec.InitContainers {
		if !skip[out.Spec.InitContainers[i].Name] {
			injectContainer(&out.Spec.InitContainers[i], env)
		}
	}
	for i := range out.Spec.Containers {
		if !skip[out.Spec.Containers[i].Name] {
			injectContainer(&out.Spec.Containers[i], env)
		}
	}
	if !hasVolume(out.Spec.Volumes, TokenVolume) {
		mode := int32(0o644)
		out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{
			Name: TokenVolume,
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: &mode,
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: workloadidentity.TokenAudience, ExpirationSeconds: &exp, Path: TokenPath,
				}}},
			}},
		})
	}
	return out, nil
}

// serviceAccountName is the pod's service account as the API server
// defaults it.
func serviceAccountName(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return "default"
	}
	return pod.Spec.ServiceAccountName
}

// tokenExpiration reads the token lifetime from the pod's annotation,
// which wins, or the service account's.
func tokenExpiration(pod *corev1.Pod, sa *corev1.ServiceAccount) (int64, error) {
	v, where := pod.Annotations[workloadidentity.TokenExpirationAnnotation], "pod"
	if v == "" {
		v, where = sa.Annotations[workloadidentity.TokenExpirationAnnotation], "service account "+sa.Name
	}
	if v == "" {
		return workloadidentity.DefaultTokenExpiration, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < workloadidentity.MinTokenExpiration || n > workloadidentity.MaxTokenExpiration {
		return 0, &DeniedError{Reason: fmt.Sprintf("%s annotation %s=%q: want whole seconds from %d to %d", where, workloadidentity.TokenExpirationAnnotation, v, workloadidentity.MinTokenExpiration, workloadidentity.MaxTokenExpiration)}
	}
	return n, nil
}

func skipContainers(pod *corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, n := range strings.Split(pod.Annotations[workloadidentity.SkipContainersAnnotation], ";") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	return out
}

// injectContainer adds the variables the container does not set itself
// (an application's own AZURE_AUTHORITY_HOST, say, wins) and the token
// mount.
func injectContainer(c *corev1.Container, env []corev1.EnvVar) {
	for _, e := range env {
		if !hasEnv(c.Env, e.Name) {
			c.Env = append(c.Env, e)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == TokenVolume || m.MountPath == TokenMountPath {
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TokenVolume, MountPath: TokenMountPath, ReadOnly: true})
}

// proxyContainer is the proxy sidecar: a native sidecar, so it runs
// before the application and a finished pod still completes. It runs as
// root with NET_ADMIN to put the metadata address on the pod's loopback
// and bind port 80 there; the variables and token are added as for any
// container.
func proxyContainer(cfg Config) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	root, no := int64(0), false
	c := corev1.Container{
		Name: ProxyContainer, Image: cfg.ProxyImage, ImagePullPolicy: corev1.PullIfNotPresent, RestartPolicy: &always,
		Args: []string{"proxy", fmt.Sprintf("--health-addr=:%d", ProxyHealthPort)},
		SecurityContext: &corev1.SecurityContext{RunAsUser: &root, RunAsNonRoot: &no,
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_BIND_SERVICE"}}},
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(ProxyHealthPort)}},
			PeriodSeconds: 1, FailureThreshold: 60,
		},
	}
	if cfg.ProxyCAPEM != "" {
		c.Env = append(c.Env, corev1.EnvVar{Name: ProxyCAEnv, Value: cfg.ProxyCAPEM})
	}
	return c
}

func hasContainer(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

func hasVolume(vols []corev1.Volume, name string) bool {
	for _, v := range vols {
		if v.Name == name {
			return true
		}
	}
	return false
}
