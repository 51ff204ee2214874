package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// WorkloadIdentitySetup, in a cluster run, gives the groups that set
// workloadIdentity: true a service account of the run's namespace whose
// federated credential the stack's authority trusts for one setup
// identity, and a service account token file of a lifetime the scenario
// chooses.
type WorkloadIdentitySetup struct {
	// Identity names the setup identity the service account stands for:
	// the run attaches it to the stack's authority with a federated
	// credential for the account, and detaches it at the end. Use an
	// identity of the scenario's own (its own client ID): the authority
	// serves every spec playing beside it.
	Identity string `json:"identity"`
	// ExpirationSeconds is the lifetime of the pods' service account
	// tokens: 600 (the API server's minimum) to 86400. The pods mount a
	// token of their own and point AZURE_FEDERATED_TOKEN_FILE at it (a
	// variable the webhook keeps), because the webhook's own projection
	// takes 3600 s at the least.
	ExpirationSeconds int64 `json:"expirationSeconds"`
	// TokenFile says who writes that file: projected (the default), the
	// kubelet, from a projected service account token it rotates at 80 %
	// of its lifetime; secret, the run, from a token it requests (the
	// TokenRequest API, as the kubelet does) and puts in a Secret the
	// pods mount, so that a rotateToken step can replace it at once. The
	// kubelet swaps a Secret volume's file exactly as it swaps a
	// projected token's (a new ..data directory and one rename).
	TokenFile string `json:"tokenFile,omitempty"`
}

// The token file sources of setup.workloadIdentity.tokenFile.
const (
	// TokenFileProjected: the kubelet projects and rotates the token.
	TokenFileProjected = "projected"
	// TokenFileSecret: the run writes the token into a Secret volume.
	TokenFileSecret = "secret"
)

// Bounds of setup.workloadIdentity.expirationSeconds: the API server
// refuses a projected token of less than 10 minutes.
const (
	MinWITokenExpiration = 600
	MaxWITokenExpiration = 86400
)

// Names of what a workload identity run creates in its namespace, and
// where its pods find them.
const (
	wiServiceAccount = "idh-wi"
	wiSecret         = "idh-wi-token"
	wiCAConfigMap    = "wi-authority-ca"
	wiCADir          = "/etc/wi-authority-ca"
	wiTokenVolume    = "idh-wi-token"
	wiTokenDir       = "/var/run/secrets/idharness/wi"
	wiTokenKey       = "token"
)

// wiTokenPath is the pods' AZURE_FEDERATED_TOKEN_FILE.
const wiTokenPath = wiTokenDir + "/" + wiTokenKey

// validateWorkloadIdentity checks setup.workloadIdentity and the groups
// that use it.
func (s *Scenario) validateWorkloadIdentity(ids identities) error {
	wi := s.Setup.WorkloadIdentity
	used := slices.ContainsFunc(s.Workload.Clients, func(g ClientGroup) bool { return g.WorkloadIdentity })
	if wi == nil {
		for i, g := range s.Workload.Clients {
			if g.WorkloadIdentity {
				return bad(fmt.Sprintf("workload.clients[%d].workloadIdentity", i), "needs setup.workloadIdentity (the identity its service account stands for, the token's expirationSeconds)")
			}
		}
		return nil
	}
	f := "setup.workloadIdentity"
	if wi.Identity == "" || wi.Identity == "system" {
		return bad(f+".identity", "required: one of setup.identities (a federated credential belongs to a user-assigned identity)")
	}
	if _, ok := ids[wi.Identity]; !ok {
		return bad(f+".identity", "%q is not one of setup.identities", wi.Identity)
	}
	if wi.ExpirationSeconds < MinWITokenExpiration || wi.ExpirationSeconds > MaxWITokenExpiration {
		return bad(f+".expirationSeconds", "%d: want %d (the API server's minimum) to %d", wi.ExpirationSeconds, MinWITokenExpiration, MaxWITokenExpiration)
	}
	switch wi.TokenFile {
	case "", TokenFileProjected, TokenFileSecret:
	default:
		return bad(f+".tokenFile", "want %s (the kubelet projects and rotates the token, the default) or %s (the run writes it, for rotateToken), got %q", TokenFileProjected, TokenFileSecret, wi.TokenFile)
	}
	if !used {
		return bad(f, "no group sets workloadIdentity: true, so the service account would serve nothing")
	}
	for i, g := range s.Workload.Clients {
		gf := fmt.Sprintf("workload.clients[%d]", i)
		if !g.WorkloadIdentity {
			return bad(gf+".workloadIdentity", "the run's pods share one namespace and one service account with setup.workloadIdentity: set workloadIdentity: true on every group, or run the others in a scenario of their own")
		}
		if g.Identity != wi.Identity {
			return bad(gf+".identity", "want %q, the identity of setup.workloadIdentity (the service account's), got %q", wi.Identity, g.Identity)
		}
		if g.PodIdentity || g.UseToken != "" || g.SelectBy != "" {
			return bad(gf, "podIdentity, useToken and selectBy do not apply to workload identity: leave them out")
		}
	}
	return nil
}

// mode returns how group g's clients get tokens: a service account
// token exchanged at the authority, or IMDS.
func (g ClientGroup) mode() string {
	if g.WorkloadIdentity {
		return clients.ModeWorkloadIdentity
	}
	return clients.ModeIMDS
}

// wiRun is a cluster run's workload identity set-up, once made.
type wiRun struct {
	setup WorkloadIdentitySetup
	// authority is the stack's authority's control API.
	authority *client.Client
	// clientID is the identity's, which the authority's rules match.
	clientID string
	// authorityHost is the authority's URL as the webhook gives it to
	// the pods, whose host the dns steps fault.
	authorityHost string
	// secret is set when the run writes the token file itself.
	secret bool
}

// setupWorkloadIdentity prepares the run's namespace for its workload
// identity groups: the authority's CA, the service account and, with
// tokenFile: secret, the first token; then it attaches the identity to
// the authority with a federated credential for the account.
func (c *clusterRun) setupWorkloadIdentity(ctx context.Context, st *stack.Stack) error {
	ws := c.r.s.Setup.WorkloadIdentity
	if ws == nil {
		return nil
	}
	wi, err := st.WorkloadIdentity(ctx)
	if err != nil {
		return fmt.Errorf("setup.workloadIdentity: %w (deploy it with `idharness run --keep-cluster`)", err)
	}
	id, _ := c.r.s.Identity(ws.Identity)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: wiCAConfigMap, Namespace: c.ns, Labels: fixtures.Labels}, Data: map[string]string{"ca.crt": wi.CAPEM}}
	if _, err := c.kube.CoreV1().ConfigMaps(c.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("copy the authority's CA into %s: %w", c.ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: wiServiceAccount, Namespace: c.ns,
		Annotations: map[string]string{workloadidentity.ClientIDAnnotation: id.ClientID}}}
	if _, err := c.kube.CoreV1().ServiceAccounts(c.ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service account %s/%s: %w", c.ns, wiServiceAccount, err)
	}
	run := &wiRun{setup: *ws, authority: wi.Authority, clientID: id.ClientID, authorityHost: wi.AuthorityHost, secret: ws.TokenFile == TokenFileSecret}
	if run.secret {
		if err := writeWIToken(ctx, c.kube, c.ns, ws.ExpirationSeconds, true); err != nil {
			return err
		}
	}
	id.FederatedCredentials = []config.FederatedCredential{{Name: "idh-scenario", Issuer: wi.Issuer, Subject: "system:serviceaccount:" + c.ns + ":" + wiServiceAccount}}
	if err := c.r.s.attachToAuthority(ctx, wi.Authority, id); err != nil {
		return fmt.Errorf("attach %s to the authority with a federated credential for %s/%s: %w", ws.Identity, c.ns, wiServiceAccount, err)
	}
	c.r.kube.wi = run
	// The authority fault rules of this run go there (addAuthorityFault).
	c.r.authority = wi.Authority
	c.r.printf("workload identity: service account %s/%s stands for %s (client %s); its tokens live %ds, written by %s",
		c.ns, wiServiceAccount, ws.Identity, id.ClientID, ws.ExpirationSeconds, map[bool]string{true: "the run (Secret " + wiSecret + ")", false: "the kubelet (projected)"}[run.secret])
	return nil
}

// cleanupWorkloadIdentity detaches the run's identity from the
// authority (the namespace's deletion takes the rest), leaving the
// authority's other identities, which specs beside it use, alone.
func (c *clusterRun) cleanupWorkloadIdentity(ctx context.Context) {
	wi := c.r.kube.wi
	if wi == nil {
		return
	}
	c.r.mu.Lock()
	rules := slices.Clone(c.r.authorityRules)
	c.r.mu.Unlock()
	for _, name := range rules {
		// Most ended with their step; a missing rule is fine.
		_ = wi.authority.RemoveFault(ctx, name)
	}
	if _, err := wi.authority.Detach(ctx, client.Selector{ClientID: wi.clientID}); err != nil {
		c.r.printf("cleanup: could not detach %s from the authority: %v; `idharness run --keep-cluster` redeploys it", wi.setup.Identity, err)
	}
}

// writeWIToken requests a token for the run's service account, as the
// kubelet does for a projected volume (audience api://AzureADTokenExchange),
// and writes it into the Secret the pods mount: created the first time,
// replaced afterwards.
func writeWIToken(ctx context.Context, kube kubernetes.Interface, ns string, seconds int64, create bool) error {
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, wiServiceAccount, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{workloadidentity.TokenAudience}, ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token for %s/%s: %w", ns, wiServiceAccount, err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: wiSecret, Namespace: ns, Labels: fixtures.Labels},
		Data: map[string][]byte{wiTokenKey: []byte(tr.Status.Token)}}
	if create {
		_, err = kube.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{})
	} else {
		_, err = kube.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write the token into Secret %s/%s: %w", ns, wiSecret, err)
	}
	return nil
}

// wiProbeArgs are the probe flags of a workload identity client: the
// authority's CA, and no instance discovery, as for any authority host
// that is not Azure's.
func wiProbeArgs() []string {
	return []string{"--mode=" + probe.ModeWorkloadIdentity, "--ca-file=" + wiCADir + "/ca.crt", "--disable-instance-discovery"}
}

// wiPod makes pod a workload identity pod of the run: its service
// account, the webhook's label, the authority's CA and the token file of
// setup.workloadIdentity, which AZURE_FEDERATED_TOKEN_FILE names.
func wiPod(pod *corev1.Pod, ws WorkloadIdentitySetup) {
	pod.Spec.ServiceAccountName = wiServiceAccount
	pod.Labels[workloadidentity.UseLabel] = "true"
	token := corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
		ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: workloadidentity.TokenAudience, ExpirationSeconds: &ws.ExpirationSeconds, Path: wiTokenKey}}}}}
	if ws.TokenFile == TokenFileSecret {
		token = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: wiSecret}}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes,
		corev1.Volume{Name: wiCAConfigMap, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: wiCAConfigMap}}}},
		corev1.Volume{Name: wiTokenVolume, VolumeSource: token})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts,
		corev1.VolumeMount{Name: wiCAConfigMap, MountPath: wiCADir, ReadOnly: true},
		corev1.VolumeMount{Name: wiTokenVolume, MountPath: wiTokenDir, ReadOnly: true})
	c.Env = append(c.Env, corev1.EnvVar{Name: workloadidentity.EnvTokenFile, Value: wiTokenPath})
}

// attachToAuthority gives the stack's authority id. The authority is one
// for the whole cluster and every run beside this one attaches to it
// (the chaos suite plays its specs side by side), so an identity whose
// client ID or name (its resource ID derives from the name) the authority
// already holds is refused here, at setup.identities with what to change, rather
// than by the authority's bare 409 (Specs refuses the same clash between
// shipped specs before any run).
func (s *Scenario) attachToAuthority(ctx context.Context, a *client.Client, id config.Identity) error {
	have, err := a.Identities(ctx)
	if err != nil {
		return fmt.Errorf("list the authority's identities: %w", err)
	}
	if h, clash := authorityClash(have, id); clash != "" {
		return s.fieldError("setup.identities", "the stack's authority already holds %s %s (identity %s, client %s): the authority is shared by every run on the cluster, so give identity %s a %s of its own", clash, map[string]string{"client ID": id.ClientID, "name": id.Name}[clash], h.Name, h.ClientID, id.Name, clash)
	}
	_, err = a.Attach(ctx, id)
	return err
}

// authorityClash returns the identity of have that id clashes with and
// what clashes ("client ID" or "name"), or "" when none does.
func authorityClash(have []identity.Identity, id config.Identity) (identity.Identity, string) {
	for _, h := range have {
		switch {
		case strings.EqualFold(h.ClientID, id.ClientID):
			return h, "client ID"
		case strings.EqualFold(h.Name, id.Name):
			return h, "name"
		}
	}
	return identity.Identity{}, ""
}

// AuthorityIdentities returns the identities of setup.identities that a
// cluster run of s attaches to the stack's shared authority: the one
// setup.workloadIdentity names and those of wiPod steps.
func (s *Scenario) AuthorityIdentities() []config.Identity {
	var names []string
	if ws := s.Setup.WorkloadIdentity; ws != nil {
		names = append(names, ws.Identity)
	}
	for _, st := range s.Timeline {
		if p, ok := st.Action.(*wiPodStep); ok {
			names = append(names, p.Identity)
		}
	}
	var out []config.Identity
	for _, n := range names {
		if id, ok := s.Identity(n); ok && !slices.ContainsFunc(out, func(o config.Identity) bool { return o.Name == id.Name }) {
			out = append(out, id)
		}
	}
	return out
}
