package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/fakeimds/journal"
)

// TestRestartNodeRefusedLocally: a local run has no node to restart; it
// fails before anything starts, naming the step's line and --cluster.
func TestRestartNodeRefusedLocally(t *testing.T) {
	s, err := Parse("r.yaml", []byte(strings.Replace(base, "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {ready: 1m}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !s.restartsNode() {
		t.Fatal("restartsNode() = false for a timeline with a restartNode step")
	}
	_, err = Run(context.Background(), s, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "r.yaml:11: timeline[0].restartNode: a node restart restarts a kind node's container") || !strings.Contains(err.Error(), "--cluster") {
		t.Fatalf("error %v, want the restartNode step refused with its line and --cluster", err)
	}
}

// TestRestartNodeParams: the step's wait defaults to
// RestartNodeReadyDefault and is the file's otherwise; a scenario with
// the step restarts its probe pods, one without it does not (its probe
// pods keep restartPolicy Never).
func TestRestartNodeParams(t *testing.T) {
	s, err := Parse("r.yaml", []byte(strings.Replace(base, "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Timeline[0].Action.(*restartNodeStep).wait(); got != RestartNodeReadyDefault {
		t.Errorf("wait %v, want the default %v", got, RestartNodeReadyDefault)
	}
	if !s.Timeline[0].blocks() {
		t.Error("a restartNode step must block: its end is when the node is back")
	}
	s, err = Parse("r.yaml", []byte(strings.Replace(base, "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {ready: 45s}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Timeline[0].Action.(*restartNodeStep).wait(); got != 45*time.Second {
		t.Errorf("wait %v, want 45s", got)
	}
	if got := s.probePod(podPlan{pod: "probe-mi-1"}, "ns", "w", "img").Spec.RestartPolicy; got != corev1.RestartPolicyOnFailure {
		t.Errorf("probe pods of a run that restarts its node: restartPolicy %s, want OnFailure (the killed probe must go on)", got)
	}
	plain, err := Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if plain.restartsNode() {
		t.Error("restartsNode() = true for a timeline with a fault step only")
	}
	if got := plain.probePod(podPlan{pod: "probe-mi-1"}, "ns", "w", "img").Spec.RestartPolicy; got != corev1.RestartPolicyNever {
		t.Errorf("probe pods of a run without a node restart: restartPolicy %s, want Never", got)
	}
}

// TestRestartNodeWithoutDocker: where there is no Docker engine (no
// docker command) the step is refused with what it needs.
func TestRestartNodeWithoutDocker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := dockerNodeStarted(context.Background(), "idh-worker")
	if err == nil || !strings.Contains(err.Error(), "a node restart needs a kind cluster on this machine's Docker engine") {
		t.Fatalf("error %v, want the step refused for want of Docker", err)
	}
}

func TestParseDockerState(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      time.Time
		err       string
	}{
		{"running", "true 2026-12-02T19:31:37.123456789Z\n", time.Date(2026, 12, 2, 19, 31, 37, 123456789, time.UTC), ""},
		{"stopped", "false 2026-12-02T19:31:37.123456789Z\n", time.Time{}, "is not running: `docker start w` brings it back"},
		{"no start time", "true\n", time.Time{}, "want its state and start time"},
		{"bad start time", "true yesterday\n", time.Time{}, `start time "yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDockerState("w", tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestReadKilledProbeLog: a probe killed with its node leaves result
// lines without a summary, perhaps the last cut short; one that wrote
// its summary was not killed, and a bad line before the last is still
// an error.
func TestReadKilledProbeLog(t *testing.T) {
	line := `{"time":"2026-12-02T19:31:37Z","client":"raw","status":"ok","latencyMs":3}`
	summary := `{"summary":true,"rounds":2}`
	for _, tc := range []struct {
		name, log string
		lines     int
		err       string
	}{
		{"killed between lines", line + "\n" + line + "\n", 2, ""},
		{"killed in a line", line + "\n" + line + "\n" + line[:20], 2, ""},
		{"killed in its first line", line[:20], 0, ""},
		{"killed before a line", "", 0, ""},
		{"ended, not killed", line + "\n" + summary + "\n", 0, "it wrote its summary line"},
		{"bad line before the last", line[:20] + "\n" + line + "\n", 0, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readKilledProbeLog([]byte(tc.log))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.lines {
				t.Fatalf("got %d lines, %v; want %d", len(got), err, tc.lines)
			}
		})
	}
}

// TestPodRestartedSince: a pod counts as back when it is ready and every
// container of it started at or after the restart.
func TestPodRestartedSince(t *testing.T) {
	since := time.Date(2026, 12, 2, 19, 0, 0, 0, time.UTC)
	pod := func(started time.Time, ready bool, deleting bool) corev1.Pod {
		p := corev1.Pod{Status: corev1.PodStatus{
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: ready,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}},
		}}
		if ready {
			p.Status.Conditions[0].Status = corev1.ConditionTrue
		}
		if deleting {
			now := metav1.NewTime(since)
			p.DeletionTimestamp = &now
		}
		return p
	}
	waiting := pod(since, true, false)
	waiting.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"restarted and ready", pod(since.Add(time.Second), true, false), true},
		{"started the second of the restart", pod(since, true, false), true},
		{"still the instance before", pod(since.Add(-time.Second), true, false), false},
		{"restarted, not ready", pod(since.Add(time.Second), false, false), false},
		{"being deleted", pod(since.Add(time.Second), true, true), false},
		{"container waiting", waiting, false},
		{"no containers yet", corev1.Pod{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podRestartedSince(tc.pod, since); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestJournalRestarted: after the node's fakeimds restarted, what the
// old one journalled is kept, what the new one journalled is dropped and
// read again from its first entry.
func TestJournalRestarted(t *testing.T) {
	started := time.Date(2026, 12, 2, 19, 0, 0, 0, time.UTC)
	r := &runner{cursor: 120, requests: []Request{
		{Entry: journal.Entry{Seq: 119, Time: started.Add(-2 * time.Second)}},
		{Entry: journal.Entry{Seq: 120, Time: started.Add(-time.Second)}},
		{Entry: journal.Entry{Seq: 121, Time: started.Add(time.Second)}},
	}}
	r.journalRestarted(started)
	if r.cursor != 0 {
		t.Errorf("cursor %d, want 0: the new journal starts from 1", r.cursor)
	}
	if len(r.requests) != 2 || r.requests[1].Seq != 120 {
		t.Errorf("requests %+v, want the old fakeimds's two", r.requests)
	}
}
