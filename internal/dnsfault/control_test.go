package dnsfault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// scriptPod is a resolver's pod whose log the test writes: answer
// returns the lines the resolver would add for a State (nil: none).
type scriptPod struct {
	patchErr, logErr error
	answer           func(State) []Event
	log              []byte
	patches          []State
	// missed: the kubelet's projection misses the faults' update; the
	// resolver reads it only on the next update of the pod (a nudge).
	missed  bool
	pending *State
	nudges  int
}

func (p *scriptPod) Patch(_ context.Context, patch []byte) error {
	if p.patchErr != nil {
		return p.patchErr
	}
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	var st State
	if err := json.Unmarshal(patch, &m); err != nil {
		return err
	}
	a, ok := m.Metadata.Annotations[FaultsAnnotation]
	if !ok {
		p.nudges++
		if p.pending == nil {
			return nil
		}
		st, p.pending = *p.pending, nil
	} else {
		if err := json.Unmarshal([]byte(a), &st); err != nil {
			return err
		}
		p.patches = append(p.patches, st)
		if p.missed {
			p.pending = &st
			return nil
		}
	}
	if p.answer != nil {
		for _, e := range p.answer(st) {
			b, _ := json.Marshal(e)
			p.log = append(append(p.log, b...), '\n')
		}
	}
	return nil
}

func (p *scriptPod) Log(context.Context) ([]byte, error) { return p.log, p.logErr }

// TestControlSet: Set returns once the resolver's log says the fault's
// State was read and the fault applied, and fails with the reason
// otherwise.
func TestControlSet(t *testing.T) {
	f := Fault{Names: []string{"a.example"}, NXDomain: true, Until: time.Now().Add(time.Minute)}
	state := func(st State) Event { return Event{Event: EventState, Seq: st.Seq} }
	for _, tc := range []struct {
		name  string
		pod   *scriptPod
		fault Fault
		want  string // "" for success
	}{
		{"applied", &scriptPod{answer: func(st State) []Event {
			return []Event{{Event: EventApplied, Seq: st.Seq, Fault: "f"}, state(st)}
		}}, f, ""},
		{"applied by an older state only", &scriptPod{answer: func(st State) []Event {
			return []Event{{Event: EventApplied, Seq: st.Seq - 1, Fault: "f"}, state(st)}
		}}, f, "neither applied nor rejected"},
		{"rejected", &scriptPod{answer: func(st State) []Event {
			return []Event{{Event: EventRejected, Seq: st.Seq, Fault: "f", Error: "until: want a time within 30m0s"}, state(st)}
		}}, f, "rejected fault f: until: want a time within 30m0s"},
		{"state rejected", &scriptPod{answer: func(st State) []Event {
			return []Event{{Event: EventRejected, Seq: st.Seq, Error: "the faults file: invalid character"}}
		}}, f, "rejected the faults (seq 1): the faults file: invalid character"},
		{"never read", &scriptPod{}, f, "no the resolver's state line of seq 1 in the DNS resolver's log after 2s"},
		{"log unreadable", &scriptPod{logErr: errors.New("pods \"idh-dns-resolver\" is forbidden")}, f, "reading its log: pods \"idh-dns-resolver\" is forbidden"},
		{"patch refused", &scriptPod{patchErr: errors.New("forbidden")}, f, "write the faults into the DNS resolver's pod: forbidden"},
		{"fault that does nothing", &scriptPod{}, Fault{Names: []string{"a.example"}, Until: f.Until}, "fault f: the fault does nothing"},
		// The kubelet's projection missed the update (kubernetes#29633):
		// the pod's next update, a nudge, brings it.
		{"projection missed, nudged", &scriptPod{missed: true, answer: func(st State) []Event {
			return []Event{{Event: EventApplied, Seq: st.Seq, Fault: "f"}, state(st)}
		}}, f, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewControl(tc.pod)
			c.timeout = 2 * time.Second // past one nudge
			err := c.Set(context.Background(), "f", tc.fault)
			if tc.want == "" {
				if err != nil || len(tc.pod.patches) != 1 || tc.pod.patches[0].Faults["f"].Until.IsZero() {
					t.Errorf("Set: %v, patches %+v; want the fault written and applied", err, tc.pod.patches)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Set: %v, want %q", err, tc.want)
			}
			if len(c.faults) != 0 {
				t.Errorf("faults %v after a failed Set, want none: the next State must not carry it", c.faults)
			}
		})
	}
}

// TestControlRemove: Remove writes a State without the fault and returns
// the hits of the event that ended it (removed, or expired before).
func TestControlRemove(t *testing.T) {
	f := Fault{Names: []string{"a.example"}, Delay: duration.Of(time.Second), Until: time.Now().Add(time.Minute)}
	for _, tc := range []struct {
		name string
		end  func(State) []Event
		hits int
		want string
	}{
		{"removed", func(st State) []Event {
			return []Event{{Event: EventRemoved, Seq: st.Seq, Fault: "f", Hits: 7}, {Event: EventState, Seq: st.Seq}}
		}, 7, ""},
		{"expired before", func(st State) []Event {
			return []Event{{Event: EventExpired, Fault: "f", Hits: 4}, {Event: EventState, Seq: st.Seq}}
		}, 4, ""},
		{"no end", func(st State) []Event { return []Event{{Event: EventState, Seq: st.Seq}} }, 0, "no line ending fault f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &scriptPod{}
			pod.answer = func(st State) []Event {
				if _, ok := st.Faults["f"]; ok {
					return []Event{{Event: EventApplied, Seq: st.Seq, Fault: "f"}, {Event: EventState, Seq: st.Seq, Active: []string{"f"}}}
				}
				return tc.end(st)
			}
			c := NewControl(pod)
			c.timeout = 300 * time.Millisecond
			ctx := context.Background()
			if err := c.Set(ctx, "f", f); err != nil {
				t.Fatal(err)
			}
			hits, err := c.Remove(ctx, "f")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Remove: %d, %v; want %q", hits, err, tc.want)
				}
				return
			}
			if err != nil || hits != tc.hits || len(pod.patches) != 2 || len(pod.patches[1].Faults) != 0 || pod.patches[1].Seq != 2 {
				t.Errorf("Remove: %d, %v, patches %+v; want %d hits, a State of seq 2 without the fault", hits, err, pod.patches, tc.hits)
			}
		})
	}
	if _, err := NewControl(&scriptPod{}).Remove(context.Background(), "g"); err == nil || !strings.Contains(err.Error(), "no fault g was set") {
		t.Errorf("Remove of a fault never set: %v", err)
	}
}

// TestParseEvents: the resolver's lines, and nothing else of its log.
func TestParseEvents(t *testing.T) {
	log := `{"time":"2026-12-03T10:00:00Z","event":"ready","dns":"[::]:53","resolv":{"nameservers":["10.96.0.10"],"search":["a"],"options":null}}
panic: something
{"time":"2026-12-03T10:00:01Z","event":"applied","seq":1,"fault":"nx","spec":{"names":["a.example"],"nxdomain":true,"until":"2026-12-03T10:00:31Z"}}
{"not":"an event"}
{"time":"2026-12-03T10:00:02Z","event":"removed","seq":2,"fault":"nx","hits":12}
`
	evs := ParseEvents([]byte(log))
	if len(evs) != 3 || evs[0].Resolv == nil || evs[0].Resolv.Search[0] != "a" || evs[1].Spec == nil || !evs[1].Spec.NXDomain ||
		evs[2].Hits != 12 || evs[2].Seq != 2 {
		t.Errorf("ParseEvents = %+v", evs)
	}
}

// TestReadFaults: what the resolver makes of its faults file, each
// change reported before the State's line, nothing when it is unchanged.
func TestReadFaults(t *testing.T) {
	now := time.Now()
	until := now.Add(time.Minute).UTC().Format(time.RFC3339Nano)
	nx := `"nx":{"names":["a.example"],"nxdomain":true,"until":"` + until + `"}`
	slow := `"slow":{"names":["a.example"],"delay":"2s","until":"` + until + `"}`
	for _, tc := range []struct {
		name   string
		before string // the file's content already read, "" for none
		file   string
		want   []string // "event seq fault"
		active []string
	}{
		{"no file yet", "", "", nil, nil},
		{"a fault", "", `{"seq":1,"faults":{` + nx + `}}`, []string{"applied 1 nx", "state 1 "}, []string{"nx"}},
		{"unchanged", `{"seq":1,"faults":{` + nx + `}}`, `{"seq":1,"faults":{` + nx + `}}`, nil, []string{"nx"}},
		{"a second fault", `{"seq":1,"faults":{` + nx + `}}`, `{"seq":2,"faults":{` + nx + `,` + slow + `}}`, []string{"applied 2 slow", "state 2 "}, []string{"nx", "slow"}},
		{"one removed", `{"seq":1,"faults":{` + nx + `,` + slow + `}}`, `{"seq":2,"faults":{` + slow + `}}`, []string{"removed 2 nx", "state 2 "}, []string{"slow"}},
		{"changed", `{"seq":1,"faults":{` + nx + `}}`, `{"seq":2,"faults":{"nx":{"names":["b.example"],"nxdomain":true,"until":"` + until + `"}}}`, []string{"removed 2 nx", "applied 2 nx", "state 2 "}, []string{"nx"}},
		{"emptied", `{"seq":1,"faults":{` + nx + `}}`, `{"seq":2}`, []string{"removed 2 nx", "state 2 "}, nil},
		{"malformed", `{"seq":1,"faults":{` + nx + `}}`, `{"seq":2,"faults":`, []string{"rejected 0 "}, []string{"nx"}},
		{"unknown field", "", `{"seq":3,"faults":{},"servfail":true}`, []string{"rejected 3 "}, nil},
		{"past its end", "", `{"seq":1,"faults":{"old":{"names":["a.example"],"nxdomain":true,"until":"2020-01-01T00:00:00Z"}}}`, []string{"rejected 1 old", "state 1 "}, nil},
		{"does nothing", "", `{"seq":1,"faults":{"idle":{"names":["a.example"],"until":"` + until + `"}}}`, []string{"rejected 1 idle", "state 1 "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "dns-faults")
			var log bytes.Buffer
			s, err := New(Config{FaultsFile: file, Upstream: "127.0.0.1:53", ResolvConf: os.DevNull, Events: &log})
			if err != nil {
				t.Fatal(err)
			}
			if tc.before != "" {
				if err := os.WriteFile(file, []byte(tc.before), 0o600); err != nil {
					t.Fatal(err)
				}
				s.readFaults(now)
				log.Reset()
			}
			if tc.file != "" {
				if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s.readFaults(now)
			var got []string
			for _, e := range ParseEvents(log.Bytes()) {
				got = append(got, e.Event+" "+itoa(e.Seq)+" "+e.Fault)
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("events %q, want %q (log %s)", got, tc.want, log.String())
			}
			var active []string
			for id := range s.faults {
				active = append(active, id)
			}
			if len(active) != len(tc.active) {
				t.Errorf("active %v, want %v", active, tc.active)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
