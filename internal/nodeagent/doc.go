// Package nodeagent is idharness's reference pod identity node agent, a
// stand-in for aad-pod-identity's NMI in managed mode: pods' requests to
// the metadata endpoint (169.254.169.254:80) are redirected on each node
// to the agent, which finds the pod by source IP, the
// AzureIdentityBindings whose selector equals the pod's aadpodidbinding
// label in the pod's namespace and their AzureIdentity, and fetches the
// token upstream (the node's real metadata endpoint) for that identity
// only. It serves an allow-list, matched on the raw request target: GET
// of the token path (binding-checked; passed through for pods of
// namespaces not opted in and excepted pods) and of the instance metadata
// (/metadata/instance[/…], /metadata/versions, passed through). Anything
// else is answered 404 by the agent and never forwarded. What goes
// upstream is always a request the agent builds itself (ServeHTTP).
//
// The package has the pure binding decision (Decide), the HTTP handler
// (Handler), the informer-backed view of the cluster (Informers) and the
// node's redirect rules (Redirect), and the guard that refuses pods' metadata
// requests from the node's boot until the agent is back (Guard, BootHook).
package nodeagent
