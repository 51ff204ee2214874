package deploy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestDeleteAllOrder: the objects after a workload are deleted only once
// it is gone (its pods may need them while they stop), and objects with
// no workload between them are deleted before any of them is waited for.
func TestDeleteAllOrder(t *testing.T) {
	gvr := func(res string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "test", Version: "v1", Resource: res}
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gvr("daemonsets"): "DaemonSetList", gvr("serviceaccounts"): "ServiceAccountList", gvr("clusterroles"): "ClusterRoleList",
	})
	// Every object lingers for two reads after its deletion, as one in
	// foreground deletion does while its dependents go.
	var events []string
	reads := map[string]int{}
	deletedAt := map[string]bool{}
	dyn.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.DeleteAction).GetName()
		events = append(events, "delete "+name)
		deletedAt[name] = true
		return true, nil, nil
	})
	dyn.PrependReactor("get", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.GetAction).GetName()
		if !deletedAt[name] {
			t.Errorf("%s read before its deletion", name)
		}
		reads[name]++
		if reads[name] > 2 {
			events = append(events, "gone "+name)
			return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), name)
		}
		u := &unstructured.Unstructured{}
		u.SetName(name)
		return true, u, nil
	})
	c := &Client{dyn: dyn, log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 10 * time.Second}
	objs := []doomed{
		{dyn.Resource(gvr("daemonsets")), "DaemonSet", "ns", "agent"},
		{dyn.Resource(gvr("clusterroles")), "ClusterRole", "", "role"},
		{dyn.Resource(gvr("serviceaccounts")), "ServiceAccount", "ns", "sa"},
	}
	deleted, err := c.deleteAll(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(deleted, ","), "DaemonSet ns/agent,ClusterRole /role,ServiceAccount ns/sa"; got != want {
		t.Errorf("deleted %s, want %s", got, want)
	}
	got := strings.Join(events, "; ")
	want := "delete agent; gone agent; delete role; delete sa; gone role; gone sa"
	if got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}

// TestRunsPods: the kinds whose deletion waits for their pods.
func TestRunsPods(t *testing.T) {
	for kind, want := range map[string]bool{
		"DaemonSet": true, "Deployment": true, "StatefulSet": true, "ReplicaSet": true, "Job": true, "Pod": true,
		"ServiceAccount": false, "ClusterRole": false, "ConfigMap": false, "MutatingWebhookConfiguration": false,
	} {
		if got := runsPods(kind); got != want {
			t.Errorf("runsPods(%s) = %v, want %v", kind, got, want)
		}
	}
}
