package nodeagent

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func TestUninstalling(t *testing.T) {
	owned := func(uid types.UID) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "agent-x",
			OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "nodeagent", UID: uid}}}}
	}
	ds := func(deleting bool) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "nodeagent", UID: "ds-1"}}
		if deleting {
			now := metav1.Now()
			d.DeletionTimestamp = &now
			d.Finalizers = []string{"foregroundDeletion"}
		}
		return d
	}
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		want    bool
		wantErr bool
	}{
		{"restart: the DaemonSet lives", []runtime.Object{owned("ds-1"), ds(false)}, false, false},
		{"uninstall: the DaemonSet is gone", []runtime.Object{owned("ds-1")}, true, false},
		{"uninstall: the DaemonSet is being deleted", []runtime.Object{owned("ds-1"), ds(true)}, true, false},
		{"the DaemonSet was replaced by another of the same name", []runtime.Object{owned("ds-0"), ds(false)}, true, false},
		{"a pod run by hand", []runtime.Object{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "agent-x"}}}, true, false},
		{"the pod cannot be read", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Uninstalling(context.Background(), fake.NewClientset(tc.objects...), "ns", "agent-x")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("Uninstalling() = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
