package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// wiBase is a valid workload identity scenario; the error cases each
// change one thing in it. Its line numbers matter to the cases.
const wiBase = `id: t
title: test
links: [https://example.com/incident]
setup:
  identities:
    - {name: wi, clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01, objectId: 4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02, tokenLifetime: 20s}
  workloadIdentity: {identity: wi, expirationSeconds: 600, tokenFile: secret}
timeline:
  - name: rotation
    at: 5s
    rotateToken: {expirationSeconds: 3600}
workload:
  duration: 60s
  clients:
    - {name: msal, client: msal-wi, every: 3s, identity: wi, workloadIdentity: true}
    - {name: py, client: py-azidentity-wi, every: 3s, identity: wi, workloadIdentity: true}
expect:
  - {kind: success-rate, from: 30s, minPercent: 90}
`

func TestWorkloadIdentityParse(t *testing.T) {
	s, err := Parse("t.yaml", []byte(wiBase))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckCluster(); err != nil {
		t.Errorf("CheckCluster: %v", err)
	}
	err = s.checkLocalWorkload()
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml:7: setup.workloadIdentity: workload identity needs the stack's webhook and authority") {
		t.Errorf("checkLocalWorkload: %v, want the refusal with the line", err)
	}
	if got := s.ClientPrograms(); !slices.Equal(got, []string{"python-azure-identity"}) {
		t.Errorf("ClientPrograms = %v, want python-azure-identity only (msal-wi is Go)", got)
	}
}

func TestWorkloadIdentityParseErrors(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"no setup", "  workloadIdentity: {identity: wi, expirationSeconds: 600, tokenFile: secret}\n", "", "t.yaml:14: workload.clients[0].workloadIdentity: needs setup.workloadIdentity"},
		{"group without setup", "  workloadIdentity: {identity: wi, expirationSeconds: 600, tokenFile: secret}\ntimeline:\n  - name: rotation\n    at: 5s\n    rotateToken: {expirationSeconds: 3600}\n", "",
			"t.yaml:10: workload.clients[0].workloadIdentity: needs setup.workloadIdentity"},
		{"identity missing", "identity: wi, expirationSeconds", "expirationSeconds", "t.yaml:7: setup.workloadIdentity.identity: required"},
		{"identity unknown", "{identity: wi, exp", "{identity: other, exp", "t.yaml:7: setup.workloadIdentity.identity: \"other\" is not one of setup.identities"},
		{"too short", "expirationSeconds: 600, tokenFile", "expirationSeconds: 599, tokenFile", "t.yaml:7: setup.workloadIdentity.expirationSeconds: 599: want 600 (the API server's minimum) to 86400"},
		{"too long", "expirationSeconds: 600, tokenFile", "expirationSeconds: 86401, tokenFile", "t.yaml:7: setup.workloadIdentity.expirationSeconds: 86401"},
		{"token file", "tokenFile: secret", "tokenFile: disk", "t.yaml:7: setup.workloadIdentity.tokenFile: want projected"},
		{"projected with rotateToken", "tokenFile: secret", "tokenFile: projected", "t.yaml:11: timeline[0].rotateToken: needs setup.workloadIdentity with tokenFile: secret"},
		{"a group without it", "    - {name: py, client: py-azidentity-wi, every: 3s, identity: wi, workloadIdentity: true}", "    - {name: py, client: py-azidentity-mi, every: 3s}",
			"t.yaml:16: workload.clients[1].workloadIdentity: the run's pods share one namespace"},
		{"another identity", "{name: py, client: py-azidentity-wi, every: 3s, identity: wi,", "{name: py, client: py-azidentity-wi, every: 3s,", "t.yaml:16: workload.clients[1].identity: want \"wi\""},
		{"client without the mode", "client: msal-wi", "client: msal-mi", "t.yaml:15: workload.clients[0].client: msal-mi: managedidentity.Client does not support mode workload-identity"},
		{"useToken", "every: 3s, identity: wi, workloadIdentity: true}\n    - {name: py", "every: 3s, identity: wi, workloadIdentity: true, useToken: vault}\n    - {name: py", "t.yaml:15: workload.clients[0]: podIdentity, useToken and selectBy do not apply"},
		{"new token too short", "rotateToken: {expirationSeconds: 3600}", "rotateToken: {expirationSeconds: 1000}", "t.yaml:11: timeline[0].rotateToken.expirationSeconds: 1000 s: the new token must outlive the authority's lead (16m0s"},
		{"new token out of bounds", "rotateToken: {expirationSeconds: 3600}", "rotateToken: {expirationSeconds: 100000}", "t.yaml:11: timeline[0].rotateToken.expirationSeconds: 100000: want 600 to 86400"},
		{"settle", "rotateToken: {expirationSeconds: 3600}", "rotateToken: {settle: 2m}", "t.yaml:11: timeline[0].rotateToken.settle: want 0 to 1m"},
		{"unknown parameter", "rotateToken: {expirationSeconds: 3600}", "rotateToken: {lifetime: 3600}", "t.yaml:11: lifetime: unknown field"},
		{"an expectation that counts requests", "  - {kind: success-rate, from: 30s, minPercent: 90}", "  - {kind: max-rate, clients: py, max: 2}",
			"t.yaml:18: expect[0].kind: max-rate counts the requests the node's fakeimds attributes to each client, but group py exchanges its token at the stack's authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(wiBase, tc.old) {
				t.Fatalf("case does not apply: %q not in the base", tc.old)
			}
			_, err := Parse("t.yaml", []byte(strings.Replace(wiBase, tc.old, tc.new, 1)))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// TestWIPod checks the workload identity pod: the run's service account,
// the webhook's label, the authority's CA and the token file the
// variable names, projected by the kubelet or from the run's Secret.
func TestWIPod(t *testing.T) {
	for _, tc := range []struct {
		file    string
		secret  bool
		seconds int64
	}{
		{TokenFileProjected, false, 600},
		{TokenFileSecret, true, 600},
	} {
		t.Run(tc.file, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "probe"}}}}
			wiPod(pod, WorkloadIdentitySetup{Identity: "wi", ExpirationSeconds: tc.seconds, TokenFile: tc.file})
			if pod.Spec.ServiceAccountName != wiServiceAccount || pod.Labels[workloadidentity.UseLabel] != "true" {
				t.Errorf("service account %q, labels %v", pod.Spec.ServiceAccountName, pod.Labels)
			}
			var tokenVol *corev1.Volume
			for i, v := range pod.Spec.Volumes {
				if v.Name == wiTokenVolume {
					tokenVol = &pod.Spec.Volumes[i]
				}
			}
			switch {
			case tokenVol == nil:
				t.Fatal("no token volume")
			case tc.secret && (tokenVol.Secret == nil || tokenVol.Secret.SecretName != wiSecret):
				t.Errorf("token volume %+v, want Secret %s", tokenVol.VolumeSource, wiSecret)
			case !tc.secret && (tokenVol.Projected == nil || *tokenVol.Projected.Sources[0].ServiceAccountToken.ExpirationSeconds != tc.seconds ||
				tokenVol.Projected.Sources[0].ServiceAccountToken.Audience != workloadidentity.TokenAudience):
				t.Errorf("token volume %+v, want a projected %d s token for %s", tokenVol.VolumeSource, tc.seconds, workloadidentity.TokenAudience)
			}
			c := pod.Spec.Containers[0]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			mounted := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounted[m.Name] = m.MountPath
			}
			if env[workloadidentity.EnvTokenFile] != mounted[wiTokenVolume]+"/"+wiTokenKey || mounted[wiCAConfigMap] != wiCADir {
				t.Errorf("env %v, mounts %v: the token file variable must name the mounted token, the CA be at %s", env, mounted, wiCADir)
			}
		})
	}
}

// TestWIProbeArgs checks that a workload identity group's probe runs in
// that mode, trusting the authority's CA, and an IMDS group's does not.
func TestWIProbeArgs(t *testing.T) {
	s, err := Parse("t.yaml", []byte(wiBase))
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{s: s, nonce: "n1", source: map[string]string{}}
	for _, p := range r.planPods() {
		if !p.wi || !slices.Contains(p.args, "--mode=workload-identity") || !slices.Contains(p.args, "--ca-file="+wiCADir+"/ca.crt") {
			t.Errorf("pod %s: wi %v, args %v", p.pod, p.wi, p.args)
		}
	}
	imds, err := LoadFile(filepath.Join("..", "..", "scenarios", "token-lifetime-6m.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r = &runner{s: imds, nonce: "n1", source: map[string]string{}}
	for _, p := range r.planPods() {
		if p.wi || slices.ContainsFunc(p.args, func(a string) bool { return strings.HasPrefix(a, "--mode=") }) {
			t.Errorf("IMDS pod %s: wi %v, args %v", p.pod, p.wi, p.args)
		}
	}
}

// TestRotateClock checks the authority's rule of rotateToken: the run's
// identity only, on the authority, ahead by the old token's lifetime,
// the authority's leeway and a minute, which an assertion minted now
// with that lifetime is past and one of the new lifetime is not.
func TestRotateClock(t *testing.T) {
	ws := WorkloadIdentitySetup{Identity: "wi", ExpirationSeconds: 600, TokenFile: TokenFileSecret}
	ahead := rotateLead(ws)
	if ahead != 600*time.Second+stack.WIAuthorityLeeway+time.Minute {
		t.Errorf("lead %v", ahead)
	}
	rule := rotateClock("cid", ahead, Step{}.For)
	if err := rule.Validate(); err != nil {
		t.Fatal(err)
	}
	cs, ok := rule.Action.Fault.(*chaos.ClockSkew)
	if !ok || cs.Offset.Duration != ahead || rule.Match.Identity != "cid" || !slices.Equal(rule.Match.Faces, []string{"authority"}) {
		t.Errorf("rule %+v", rule)
	}
	// The old token, minted just now, is refused by the clock ahead; the
	// new one (3600 s) is still valid at the end of a 90 s play.
	now := time.Now()
	if oldExp := now.Add(600 * time.Second); !now.Add(ahead).After(oldExp.Add(stack.WIAuthorityLeeway)) {
		t.Error("the old token would still be accepted")
	}
	if newExp := now.Add(3600 * time.Second); !now.Add(ahead + 90*time.Second).Before(newExp) {
		t.Error("the new token would be refused")
	}
}

// TestWriteWIToken checks that the token goes into the Secret the pods
// mount, created then replaced, and that a failure names the account.
func TestWriteWIToken(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	// The fake clientset answers no TokenRequest: answer as the API
	// server does, with a token of the lifetime asked.
	kube.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authv1.TokenRequest)
		tr.Status.Token = fmt.Sprintf("token-%d", *tr.Spec.ExpirationSeconds)
		return true, tr, nil
	})
	if err := writeWIToken(ctx, kube, "ns", 600, true); err != nil {
		t.Fatal(err)
	}
	if err := writeWIToken(ctx, kube, "ns", 3600, false); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if sec, err := kube.CoreV1().Secrets("ns").Get(ctx, wiSecret, metav1.GetOptions{}); err != nil || string(sec.Data[wiTokenKey]) != "token-3600" {
		t.Errorf("secret %v (%v), want the second token under %s", sec, err, wiTokenKey)
	}
	if err := writeWIToken(ctx, kube, "ns", 600, true); err == nil || !strings.Contains(err.Error(), "Secret ns/"+wiSecret) {
		t.Errorf("creating it twice: %v, want the Secret named", err)
	}
}

// TestRotateTokenNeedsTheRun checks that the step refuses to act outside
// a cluster run with a workload identity set-up.
func TestRotateTokenNeedsTheRun(t *testing.T) {
	_, _, err := (&rotateTokenStep{}).apply(context.Background(), &runner{}, Step{})
	if err == nil || !strings.Contains(err.Error(), "tokenFile: secret") {
		t.Errorf("apply without a run: %v", err)
	}
}

// TestProgramLead checks that a run with client programs' pods gets
// ProgramLead more to start them, and one with Go clients only does not.
func TestProgramLead(t *testing.T) {
	for _, tc := range []struct {
		file string
		want time.Duration
	}{
		{"wi-token-rotation-fast.yaml", DefaultLead(5) + ProgramLead + 90*time.Second},
		{"token-lifetime-6m.yaml", DefaultLead(5) + 150*time.Second},
	} {
		s, err := LoadFile(filepath.Join("..", "..", "scenarios", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.ClusterDuration(); got != tc.want {
			t.Errorf("%s: ClusterDuration %v, want %v", tc.file, got, tc.want)
		}
	}
}

// TestAuthorityClashes: specs played side by side attach to one
// authority, which holds each client ID and name once, so Specs refuses
// two specs whose authority identities share either, naming both files;
// distinct identities, and a spec with no authority identity, pass.
func TestAuthorityClashes(t *testing.T) {
	spec := func(file, id, name, clientID string, wiPod bool) *Scenario {
		s := &Scenario{file: file, Spec: &SpecInfo{ID: id}}
		s.Setup.Identities = []config.Identity{{Name: name, ClientID: clientID}}
		if wiPod {
			s.Timeline = []Step{{Action: &wiPodStep{Identity: name}}}
		} else {
			s.Setup.WorkloadIdentity = &WorkloadIdentitySetup{Identity: name}
		}
		return s
	}
	plain := &Scenario{file: "c.yaml", Spec: &SpecInfo{ID: "IDH-CHAOS-0003"}}
	plain.Setup.Identities = []config.Identity{{Name: "wi-a", ClientID: "c-a"}}
	for _, tc := range []struct {
		name string
		b    *Scenario
		want string
	}{
		{"distinct", spec("b.yaml", "IDH-CHAOS-0002", "wi-b", "c-b", true), ""},
		{"same name", spec("b.yaml", "IDH-CHAOS-0002", "WI-A", "c-b", true), "a.yaml (IDH-CHAOS-0001) and b.yaml (IDH-CHAOS-0002) both give the shared authority an identity with name WI-A"},
		{"same client ID", spec("b.yaml", "IDH-CHAOS-0002", "wi-b", "C-A", false), "a.yaml (IDH-CHAOS-0001) and b.yaml (IDH-CHAOS-0002) both give the shared authority an identity with client ID C-A"},
		{"no authority identity", plain, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Specs([]*Scenario{spec("a.yaml", "IDH-CHAOS-0001", "wi-a", "c-a", false), tc.b})
			if tc.want == "" && err != nil {
				t.Fatalf("Specs: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("Specs: %v, want %q", err, tc.want)
			}
		})
	}
}
