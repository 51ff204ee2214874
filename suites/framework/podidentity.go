package framework

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/internal/podidentity"
	podidapi "github.com/idharness/idharness/pkg/api/podidentity"
)

// PodIdentityOptIn labels the namespaces whose pods the reference node
// agent serves; pods elsewhere are passed through to the node's IMDS, so
// the IMDS specs see the same thing with or without the agent.
const PodIdentityOptIn = podidentity.OptInLabel

// RequirePodIdentityAgent connects the handle to the stack and skips the
// container unless a pod identity agent runs (profiles reference and
// aad-pod-identity); it returns the agent's DaemonSet name. Containers
// call it from their BeforeAll.
func (f *Framework) RequirePodIdentityAgent(ctx context.Context) string {
	f.Setup(ctx)
	st := f.stack
	agent := ""
	for _, ds := range st.PodIdentityAgents() {
		_, err := st.Deployer().Kube.AppsV1().DaemonSets(st.Namespace).Get(ctx, ds, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			Fail(fmt.Sprintf("look for the pod identity agent %s: %v", ds, err))
		}
		if err == nil {
			agent = ds
		}
	}
	if agent == "" {
		if st.Claimed("pod-identity") {
			// The implementation claims the mode: its agent missing is
			// its failure, not a reason to leave the specs unrun.
			Fail(fmt.Sprintf("the deployed profile claims pod-identity, but no pod identity agent runs in %s (its DaemonSets: %q): is it deployed and ready?", st.Namespace, st.PodIdentityAgents()))
		}
		Skip("no pod identity agent deployed: run `idharness run --profile reference` (or aad-pod-identity)")
	}
	var err error
	if f.podIDDyn, err = dynamic.NewForConfig(st.REST()); err != nil {
		Fail(fmt.Sprintf("kubernetes client for the pod identity objects: %v", err))
	}
	return agent
}

// PodIdentityWarmUp is how long pod identity specs let a probe pod live
// before its first request. An agent finds a pod by its IP through an
// informer, which may lag the pod's start by a second or more on a busy
// node: NMI answers 500 "pod list is empty" then. aad-pod-identity
// documents that window and that applications retry in it, so the specs
// judge a pod past it; a spec of its own may judge the window.
const PodIdentityWarmUp = 3 * time.Second

// PodIdentityClient returns the client that creates pod identity objects
// (AzureIdentity, bindings, exceptions: pkg/api/podidentity builds them);
// RequirePodIdentityAgent sets it.
func (f *Framework) PodIdentityClient() dynamic.Interface { return f.podIDDyn }

// PodIdentityNamespace creates the spec's namespace, opted in to pod identity.
func (f *Framework) PodIdentityNamespace(ctx context.Context) string {
	GinkgoHelper()
	ns := f.Namespace(ctx)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, podidentity.OptInLabel, podidentity.OptInValue)
	if _, err := f.stack.Deployer().Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		Fail(fmt.Sprintf("label namespace %s for pod identity: %v", ns, err))
	}
	return ns
}

// BindIdentity creates an AzureIdentity for the run's identity idName,
// as aad-pod-identity documents a user-assigned one (type 0 with clientID
// and resourceID), and a binding of it to pods labelled
// aadpodidbinding=selector, both in ns; it returns the binding's name.
func (f *Framework) BindIdentity(ctx context.Context, ns, idName, selector string) string {
	GinkgoHelper()
	return f.bind(ctx, ns, idName, f.Identity(idName).ClientID, selector)
}

// BindIdentityWithoutClientID is BindIdentity with a misconfigured
// AzureIdentity: resourceID only, no clientID. It is for the spec that
// an implementation refuses it rather than guessing an identity.
func (f *Framework) BindIdentityWithoutClientID(ctx context.Context, ns, idName, selector string) string {
	GinkgoHelper()
	return f.bind(ctx, ns, idName, "", selector)
}

func (f *Framework) bind(ctx context.Context, ns, idName, clientID, selector string) string {
	GinkgoHelper()
	name, err := podidentity.Bind(ctx, f.podIDDyn, ns, idName, clientID, f.stack.Identities.ResourceID(idName), selector)
	if err != nil {
		Fail(err.Error())
	}
	return name
}

// Bound is the pod label that a binding with selector selects.
func Bound(selector string) map[string]string { return podidapi.PodLabels(selector) }

// Identity returns the run's identity called name.
func (f *Framework) Identity(name string) config.Identity {
	GinkgoHelper()
	id, ok := f.stack.Identities.ByName(name)
	if !ok {
		Fail(fmt.Sprintf("identity %s is not in the run's identity set", name))
	}
	return id
}
