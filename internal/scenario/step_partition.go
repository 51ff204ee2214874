package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/idharness/idharness/internal/partition"
)

func init() {
	registerStep("partition", "cuts the run's node's host-network traffic to the API server (its Service address, as in-cluster clients such as the pod identity agent dial it) for the step's time; kind clusters on this machine only",
		func() StepAction { return &partitionStep{} })
}

// partitionStep partitions the run's node from the API server: the
// node's own processes (host-network pods: the pod identity agent, the
// CNI) can no longer reach the kubernetes Service's address, while the
// kubelet, which dials the control plane's own address, and the pods on
// the pod network are untouched. The cut is internal/partition's: the
// kernel heals it at the step's end even if the run dies.
type partitionStep struct {
	// To is what the node is cut from: api-server.
	To string `json:"to"`
}

// PartitionAPIServer is partition's only target so far.
const PartitionAPIServer = "api-server"

func (p *partitionStep) undoable() bool { return true }

// mustEnd: a partition without for would outlast the run.
func (p *partitionStep) mustEnd() bool { return true }

func (p *partitionStep) needsCluster() string {
	return "a partition cuts a node of a cluster from its API server"
}

func (p *partitionStep) needsHost() string {
	return "enters the node's network namespace on the machine running the kind node (docker inspect, nftables)"
}

func (p *partitionStep) validate(_ *Scenario, _ identities, field string) error {
	if p.To != PartitionAPIServer {
		return bad(field+".to", "want %s, got %q", PartitionAPIServer, p.To)
	}
	return nil
}

func (p *partitionStep) apply(ctx context.Context, r *runner, st Step) (func(context.Context) error, string, error) {
	k := r.kube
	if k == nil {
		return nil, "partition", errors.New("a partition needs a cluster")
	}
	svc, err := k.kube.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil, "partition", fmt.Errorf("read the API server's Service default/kubernetes: %w", err)
	}
	ip := net.ParseIP(svc.Spec.ClusterIP)
	if ip == nil || len(svc.Spec.Ports) == 0 {
		return nil, "partition", fmt.Errorf("Service default/kubernetes has no cluster IP and port (%q)", svc.Spec.ClusterIP)
	}
	port := svc.Spec.Ports[0].Port
	detail := fmt.Sprintf("cut node %s from the API server (%s:%d) for %v", k.node, ip, port, st.For.Duration)
	ns, err := partition.NodeNetNS(ctx, k.node)
	if err != nil {
		return nil, detail, err
	}
	// The kernel's own timer is the backstop: a second more than the
	// step's end, when the undo removes the table.
	cut := partition.Cut{IP: ip, Port: uint16(port), For: st.For.Duration + partitionGrace}
	if err := partition.Apply(int(ns.Fd()), cut); err != nil {
		ns.Close()
		return nil, detail, err
	}
	return func(context.Context) error {
		defer ns.Close()
		return partition.Remove(int(ns.Fd()))
	}, detail, nil
}

// partitionGrace is how much longer the kernel keeps a cut than the step.
const partitionGrace = time.Second
