// Command podidentity-agent is a small pod identity node agent, written
// the way a vendor outside idharness would write one, to show that
// idharness's pod-identity conformance specs (IDH-CONF-02xx) can judge an
// implementation it knows nothing about. It takes its contract — the
// aadpodidentity.k8s.io/v1 kinds, their fields and the aadpodidbinding pod
// label — from idharness's public package pkg/api/podidentity, and
// nothing else of idharness.
//
// It runs on every node as a host-network DaemonSet:
//
//   - at start it puts one DNAT rule in an nftables table of its own
//     (redirect.go), sending pods' connections to 169.254.169.254:80 to
//     the agent's port on the node's address;
//   - for each request it finds the pod by its source address, reads the
//     pod identity objects of the pod's namespace from the API server and
//     decides (decide.go): an AzurePodIdentityException passes the request
//     through, a binding selects a user-assigned AzureIdentity whose token
//     it fetches from the node's IMDS by client_id, anything else is
//     refused (handler.go);
//   - when it stops, it keeps the rule (pods are refused until the next
//     agent answers, rather than reaching the node's IMDS with every
//     identity the node holds) unless its DaemonSet is being deleted.
//
// It serves every namespace, as aad-pod-identity does. It is a toy: no
// informers, no metrics, no conntrack clean-up of connections opened
// before the rule existed.
package main

import (
	"flag"
	"log/slog"
	"os"
	"time"
)

type options struct {
	node, listen, metadata, upstream string
	namespace, daemonSet             string
	retries                          int
	interval, upstreamTimeout        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.node, "node", "", "the node the agent runs on (spec.nodeName); required")
	flag.StringVar(&o.listen, "listen", "", "IPv4:PORT on the node to listen on and redirect pods to, e.g. $(HOST_IP):2581; required")
	flag.StringVar(&o.metadata, "metadata", "169.254.169.254:80", "the metadata endpoint pods call, redirected to the agent")
	flag.StringVar(&o.upstream, "upstream", "http://169.254.169.254", "the node's metadata endpoint the agent asks for tokens")
	flag.StringVar(&o.namespace, "namespace", "", "the agent's namespace, to look for its DaemonSet when it stops")
	flag.StringVar(&o.daemonSet, "daemonset", "", "the agent's DaemonSet: the rule is removed on exit only when it is gone or being deleted")
	flag.IntVar(&o.retries, "retries", 4, "how many more times to look for a binding before answering 404")
	flag.DurationVar(&o.interval, "retry-interval", 500*time.Millisecond, "the wait between those looks")
	flag.DurationVar(&o.upstreamTimeout, "upstream-timeout", 30*time.Second, "the bound of one upstream request")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, log); err != nil {
		log.Error("podidentity-agent failed", "err", err)
		os.Exit(1)
	}
}
