package dnsfault

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idharness/idharness/internal/kubepatch"
)

// The control channel. The run writes the faults it wants in force, the
// whole set, into an annotation of the resolver's pod (FaultsAnnotation,
// a State in JSON); the kubelet projects it into a downward API file of
// the pod (FaultsFile), which the resolver reads every FaultsPoll; the
// resolver reports each change it made as a JSON line (Event) on its
// log, which the run reads. It takes the rights to patch a pod and read
// its log, which the in-cluster runner has and the pods under test do
// not (their service accounts are bound to no role), and the resolver
// listens on nothing but DNS.
const (
	// FaultsAnnotation carries the State on the resolver's pod.
	FaultsAnnotation = "idharness.io/dns-faults"
	// FaultsFile is where the resolver reads it: a downward API file.
	FaultsFile = faultsDir + "/dns-faults"
	faultsDir  = "/etc/idharness"
	// FaultsPoll is how often the resolver reads FaultsFile: small
	// beside the kubelet's projection of an annotation (the patch to
	// the fault in force took 55-146 ms on a kind node, a probe's start
	// 0.5-1.0 s).
	FaultsPoll = 50 * time.Millisecond
)

// State is what the run writes: the faults in force, by a name of the
// run's (a scenario step's, so that two can overlap), and a sequence
// number the resolver's events quote, by which the run knows the
// resolver has read it. A fault missing from a newer State is removed.
type State struct {
	Seq    int              `json:"seq"`
	Faults map[string]Fault `json:"faults,omitempty"`
}

// FaultsPatch is the merge patch that writes s into the resolver's pod.
func FaultsPatch(s State) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return kubepatch.Annotation(FaultsAnnotation, string(b)), nil
}

// The events the resolver writes on its log, one JSON object a line.
const (
	// EventReady: it answers DNS (DNS) and serves its resolv.conf (Resolv).
	EventReady = "ready"
	// EventApplied: fault Fault (Spec) is in force from Time, by State Seq.
	EventApplied = "applied"
	// EventRejected: State Seq's fault Fault (or the whole State, Fault
	// empty) was not applied, for Error.
	EventRejected = "rejected"
	// EventRemoved: fault Fault is gone by State Seq; it hit Hits queries.
	EventRemoved = "removed"
	// EventExpired: fault Fault reached its Until; it hit Hits queries.
	EventExpired = "expired"
	// EventState: State Seq is read and in force: its faults Active.
	EventState = "state"
	// EventForwardFailed: the upstream did not answer a query for Name
	// (Error); the client got SERVFAIL.
	EventForwardFailed = "forward-failed"
)

// Event is one line of the resolver's log.
type Event struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	Seq    int       `json:"seq,omitempty"`
	Fault  string    `json:"fault,omitempty"`
	Spec   *Fault    `json:"spec,omitempty"`
	Hits   int       `json:"hits,omitempty"`
	Active []string  `json:"active,omitempty"`
	DNS    string    `json:"dns,omitempty"`
	Resolv *Resolv   `json:"resolv,omitempty"`
	Name   string    `json:"name,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// ParseEvents returns the events in a resolver's log; other lines (a
// Go runtime's panic) are skipped.
func ParseEvents(log []byte) []Event {
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		var e Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Event == "" {
			continue
		}
		out = append(out, e)
	}
	return out
}

// PodAccess is the resolver's pod as the run reaches it through the API
// server: patch its annotation, read its log.
type PodAccess interface {
	// Patch applies a merge patch to the pod (FaultsPatch).
	Patch(ctx context.Context, patch []byte) error
	// Log returns the resolver's log so far.
	Log(ctx context.Context) ([]byte, error)
}

// ControlTimeout bounds the wait for the resolver to report a State: the
// kubelet projects an annotation into the file as it syncs the pod on the
// update, within a second; a node that takes this long is too loaded to
// time a fault.
const ControlTimeout = 30 * time.Second

// logPoll is how often the run reads the resolver's log while it waits.
const logPoll = 100 * time.Millisecond

// Control is the run's side of the channel: it keeps the set of faults,
// writes it with a new sequence number on every change and waits for the
// resolver's events about it.
type Control struct {
	pod     PodAccess
	timeout time.Duration

	mu     sync.Mutex
	seq    int
	faults map[string]Fault
}

// NewControl returns the control of the resolver in pod.
func NewControl(pod PodAccess) *Control {
	return &Control{pod: pod, timeout: ControlTimeout, faults: map[string]Fault{}}
}

// Ready waits until the resolver has said it is ready and returns its
// resolv.conf.
func (c *Control) Ready(ctx context.Context) (Resolv, error) {
	evs, err := c.wait(ctx, "the resolver's ready line", nil, func(evs []Event) bool {
		return slices.ContainsFunc(evs, func(e Event) bool { return e.Event == EventReady })
	})
	if err != nil {
		return Resolv{}, err
	}
	for _, e := range evs {
		if e.Event == EventReady && e.Resolv != nil {
			return *e.Resolv, nil
		}
	}
	return Resolv{}, errors.New("the DNS resolver's ready line carries no resolv.conf")
}

// Set puts fault id in force and returns once the resolver has reported
// it applied.
func (c *Control) Set(ctx context.Context, id string, f Fault) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := f.Validate(time.Now()); err != nil {
		return fmt.Errorf("fault %s: %w", id, err)
	}
	c.faults[id] = f
	seq, evs, err := c.write(ctx)
	if err == nil {
		err = applied(evs, seq, id)
	}
	if err != nil {
		delete(c.faults, id)
	}
	return err
}

// applied returns nil when the resolver's events say State seq applied
// fault id, else why not.
func applied(evs []Event, seq int, id string) error {
	for _, e := range evs {
		if e.Seq == seq && e.Fault == id {
			switch e.Event {
			case EventRejected:
				return fmt.Errorf("the DNS resolver rejected fault %s: %s", id, e.Error)
			case EventApplied:
				return nil
			}
		}
	}
	return fmt.Errorf("the DNS resolver read the faults (seq %d) but reported fault %s neither applied nor rejected", seq, id)
}

// Remove ends fault id, if the resolver has not ended it by its Until
// already, and returns how many queries it hit.
func (c *Control) Remove(ctx context.Context, id string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.faults[id]; !ok {
		return 0, fmt.Errorf("no fault %s was set", id)
	}
	delete(c.faults, id)
	_, evs, err := c.write(ctx)
	if err != nil {
		return 0, err
	}
	return hits(evs, id)
}

// hits returns how many queries fault id hit: the count of the event
// that ended it (removed or expired) after the last that applied it.
func hits(evs []Event, id string) (int, error) {
	applied := -1
	for i, e := range evs {
		if e.Fault == id && e.Event == EventApplied {
			applied = i
		}
	}
	if applied < 0 {
		return 0, fmt.Errorf("the DNS resolver's log has no line applying fault %s", id)
	}
	for _, e := range evs[applied+1:] {
		if e.Fault == id && (e.Event == EventRemoved || e.Event == EventExpired) {
			return e.Hits, nil
		}
	}
	return 0, fmt.Errorf("the DNS resolver's log has no line ending fault %s", id)
}

// write writes the faults with the next sequence number and waits for
// the resolver to report that State read; it returns the sequence number
// and the resolver's events so far. Call with c.mu held.
func (c *Control) write(ctx context.Context) (int, []Event, error) {
	c.seq++
	seq := c.seq
	patch, err := FaultsPatch(State{Seq: seq, Faults: maps.Clone(c.faults)})
	if err != nil {
		return seq, nil, err
	}
	if err := c.pod.Patch(ctx, patch); err != nil {
		return seq, nil, fmt.Errorf("write the faults into the DNS resolver's pod: %w", err)
	}
	// The kubelet's projection of the annotation can miss an update until
	// its periodic sync a minute later (kubernetes#29633): while the
	// resolver has not answered, every nudgeEvery the pod is updated
	// again (another annotation), each update a sync that projects it.
	nudges := 0
	nudge := func() error {
		nudges++
		return c.pod.Patch(ctx, nudgePatch(seq, nudges))
	}
	evs, err := c.wait(ctx, fmt.Sprintf("the resolver's state line of seq %d", seq), nudge, func(evs []Event) bool {
		return slices.ContainsFunc(evs, func(e Event) bool {
			return (e.Event == EventState || e.Event == EventRejected && e.Fault == "") && e.Seq >= seq
		})
	})
	if err != nil {
		return seq, nil, err
	}
	for _, e := range evs {
		if e.Event == EventRejected && e.Fault == "" && e.Seq >= seq {
			return seq, nil, fmt.Errorf("the DNS resolver rejected the faults (seq %d): %s", seq, e.Error)
		}
	}
	return seq, evs, nil
}

// nudgeEvery is how long write waits for the resolver's answer before
// it updates the pod again: the projection takes 0.5-1.0 s.
const nudgeEvery = 1500 * time.Millisecond

// nudgePatch is the n-th update of the pod while seq is unanswered: an
// annotation the resolver does not read.
func nudgePatch(seq, n int) []byte {
	return kubepatch.Annotation(FaultsAnnotation+"-nudge", fmt.Sprintf("%d.%d", seq, n))
}

// wait reads the resolver's log until done holds for its events, calling
// nudge (when not nil) every nudgeEvery until then.
func (c *Control) wait(ctx context.Context, what string, nudge func() error, done func([]Event) bool) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var last error
	nudged := time.Now()
	for {
		if nudge != nil && time.Since(nudged) >= nudgeEvery {
			if err := nudge(); err != nil && ctx.Err() == nil {
				last = err
			}
			nudged = time.Now()
		}
		log, err := c.pod.Log(ctx)
		if err == nil {
			if evs := ParseEvents(log); done(evs) {
				return evs, nil
			}
		} else if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			why := "it may not have run, or its node projects the pod's annotations slowly"
			if last != nil {
				why = "reading its log: " + last.Error()
			}
			return nil, fmt.Errorf("no %s in the DNS resolver's log after %v (%s)", what, c.timeout, strings.TrimSpace(why))
		case <-time.After(logPoll):
		}
	}
}
