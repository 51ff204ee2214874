package nodeagent

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestBypassFilter(t *testing.T) {
	rd := Redirect{MetadataIP: net.IPv4(169, 254, 169, 254), MetadataPort: 80, AgentIP: net.IPv4(172, 30, 1, 2), AgentPort: 2579}
	f := bypassFilter{rd: rd, local: func(ip net.IP) bool { return ip.Equal(net.IPv4(172, 30, 1, 2)) || ip.IsLoopback() }}
	flow := func(src, dst string, dport uint16, replyFrom string, proto uint8) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{
			Forward: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: dport},
			Reverse: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(replyFrom), DstIP: net.ParseIP(src), SrcPort: dport, DstPort: 40000},
		}
	}
	for _, tc := range []struct {
		name string
		flow *netlink.ConntrackFlow
		want bool
	}{
		{"a pod's connection straight to IMDS", flow("10.244.1.5", "169.254.169.254", 80, "169.254.169.254", unix.IPPROTO_TCP), true},
		{"a pod's connection through the agent", flow("10.244.1.5", "169.254.169.254", 80, "172.30.1.2", unix.IPPROTO_TCP), false},
		{"the node's own connection", flow("172.30.1.2", "169.254.169.254", 80, "169.254.169.254", unix.IPPROTO_TCP), false},
		{"loopback", flow("127.0.0.1", "169.254.169.254", 80, "169.254.169.254", unix.IPPROTO_TCP), false},
		{"another port", flow("10.244.1.5", "169.254.169.254", 8079, "169.254.169.254", unix.IPPROTO_TCP), false},
		{"another destination", flow("10.244.1.5", "10.96.0.1", 80, "10.96.0.1", unix.IPPROTO_TCP), false},
		{"UDP", flow("10.244.1.5", "169.254.169.254", 80, "169.254.169.254", unix.IPPROTO_UDP), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.MatchConntrackFlow(tc.flow); got != tc.want {
				t.Errorf("MatchConntrackFlow = %v, want %v", got, tc.want)
			}
		})
	}
}
