//go:build e2e

package stack_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/nodeagent"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/stack/stacktest"
	"github.com/idharness/idharness/internal/sut"
)

// TestProfileSwitchE2E redeploys the stack of the kind cluster
// IDHARNESS_E2E_CLUSTER, where `idharness run --profile reference
// --keep-cluster` left the reference node agent, without the agent (the
// imds profile), checks that the agent's DaemonSet, pods and redirect on
// every node are gone, and then deploys the reference profile again,
// which must also remove what an earlier --sut left:
//
//	IDHARNESS_E2E_CLUSTER=idh-pi go test -tags e2e -run ProfileSwitchE2E ./internal/stack/
//
// Without the variable it is skipped.
func TestProfileSwitchE2E(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c, st := stacktest.Connect(ctx, t, "idharness run --profile reference --keep-cluster")
	cfg := st.REST()
	log := slog.Default()
	kube := st.Deployer().Kube
	if _, err := kube.AppsV1().DaemonSets(st.Namespace).Get(ctx, "nodeagent", metav1.GetOptions{}); err != nil {
		t.Fatalf("the cluster runs no reference node agent (deploy it with idharness run --profile reference --keep-cluster): %v", err)
	}
	nodes, err := c.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	redirects := func() []string {
		var with []string
		for _, n := range nodes {
			var out bytes.Buffer
			_ = n.Command("nft", "list", "ruleset").SetStdout(&out).Run()
			if strings.Contains(out.String(), "idharness-nodeagent") {
				with = append(with, n.String())
			}
		}
		return with
	}
	// The agent's boot hook (nodeagent.BootHook) on each node.
	hooks := func() []string {
		var with []string
		for _, n := range nodes {
			if n.Command("test", "-e", nodeagent.HookUnitDir+"/"+nodeagent.HookUnit).Run() == nil {
				with = append(with, n.String())
			}
		}
		return with
	}
	if len(redirects()) == 0 || len(hooks()) == 0 {
		t.Fatalf("before the switch, nodes with the agent's nftables table: %v, with its boot hook: %v; want some, or the checks below could not fail", redirects(), hooks())
	}
	deployWith := func(profile string) {
		t.Helper()
		comps, err := stack.Selected(nil)
		if err != nil {
			t.Fatal(err)
		}
		claims, _ := stack.ProfileModes(profile)
		opts := stack.Options{Images: st.Images, Identities: st.Identities, Seed: st.Seed, Claims: claims}
		// The profile's declarations (the reference agent's, the
		// reference webhook's), deployed as idharness run deploys them:
		// their program images are the run's.
		suts, err := sut.ForProfile(profile, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range suts {
			var loaded []sut.Loaded
			for image, program := range s.Programs() {
				loaded = append(loaded, sut.Loaded{Name: image, Ref: st.Images.Ref(program)})
			}
			comps = append(comps, s.Component(loaded))
		}
		opts.Agents, opts.SUTs, opts.WIWebhook = sut.Agents(suts), sut.Names(suts), sut.WIWebhook(suts)
		opts.Components = comps
		if _, err := stack.Deploy(ctx, cfg, opts, log); err != nil {
			t.Fatalf("deploy the %s profile: %v", profile, err)
		}
	}

	deployWith("imds")
	if _, err := kube.AppsV1().DaemonSets(st.Namespace).Get(ctx, "nodeagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after switching to the imds profile the nodeagent DaemonSet is still there (err %v)", err)
	}
	pods, err := kube.CoreV1().Pods(st.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nodeagent"})
	if err != nil || len(pods.Items) > 0 {
		t.Errorf("after the switch, nodeagent pods: %d (err %v), want none", len(pods.Items), err)
	}
	if with := redirects(); len(with) > 0 {
		t.Errorf("after the switch, nodes %v still redirect 169.254.169.254 to the agent", with)
	}
	if with := hooks(); len(with) > 0 {
		t.Errorf("after the switch, nodes %v still have the agent's boot hook: they would refuse pods' metadata requests after a reboot", with)
	}
	// Both profiles deploy the reference webhook's declaration: it stays.
	if _, err := kube.AppsV1().Deployments(st.Namespace).Get(ctx, stack.WIWebhookName, metav1.GetOptions{}); err != nil {
		t.Errorf("after switching to the imds profile the reference webhook's Deployment is gone: %v", err)
	}
	if _, err := kube.AppsV1().Deployments(st.Namespace).Get(ctx, stack.WIAuthorityName, metav1.GetOptions{}); err != nil {
		t.Errorf("after switching to the imds profile the authority's Deployment is gone: %v", err)
	}
	if _, err := kube.Discovery().ServerResourcesForGroupVersion("aadpodidentity.k8s.io/v1"); err != nil {
		t.Errorf("the pod identity CRDs were removed: CRDs are shared and stay (%v)", err)
	}

	// What an implementation declared as data (--sut) left goes too.
	left := fixtures.ConfigMap(st.Namespace, "sut-leftover", map[string]string{"k": "v"})
	left.SetLabels(map[string]string{stack.SUTLabel: "earlier", "app.kubernetes.io/part-of": "idharness", "app.kubernetes.io/managed-by": "idharness"})
	if err := st.Deployer().Apply(ctx, left); err != nil {
		t.Fatal(err)
	}

	deployWith("reference")
	if with := redirects(); len(with) != len(nodes) {
		t.Errorf("after switching back to reference, nodes with the agent's redirect: %v of %d", with, len(nodes))
	}
	if with := hooks(); len(with) != len(nodes) {
		t.Errorf("after switching back to reference, nodes with the agent's boot hook: %v of %d", with, len(nodes))
	}
	if _, err := kube.CoreV1().ConfigMaps(st.Namespace).Get(ctx, "sut-leftover", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("an object of an earlier --sut (label %s) is still there after a run without it (err %v)", stack.SUTLabel, err)
	}
}
