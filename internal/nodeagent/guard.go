package nodeagent

import (
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Guard is the rule a node holds while no agent has installed its
// Redirect since the node booted: pods' metadata requests are refused
// (TCP reset, so clients see "connection refused" at once, as they do
// while an agent restarts behind a kept Redirect) and never reach the
// node's metadata endpoint.
//
// A reboot empties the node's network namespace, the kept Redirect with
// it, and the kubelet starts pods again in whatever order their images
// come up: without a guard, every pod that starts before the agent asks
// the node's endpoint directly, for any identity the node holds
// (IDH-CHAOS-0017). The boot hook (BootHook) runs `nodeagent guard` before
// containerd starts, and the agent's Install replaces the guard with its
// Redirect in one transaction: the guard lives in the agent's own table.
type Guard struct {
	// MetadataIP and MetadataPort are what pods call (169.254.169.254:80).
	MetadataIP   net.IP
	MetadataPort uint16
}

// Exprs returns the rule: iifname != "lo" ip daddr MetadataIP tcp dport
// MetadataPort reject with tcp reset.
func (g Guard) Exprs() ([]expr.Any, error) {
	mip := g.MetadataIP.To4()
	if mip == nil {
		return nil, fmt.Errorf("guard for %s: want an IPv4 metadata address", g.MetadataIP)
	}
	return append(metadataMatch(mip, g.MetadataPort),
		&expr.Counter{},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	), nil
}

// Install replaces the agent's table (a Redirect included: a guard run by
// hand on a node whose agent is up takes pods' tokens away until the agent
// restarts) with one holding the guard, in one netlink transaction. The
// chain hooks input: pods' requests for the metadata address are for a
// local address of the node, and input is the first hook where a reset
// can be sent.
func (g Guard) Install() error {
	exprs, err := g.Exprs()
	if err != nil {
		return err
	}
	return replaceTable(&nftables.Chain{Name: "guard", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter}, exprs, "the guard")
}

// metadataMatch is the match shared by Redirect and Guard: a packet that
// came in on an interface other than the loopback (a pod's, not the
// node's own) for ip:port over TCP.
func metadataMatch(ip net.IP, port uint16) []expr.Any {
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo},
		// IPv4 destination address: offset 16 in the network header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// TCP destination port: offset 2 in the transport header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}
