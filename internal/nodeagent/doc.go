// Package nodeagent is idharness's reference pod identity node agent, a
// stand-in for aad-pod-identity's NMI in managed mode: pods' requests to
// the metadata endpoint (169.254.169.254:80) are redirected on each node
// to the agent, which finds the pod by source IP, the
// AzureIdentityBindings whose selector equals the pod's aadpodidbinding
// label in the pod's namespace and their AzureIdentity, and fetches the
// token upstream (the node's real metadata endpoint) for that identity
// only. Everything else is refused, or for exempted pods passed through
// unchanged.
//
// The package has the pure binding decision (Decide), the HTTP handler
// (Handler), the informer-backed view of the cluster (Informers) and the
// node's redirect rules (Redirect).
package nodeagent
