package conformance

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// wiInjected must find the token wherever a webhook mounts it, so that
// the webhook specs judge the contract (AZURE_FEDERATED_TOKEN_FILE names
// the projected token) and not one webhook's volume layout.
func TestWIInjectedFindsTheTokenWhereverItIsMounted(t *testing.T) {
	pod := func(vol, path, audience string, mounts ...corev1.VolumeMount) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", VolumeMounts: mounts,
				Env: []corev1.EnvVar{{Name: workloadidentity.EnvClientID, Value: "c"}, {Name: "OTHER", Value: "x"}}}},
			Volumes: []corev1.Volume{{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, Path: path}}},
			}}}},
		}}
	}
	aud := workloadidentity.TokenAudience
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"the reference webhook's layout",
			pod("azure-identity-token", "azure-identity-token", aud, corev1.VolumeMount{Name: "azure-identity-token", MountPath: "/var/run/secrets/azure/wi/token"}),
			"/var/run/secrets/azure/wi/token/azure-identity-token"},
		{"azure-workload-identity's current layout",
			pod("azure-workload-identity-reserved-0a1b", "token/azure-identity-token", aud, corev1.VolumeMount{Name: "azure-workload-identity-reserved-0a1b", MountPath: "/var/run/secrets/azure/wi"}),
			"/var/run/secrets/azure/wi/token/azure-identity-token"},
		{"azure-workload-identity's documented layout",
			pod("azure-identity-token", "azure-identity-token", aud, corev1.VolumeMount{Name: "azure-identity-token", MountPath: "/var/run/secrets/azure/tokens"}),
			"/var/run/secrets/azure/tokens/azure-identity-token"},
		{"a subPath mount of the file",
			pod("t", "azure-identity-token", aud, corev1.VolumeMount{Name: "t", MountPath: "/token", SubPath: "azure-identity-token"}),
			"/token"},
		{"another audience is not the workload identity token",
			pod("t", "azure-identity-token", "api://other", corev1.VolumeMount{Name: "t", MountPath: "/token"}),
			""},
		{"the volume exists but the container does not mount it",
			pod("t", "azure-identity-token", aud, corev1.VolumeMount{Name: "other", MountPath: "/other"}),
			""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, file := wiInjected(tc.pod, tc.pod.Spec.Containers[0])
			if file != tc.want {
				t.Errorf("token file %q, want %q", file, tc.want)
			}
			if len(env) != 1 || env[workloadidentity.EnvClientID] != "c" {
				t.Errorf("variables %v, want only %s", env, workloadidentity.EnvClientID)
			}
		})
	}
}
