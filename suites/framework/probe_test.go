package framework

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

func TestRereadLogs(t *testing.T) {
	result := []byte(`{"client":"raw","ok":true}` + "\n")
	errKubelet := errors.New("kubelet: container not found")
	type read struct {
		log []byte
		err error
	}
	tests := []struct {
		name string
		// reads are the answers in turn; the last repeats.
		reads     []read
		wantLog   string
		wantErr   error
		wantReads int // 0: more than one, up to the bound
	}{
		{name: "complete at once: read once", reads: []read{{log: result}}, wantLog: string(result), wantReads: 1},
		{name: "empty, then the result", reads: []read{{}, {}, {log: result}}, wantLog: string(result), wantReads: 3},
		{name: "an error, then the result", reads: []read{{err: errKubelet}, {log: result}}, wantLog: string(result), wantReads: 2},
		{name: "never a result: the last log, read until the bound", reads: []read{{log: []byte("starting\n")}}, wantLog: "starting\n"},
		{name: "an error after a log keeps the log", reads: []read{{log: []byte("starting\n")}, {err: errKubelet}}, wantLog: "starting\n"},
		{name: "only errors: the error", reads: []read{{err: errKubelet}}, wantErr: errKubelet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			readFn := func(context.Context) ([]byte, error) {
				r := tt.reads[min(n, len(tt.reads)-1)]
				n++
				return r.log, r.err
			}
			complete := func(b []byte) bool { return len(parseResults(b)) > 0 }
			log, err := rereadLogs(context.Background(), readFn, complete, time.Millisecond, 50*time.Millisecond)
			if string(log) != tt.wantLog || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", log, err, tt.wantLog, tt.wantErr)
			}
			if tt.wantReads > 0 && n != tt.wantReads {
				t.Errorf("%d reads, want %d", n, tt.wantReads)
			}
			if tt.wantReads == 0 && n < 3 {
				t.Errorf("%d reads: an incomplete log must be read again until the bound", n)
			}
		})
	}
}

// TestJournalLines: each journal entry goes to the pod whose address sent
// it, by the whole address: 10.244.1.2 is not 10.244.1.23.
func TestJournalLines(t *testing.T) {
	entries := []journal.Entry{
		{Seq: 1, Remote: "10.244.1.2:40000"},
		{Seq: 2, Remote: "10.244.1.23:40001"},
		{Seq: 3, Remote: "10.244.1.2:40002"},
		{Seq: 4, Remote: "10.244.1.9:40003"},
		{Seq: 5, Remote: "not an address"},
	}
	runs := []ProbeRun{{Pod: "a", PodIP: "10.244.1.2"}, {Pod: "b", PodIP: "10.244.1.23"}, {Pod: "c", PodIP: "10.244.1.3"}}
	got := journalLines(entries, runs)
	seqs := map[string][]uint64{}
	for pod, lines := range got {
		for _, l := range lines {
			var e journal.Entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			seqs[pod] = append(seqs[pod], e.Seq)
		}
	}
	want := map[string][]uint64{"a": {1, 3}, "b": {2}}
	if !reflect.DeepEqual(seqs, want) {
		t.Errorf("journalLines: %v, want %v", seqs, want)
	}
}

func TestFinished(t *testing.T) {
	term := corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}
	run := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	pod := func(policy corev1.RestartPolicy, phase corev1.PodPhase, containers int, st ...corev1.ContainerStatus) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy}, Status: corev1.PodStatus{Phase: phase, ContainerStatuses: st}}
		for range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{})
		}
		return p
	}
	never, onFailure := corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"succeeded", pod(never, corev1.PodSucceeded, 1, term), true},
		{"failed", pod(never, corev1.PodFailed, 1, term), true},
		{"pending, no status yet", pod(never, corev1.PodPending, 1), false},
		{"running", pod(never, corev1.PodRunning, 1, run), false},
		{"its only container ended, phase not yet set", pod(never, corev1.PodRunning, 1, term), true},
		{"one of two containers ended", pod(never, corev1.PodRunning, 2, term, run), false},
		{"both containers ended", pod(never, corev1.PodRunning, 2, term, term), true},
		{"one status for two containers", pod(never, corev1.PodRunning, 2, term), false},
		{"ended but may restart", pod(onFailure, corev1.PodRunning, 1, term), false},
	} {
		if got := finished(tc.pod); got != tc.want {
			t.Errorf("%s: finished = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWithStartDelay(t *testing.T) {
	args := []string{"--client=raw"}
	if got := (Probe{Args: args}).withStartDelay().Args; !reflect.DeepEqual(got, args) {
		t.Errorf("no delay: args %v, want %v", got, args)
	}
	got := (Probe{Args: args, StartDelay: 3 * time.Second}).withStartDelay().Args
	if want := []string{"--client=raw", "--start-delay=3s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("3 s: args %v, want %v", got, want)
	}
	if len(args) != 1 {
		t.Errorf("the caller's args changed: %v", args)
	}
}

// TestStartsRuntimes: the start gate is for clients whose pods boot a
// runtime (a client image), never for the Go clients of the probe's own
// image; a run asking for one such client among Go ones takes it.
func TestStartsRuntimes(t *testing.T) {
	st := stack.NewForTest("idharness-system", kubefake.NewClientset(), []string{"imds"})
	st.Images = fixtures.Images{Probe: "idharness.local/probe:dev", Clients: map[string]string{
		"java-azure-identity": "idharness.local/client-java-azure-identity:dev", "node-azure-identity": "idharness.local/client-node-azure-identity:dev",
		"python-azure-identity": "idharness.local/client-python-azure-identity:dev"}}
	f := &Framework{stack: st}
	for _, tc := range []struct {
		clients []string
		want    bool
	}{
		{nil, false},
		{[]string{"azidentity-mi", "msal-mi", "raw"}, false},
		{[]string{"raw", "js-azidentity-mi"}, true},
		{[]string{"py-msal-mi"}, true},
		{[]string{"java-azidentity-default", "azidentity-default"}, true},
	} {
		if got := f.startsRuntimes(tc.clients); got != tc.want {
			t.Errorf("startsRuntimes(%v) = %v, want %v", tc.clients, got, tc.want)
		}
	}
}

// TestClientsPod: one container per client, each named after it, in its
// image, with --client=it in place of the list; a customization's volume
// once; no merged pod when the customization makes init containers.
func TestClientsPod(t *testing.T) {
	st := stack.NewForTest("idharness-system", kubefake.NewClientset(), []string{"imds"})
	st.Images = fixtures.Images{Probe: "probe:dev", Clients: map[string]string{"node-azure-identity": "client-node:dev"}}
	f := &Framework{stack: st}
	withCA := func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "ca"})
		c := &p.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "ca", MountPath: "/ca"})
	}
	p := Probe{Node: "w1", Args: []string{"--identity=system", "--client=azidentity-mi,js-azidentity-mi,raw"}, Customize: withCA}
	pod := f.clientsPod("ns", "probe-x", p, []string{"azidentity-mi", "js-azidentity-mi", "raw"})
	if pod == nil {
		t.Fatal("no pod")
	}
	want := []struct{ name, image string }{{"azidentity-mi", "probe:dev"}, {"js-azidentity-mi", "client-node:dev"}, {"raw", "probe:dev"}}
	if len(pod.Spec.Containers) != len(want) {
		t.Fatalf("%d containers, want %d", len(pod.Spec.Containers), len(want))
	}
	for i, w := range want {
		c := pod.Spec.Containers[i]
		if c.Name != w.name || c.Image != w.image {
			t.Errorf("container %d: %s in %s, want %s in %s", i, c.Name, c.Image, w.name, w.image)
		}
		args := strings.Join(c.Args, " ")
		if !strings.Contains(args, "--client="+w.name) || strings.Count(args, "--client=") != 1 || !strings.Contains(args, "--identity=system") {
			t.Errorf("container %s args %q, want its own --client and the probe's flags", c.Name, args)
		}
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != "ca" {
			t.Errorf("container %s mounts %v, want the customization's", c.Name, c.VolumeMounts)
		}
		if got := containerArgs(pod, c.Name); slices.Contains(got, "--exit-zero") || !slices.Contains(got, "--client="+w.name) {
			t.Errorf("containerArgs(%s) = %v", c.Name, got)
		}
	}
	if len(pod.Spec.Volumes) != 1 || pod.Name != "probe-x" || pod.Namespace != "ns" || pod.Spec.NodeName != "w1" {
		t.Errorf("pod %s/%s on %q with volumes %v, want ns/probe-x on w1 with one", pod.Namespace, pod.Name, pod.Spec.NodeName, pod.Spec.Volumes)
	}
	p.Customize = func(p *corev1.Pod) {
		p.Spec.InitContainers, p.Spec.Containers = p.Spec.Containers, []corev1.Container{{Name: "main"}}
	}
	if pod := f.clientsPod("ns", "probe-y", p, []string{"azidentity-mi", "raw"}); pod != nil {
		t.Errorf("a customization with init containers merged into one pod: %v", pod.Spec.InitContainers)
	}
}
