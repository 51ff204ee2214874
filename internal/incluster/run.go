package incluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/idharness/idharness/internal/deploy"
)

// Options configure Run.
type Options struct {
	JobOptions
	// Progress receives the runner's progress lines and the starting
	// side's own; nil discards them.
	Progress io.Writer
	// Log receives the runner's whole log as it came (report frame
	// included); nil discards it.
	Log io.Writer
	// PullTimeout bounds how long the runner's pod may wait for its image
	// (ErrImagePull, ImagePullBackOff) before the run gives up; 0 is 2
	// minutes.
	PullTimeout time.Duration
	// Poll is how often the pod is looked at while it starts; 0 is 2 s.
	Poll   time.Duration
	Logger *slog.Logger
}

// RunnerError is a runner that ended without a report.
type RunnerError struct {
	Pod    string
	Reason string
}

func (e *RunnerError) Error() string {
	return fmt.Sprintf("the in-cluster runner (pod %s) ended without a report: %s; its log is runner.log in the report directory", e.Pod, e.Reason)
}

// Run applies the runner's RBAC, creates its Job in o.Namespace, shows
// its progress, and returns the report it writes in its log. The Job and
// the RBAC are deleted when Run returns, also when ctx is cancelled
// (Ctrl-C), so that no privileged service account outlives the run.
func Run(ctx context.Context, dc *deploy.Client, o Options) (rep types.Report, err error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.PullTimeout == 0 {
		o.PullTimeout = 2 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sa, role, rb, cr, crb := RBAC(o.Namespace)
	objs, err := toUnstructured(sa, role, rb, cr, crb)
	if err != nil {
		return types.Report{}, err
	}
	defer func() {
		// Cleanup runs on a context of its own: Ctrl-C cancelled ctx.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := cleanupRBAC(cctx, dc, o.Namespace); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := dc.Apply(ctx, objs...); err != nil {
		return types.Report{}, fmt.Errorf("the runner's service account and roles: %w", err)
	}
	job, err := dc.Kube.BatchV1().Jobs(o.Namespace).Create(ctx, Job(o.JobOptions), metav1.CreateOptions{})
	if err != nil {
		return types.Report{}, fmt.Errorf("create the runner's Job in %s: %w", o.Namespace, err)
	}
	fmt.Fprintf(o.Progress, "in-cluster runner: Job %s/%s, image %s\n", o.Namespace, job.Name, o.Image)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		bg := metav1.DeletePropagationBackground
		if derr := dc.Kube.BatchV1().Jobs(o.Namespace).Delete(cctx, job.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("delete the runner's Job %s/%s: %w", o.Namespace, job.Name, derr))
		}
	}()
	pod, err := waitStarted(ctx, dc, o, job)
	if err != nil {
		return types.Report{}, err
	}
	return follow(ctx, dc, o, pod)
}

// toUnstructured converts typed objects for deploy.Client.Apply.
func toUnstructured(objs ...runtime.Object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("convert %T: %w", o, err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

// cleanupRBAC deletes the runner's ServiceAccount and roles.
func cleanupRBAC(ctx context.Context, dc *deploy.Client, ns string) error {
	var errs []error
	ignore := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	name := ClusterRoleName(ns)
	ignore(dc.Kube.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}))
	ignore(dc.Kube.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}))
	ignore(dc.Kube.RbacV1().RoleBindings(ns).Delete(ctx, ServiceAccount, metav1.DeleteOptions{}))
	ignore(dc.Kube.RbacV1().Roles(ns).Delete(ctx, ServiceAccount, metav1.DeleteOptions{}))
	ignore(dc.Kube.CoreV1().ServiceAccounts(ns).Delete(ctx, ServiceAccount, metav1.DeleteOptions{}))
	if len(errs) > 0 {
		return fmt.Errorf("delete the runner's service account and roles: %w", errors.Join(errs...))
	}
	return nil
}

// pullFailures are the waiting reasons of a pod whose image cannot be
// had: the run gives up on them after PullTimeout.
var pullFailures = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// waitStarted waits until job's pod runs (or has already ended), saying
// what it waits for whenever that changes.
func waitStarted(ctx context.Context, dc *deploy.Client, o Options, job *batchv1.Job) (string, error) {
	start := time.Now()
	var last string
	var pullSince time.Time
	for {
		pods, err := dc.Kube.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job.Name})
		if err != nil {
			return "", fmt.Errorf("the runner's pod: %w", err)
		}
		state, pod := "waiting for the Job's pod", ""
		if len(pods.Items) > 0 {
			p := pods.Items[0]
			pod = p.Name
			state, err = podState(p)
			if err != nil {
				return "", err
			}
			switch {
			case p.Status.Phase != corev1.PodPending:
				return pod, nil
			case pullFailures[waitingReason(p)]:
				if pullSince.IsZero() {
					pullSince = time.Now()
				}
				if time.Since(pullSince) > o.PullTimeout {
					return "", fmt.Errorf("the runner's pod %s cannot get its image %s (%s): load it into the nodes (idharness run --in-cluster --cluster NAME loads it into a kind cluster) or push it with --image-registry", pod, o.Image, state)
				}
			default:
				pullSince = time.Time{}
			}
		}
		if state != last {
			fmt.Fprintf(o.Progress, "in-cluster runner: %s (%s)\n", state, time.Since(start).Round(time.Second))
			last = state
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// waitingReason is the reason the pod's container waits, if it does.
func waitingReason(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			return w.Reason
		}
	}
	return ""
}

// podState says in words where the runner's pod is, and fails for a pod
// that cannot be scheduled for want of permission or configuration.
func podState(p corev1.Pod) (string, error) {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			if w.Reason == "CreateContainerConfigError" {
				return "", fmt.Errorf("the runner's pod %s cannot start: %s: %s", p.Name, w.Reason, w.Message)
			}
			return fmt.Sprintf("pod %s on %s: %s %s", p.Name, p.Spec.NodeName, w.Reason, w.Message), nil
		}
	}
	if p.Spec.NodeName == "" {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return fmt.Sprintf("pod %s unscheduled: %s", p.Name, c.Message), nil
			}
		}
		return fmt.Sprintf("pod %s being scheduled", p.Name), nil
	}
	return fmt.Sprintf("pod %s on %s: %s", p.Name, p.Spec.NodeName, p.Status.Phase), nil
}

// follow streams the pod's log until the runner ends, passing progress
// on and decoding the report. A stream the API server drops before the
// container ends is reopened, skipping the lines already seen.
func follow(ctx context.Context, dc *deploy.Client, o Options, pod string) (types.Report, error) {
	fr := &frameReader{pass: func(l string) { fmt.Fprintln(o.Progress, "  | "+l) }}
	seen := 0
	for {
		stream, err := dc.Kube.CoreV1().Pods(o.Namespace).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			return types.Report{}, fmt.Errorf("read the runner's log (pod %s/%s): %w", o.Namespace, pod, err)
		}
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		n := 0
		for sc.Scan() {
			n++
			if n <= seen {
				continue
			}
			seen = n
			fmt.Fprintln(o.Log, sc.Text())
			fr.line(sc.Text())
		}
		stream.Close()
		if ctx.Err() != nil {
			return types.Report{}, ctx.Err()
		}
		p, err := dc.Kube.CoreV1().Pods(o.Namespace).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return types.Report{}, fmt.Errorf("the runner's pod %s/%s: %w", o.Namespace, pod, err)
		}
		if ended, why := terminated(p); ended {
			r, err := fr.result()
			if errors.Is(err, errNoFrame) {
				return types.Report{}, &RunnerError{Pod: pod, Reason: why}
			}
			return r, err
		}
		o.Logger.Debug("the runner's log stream ended while it runs; reopening", "pod", pod, "lines", seen)
		select {
		case <-ctx.Done():
			return types.Report{}, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// terminated reports whether the pod's container has ended, and how.
func terminated(p *corev1.Pod) (bool, string) {
	if p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 0 {
		return true, strings.TrimSpace(p.Status.Reason + " " + p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return true, fmt.Sprintf("exit code %d, %s %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
		}
	}
	return false, ""
}
