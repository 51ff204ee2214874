// Package conformance is idharness's conformance suite: each spec runs
// the probe (real SDK clients) as a pod on the cluster against the fake
// metadata service on its node and checks what the clients get, against
// a stable ID and a MUST/SHOULD statement. `go test ./suites/conformance
// -args --kubeconfig=FILE` runs it against a deployed stack; `idharness
// run` deploys the stack and runs it in process.
package conformance
