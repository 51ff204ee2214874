// Package chaos is idharness's chaos suite: each spec injects a fault
// (latency, 410, 429 storms, an outage, a hung, reset or malformed
// answer, other field types) into the fakeimds of one node through its
// control API, runs the probe (real SDK clients) there as pods, and
// judges what every client saw from the probe's result lines and the
// fake's journal. Specs run one after another and remove their rules
// after them; per-request rules are scoped to the spec's clients by
// resource. Each spec records a timeline (requests per second, status
// mix, faults active) and a per-client resilience row for the HTML
// report. `idharness run --suite chaos` runs it in process; `go test
// ./suites/chaos -args --kubeconfig=FILE` against a deployed stack.
package chaos
