// Package dnsfault is a DNS resolver with faults, for the scenarios'
// dns step: NXDOMAIN and slow answers for a host name (the stack's
// authority), scoped to the pods that use it.
//
// A run that needs it starts the resolver as a pod of its own namespace
// (Pod: the fakeimds image's dns-resolver command) and points its own
// pods at it (dnsPolicy None, the resolver's address as nameserver, the
// cluster's search list and options as the resolver's pod has them).
// The resolver forwards every query to the cluster's DNS, except while a
// fault is active: then the queries for the fault's names are answered
// NXDOMAIN, or late, or both. Pods of other namespaces, and every other
// spec on the cluster, keep the cluster's DNS: the fault reaches only the
// run's pods.
//
// The resolver listens on nothing but DNS. The run sets its faults
// through the API server (Control): it writes the whole set, a State
// with a sequence number, into the resolver pod's FaultsAnnotation; the
// kubelet projects the annotation into a downward API file (FaultsFile:
// the fault was in force 55-146 ms after the run wrote it, on a kind
// node of a loaded 2-core machine), which the resolver reads every
// FaultsPoll; the resolver reports what it did, a JSON line (Event) for
// each fault applied, rejected, removed or expired, with the queries it
// hit, and one for each State read, on its log, which the run reads. That
// takes the rights to patch a pod and read its log, which the in-cluster
// runner has and the pods under test do not: they are bound to no role.
// Every fault carries an end (Until) that the resolver enforces itself,
// so a fault ends even if the run that set it dies.
package dnsfault
