package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// apiServer answers the two lists WaitHealthy reads: one node and one
// kube-system pod, ready when healthy is true. Each answer first waits for
// gate (when not nil), so that a test can hold the wait at its first read.
func apiServer(t *testing.T, healthy bool, gate <-chan struct{}) string {
	t.Helper()
	status := corev1.ConditionFalse
	if healthy {
		status = corev1.ConditionTrue
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		var body any
		switch r.URL.Path {
		case "/api/v1/nodes":
			body = corev1.NodeList{Items: []corev1.Node{{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}}}}}
		case "/api/v1/namespaces/kube-system/pods":
			body = corev1.PodList{Items: []corev1.Pod{{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}}}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: " + srv.URL + "}\n" +
		"contexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestWaitNewActionBeside checks Options.WhileWaiting: it runs while the
// readiness wait is under way (the API server holds its first answer until
// the function has started, so a function run after the wait would never
// start), Create's wait returns its error, and a failed wait cancels it.
func TestWaitNewActionBeside(t *testing.T) {
	errLoad := errors.New("load failed")
	cases := []struct {
		name    string
		healthy bool
		side    error
		want    error // nil: no error; errAny: some error
	}{
		{"both succeed", true, nil, nil},
		{"the function fails", true, errLoad, errLoad},
		{"the wait fails", false, nil, errAny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			kc := apiServer(t, tc.healthy, started)
			var cancelled bool
			c, err := New(WithName("beside"), WithKubeconfig(kc), WithWaitTimeout(3*time.Second),
				WithWhileWaiting(func(ctx context.Context) error {
					close(started)
					if tc.healthy {
						return tc.side
					}
					// Held until the failed wait cancels it.
					select {
					case <-ctx.Done():
						cancelled = true
					case <-time.After(20 * time.Second):
					}
					return nil
				}))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.waitNewAction(context.Background(), &createState{})
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("the wait did not return: the function did not run beside it, or was not cancelled")
			}
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want == errAny && err == nil:
				t.Error("no error from a failed wait")
			case tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Errorf("error %v, want the function's %v", err, tc.want)
			}
			if !tc.healthy && !cancelled {
				t.Error("the failed wait did not cancel the function")
			}
		})
	}
}

// errAny stands for any error in TestWaitNewActionBeside's table.
var errAny = errors.New("any error")
