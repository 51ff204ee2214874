package nodeagent

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bypassFilter selects the connections that reached the metadata endpoint
// without the redirect: the pod's original destination is
// MetadataIP:MetadataPort and the answer comes from it, not from the
// agent. Connections from the node's own addresses are left alone: host
// traffic never goes through the agent.
type bypassFilter struct {
	rd    Redirect
	local func(net.IP) bool
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f bypassFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	fw, rv := flow.Forward, flow.Reverse
	return fw.Protocol == unix.IPPROTO_TCP && fw.DstIP.Equal(f.rd.MetadataIP) && fw.DstPort == f.rd.MetadataPort &&
		rv.SrcIP.Equal(f.rd.MetadataIP) && !f.local(fw.SrcIP)
}

// CutBypasses deletes the conntrack entries of pods' connections to the
// metadata endpoint that bypass the redirect, and returns how many. A NAT
// rule applies only to a connection's first packet, so a keep-alive
// connection a pod opened before the rule existed (the agent started after
// the pod, or a previous agent removed the rule) would go on reaching the
// node's IMDS directly, with any identity the VM holds. Without its entry
// the connection's next packet is NATed to the agent, which resets it,
// and the client reconnects through the agent. aad-pod-identity's NMI
// does the same (--enable-conntrack-deletion).
func (rd Redirect) CutBypasses() (uint, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, fmt.Errorf("list the node's addresses: %w", err)
	}
	local := func(ip net.IP) bool {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, bypassFilter{rd: rd, local: local})
	if err != nil {
		return n, fmt.Errorf("delete conntrack entries of connections bypassing the redirect (the agent needs NET_ADMIN): %w", err)
	}
	return n, nil
}
