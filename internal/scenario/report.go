package scenario

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/pkg/report"
)

// The per-client verdicts of the spec × client matrix besides the
// report's passed and failed (the framework's VerdictFinding and
// VerdictRecorded have the same values).
const (
	// ClientFinding: the client fails an expectation as a recorded
	// finding says it does.
	ClientFinding = "finding"
)

// SuiteScenario is the suite name of a report written by `idharness
// scenario run`.
const SuiteScenario = "scenario"

// Report returns the run as a report of the one results model: the same
// report.json, junit.xml, summary.md and report.html as `idharness run`
// writes, with the scenario as its one spec.
func (r *Result) Report(s *Scenario) *report.Report {
	out := &report.Report{Suite: SuiteScenario, Seed: r.Seed, StartedAt: r.Started, Duration: report.Seconds(r.Duration.D().Seconds())}
	if r.InCluster != nil {
		out.Cluster = r.InCluster.Cluster
	}
	out.Specs = []report.Spec{r.ReportSpec(s)}
	out.Finalize()
	return out
}

// ReportSpec returns the run as one spec of a report: the scenario's
// spec block (or its id and title), passed when every verdict is as the
// scenario expects, the per-client matrix, the verdicts as evidence and
// the timeline the HTML report draws.
func (r *Result) ReportSpec(s *Scenario) report.Spec {
	sp := report.Spec{ID: s.ID, Level: report.MUST, Statement: s.Title, Duration: report.Seconds(r.Duration.D().Seconds()),
		Location: s.File(), State: report.Passed, Clients: r.ClientVerdicts()}
	if s.Spec != nil {
		sp.ID, sp.Level, sp.Statement, sp.Labels = s.Spec.ID, s.Spec.Level, s.Spec.Statement, s.Spec.Labels
	}
	var failed []string
	lines := make([]string, 0, len(r.Verdicts))
	for _, v := range r.Verdicts {
		lines = append(lines, fmt.Sprintf("%-15s %s: %s", v.Outcome, v.Expectation, v.Detail))
		if !v.OK() {
			failed = append(failed, fmt.Sprintf("%s (%s): %s", v.Expectation, v.Outcome, v.Detail))
		}
	}
	if !r.Passed {
		sp.State = report.Failed
		sp.Failure = strings.Join(failed, "\n")
	}
	sp.Evidence = append(sp.Evidence, "verdicts:\n"+strings.Join(lines, "\n"))
	if tl, err := r.Timeline().EvidenceEntry(); err == nil {
		sp.Evidence = append(sp.Evidence, report.TimelineEvidence+":\n"+tl)
	}
	return sp
}

// ClientVerdicts returns each client's verdict for the spec × client
// matrix, by registry client (azidentity-mi, py-msal-mi, exec): failed
// when an expectation failed for one of its clients (or for all, when
// the expectation judges them together), finding when one failed as a
// recorded finding says, else passed.
func (r *Result) ClientVerdicts() map[string]string {
	kindOf := map[string]string{}
	out := map[string]string{}
	for _, c := range r.Clients {
		kindOf[c.Name] = c.Client
		out[c.Client] = report.Passed
	}
	rank := map[string]int{report.Passed: 0, ClientFinding: 1, report.Failed: 2}
	mark := func(client, verdict string) {
		if rank[verdict] > rank[out[client]] {
			out[client] = verdict
		}
	}
	for _, v := range r.Verdicts {
		verdict := report.Failed
		switch v.Outcome {
		case OutcomePass:
			continue
		case OutcomeKnownFailure:
			verdict = ClientFinding
		}
		if len(v.Clients) == 0 {
			// Judged together (a rate, a share of attempts), or not about
			// clients (a step that could not be applied): every client
			// of the scope carries it.
			for _, c := range r.Clients {
				if v.Scope == "" || v.Scope == c.Group {
					mark(c.Client, verdict)
				}
			}
			continue
		}
		for _, cv := range v.Clients {
			if !cv.Held {
				mark(kindOf[cv.Client], verdict)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Timeline returns the run second by second as the fake saw the
// clients' requests (by status, slowest answer, faulted), the windows of
// its timeline steps, and a resilience row per client measured against
// the step recovery is judged from (see recoveryWindow).
func (r *Result) Timeline() report.Timeline {
	t := report.Timeline{Start: r.Started}
	last := r.Duration.D()
	for _, c := range r.Clients {
		for _, a := range c.Attempts {
			last = max(last, a.End.D())
		}
	}
	n := int(last.Seconds()) + 1
	t.Buckets = make([]report.Bucket, n)
	for i := range t.Buckets {
		t.Buckets[i] = report.Bucket{Second: i, Status: map[string]int{}}
	}
	for _, q := range r.Requests {
		i := int(q.At.D().Seconds())
		if q.Client == "" || i < 0 || i >= n {
			continue
		}
		b := &t.Buckets[i]
		b.Status[strconv.Itoa(q.Status)]++
		b.MaxLatencyMs = max(b.MaxLatencyMs, q.LatencyMS)
		if len(q.Faults) > 0 {
			b.Faulted++
		}
	}
	for _, st := range r.Steps {
		if st.Error != "" && st.Detail == "" {
			continue
		}
		name := st.Name
		if name == "" {
			name = fmt.Sprintf("step %d", st.Index)
		}
		f := report.FaultWindow{Name: name, Kind: st.Kind, From: seconds1(st.At.D())}
		if st.End > 0 {
			f.To = seconds1(st.End.D())
		}
		t.Faults = append(t.Faults, f)
	}
	verdicts := r.ClientVerdicts()
	from, to, ok := r.recoveryWindow()
	for _, c := range r.Clients {
		t.Clients = append(t.Clients, resilienceRow(c, verdicts[c.Client], from, to, ok))
	}
	return t
}

// recoveryWindow returns the window of the last step that has an end
// (a fault with for, a restart): the fault the clients recover from.
func (r *Result) recoveryWindow() (from, to time.Duration, ok bool) {
	for _, st := range r.Steps {
		if st.End > 0 && st.End.D() >= to {
			from, to, ok = st.At.D(), st.End.D(), true
		}
	}
	return from, to, ok
}

// resilienceRow is one client's row of the resilience matrix against
// the window [from, to): its attempts and requests, how long its first
// failed call ran, and from the window's end to the end of its first
// good call after it, for a client the fault affected (a failed call, or
// one still running when the window ended).
func resilienceRow(c ClientResult, verdict string, from, to time.Duration, hasWindow bool) report.Resilience {
	row := report.Resilience{Client: c.Name, Verdict: verdict, Recovered: true}
	affected := false
	for _, a := range c.Attempts {
		if a.Cancelled {
			continue
		}
		row.Attempts++
		row.Requests += max(a.Requests, 0)
		if a.OK {
			row.OK++
		} else {
			affected = true
			if row.GaveUpAfter == nil {
				s := seconds1(a.Took())
				row.GaveUpAfter = &s
			}
		}
		if hasWindow && a.Start.D() < to && a.End.D() > to && a.Requests != 0 {
			affected = true
		}
	}
	row.Note = fmt.Sprintf("%s (%s): %d of %d attempts ok", c.Name, c.Client, row.OK, row.Attempts)
	if !affected || !hasWindow {
		return row
	}
	row.Recovered = false
	for _, a := range c.Attempts {
		if a.OK && a.End.D() >= to {
			s := seconds1(a.End.D() - to)
			row.RecoveredAfter, row.Recovered = &s, true
			break
		}
	}
	return row
}

func seconds1(d time.Duration) report.Seconds {
	return report.Seconds(math.Round(d.Seconds()*10) / 10)
}
