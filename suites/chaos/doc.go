// Package chaos is idharness's chaos suite. Its specs are the shipped
// scenario files with a spec: block (scenarios/*.yaml): each is played in
// the cluster by internal/scenario, exactly as `idharness scenario run
// --cluster NAME FILE` plays it, against the fakeimds of one worker node
// with its clients as probe pods, and judged by the scenario's
// expectations; the suite holds no judging code of its own. Each spec
// records the scenario's verdicts, a timeline (requests per second,
// status mix, the steps' windows) and a resilience row per client for the
// HTML report, and a verdict per client for the spec × client matrix.
// The one Go spec, IDH-CHAOS-0015, checks the harness's seeded replay,
// which is not an incident. `idharness run --suite chaos` runs the suite
// in process; `go test ./suites/chaos -args --kubeconfig=FILE` against a
// deployed stack.
package chaos
