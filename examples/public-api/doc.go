// Package publicapi is an example of another module using idharness's
// public packages, and the check that they stay usable from outside:
// `make test` builds, vets and tests it as a module of its own, so that
// an import of internal/ or an internal type in a public signature breaks
// the build here before it breaks a user.
//
// fakeimds_test.go runs fakeimds in-process on loopback and drives it with
// its control client; cluster_test.go plugs pkg/cluster into
// sigs.k8s.io/e2e-framework as docs/cluster.md shows, and creates a kind
// cluster only when IDH_EXAMPLE_CLUSTER=1 asks for one; report_test.go
// reads a run's report.json back with pkg/report's types,
// probe_test.go judges probe output lines with pkg/proberesult and
// pkg/escape, and suite_test.go is a spec of this module written against
// suites/framework's per-spec handle, which runs against the stack that
// IDH_KUBECONFIG names and is skipped without one.
package publicapi
