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
// The control API (set and remove faults) listens on the resolver pod's
// loopback only, which the pods under test cannot reach: the run reaches
// it through a Kubernetes port-forward (Forward), which takes the
// pods/portforward right that workloads do not have. Every fault carries
// an end (Until) that the resolver enforces itself, so a fault ends even
// if the run that set it dies.
package dnsfault
