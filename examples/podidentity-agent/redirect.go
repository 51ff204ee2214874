package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the agent's own nftables table (family ip). Everything the
// agent puts in the kernel is in it, so replacing or removing it touches
// nobody else's rules (kube-proxy's, the CNI's, another agent's).
const TableName = "podidentity-agent-example"

// Redirect sends pods' connections to the metadata endpoint to the agent:
//
//	table ip podidentity-agent-example {
//	  chain prerouting {
//	    type nat hook prerouting priority dstnat - 5;
//	    ip protocol tcp ip daddr 169.254.169.254 tcp dport 80 iifname != "lo" counter dnat to AGENT
//	  }
//	}
//
// Only packets that arrive on an interface pass prerouting. A pod's do
// (they come in on its veth); the node's own processes — host-network
// pods, fakeimds's clients, the agent's own upstream requests — send
// theirs through the output hook, so they still reach 169.254.169.254
// directly. The priority puts the rule before iptables' nat PREROUTING
// (dstnat, -100), whichever backend the node uses: a connection keeps the
// first NAT decision taken for it.
type Redirect struct {
	Metadata netip.AddrPort // 169.254.169.254:80
	Agent    netip.AddrPort // where the agent listens on the node
}

// rule returns the rule's expressions.
func (rd Redirect) rule() ([]expr.Any, error) {
	if !rd.Metadata.Addr().Is4() || !rd.Agent.Addr().Is4() {
		return nil, fmt.Errorf("redirect %s to %s: the rule is for IPv4 addresses", rd.Metadata, rd.Agent)
	}
	meta, agent := rd.Metadata.Addr().As4(), rd.Agent.Addr().As4()
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	var e []expr.Any
	// load copies a header field into register 1 and compares it.
	load := func(base expr.PayloadBase, offset, size uint32, op expr.CmpOp, want []byte) {
		e = append(e, &expr.Payload{Base: base, Offset: offset, Len: size, DestRegister: 1},
			&expr.Cmp{Register: 1, Op: op, Data: want})
	}
	// ip protocol tcp, ip daddr 169.254.169.254, tcp dport 80
	load(expr.PayloadBaseNetworkHeader, 9, 1, expr.CmpOpEq, []byte{unix.IPPROTO_TCP})
	load(expr.PayloadBaseNetworkHeader, 16, 4, expr.CmpOpEq, meta[:])
	load(expr.PayloadBaseTransportHeader, 2, 2, expr.CmpOpEq, port(rd.Metadata.Port()))
	// iifname != "lo"
	e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Register: 1, Op: expr.CmpOpNeq, Data: lo})
	// counter dnat to AGENT_IP:AGENT_PORT
	e = append(e, &expr.Counter{},
		&expr.Immediate{Register: 1, Data: agent[:]},
		&expr.Immediate{Register: 2, Data: port(rd.Agent.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
	return e, nil
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// Install puts the table in place, replacing one an earlier agent left:
// "add table; delete table; add table, chain and rule", in one netlink
// batch, so the node is never without the rule while the agent restarts.
func (rd Redirect) Install() error {
	exprs, err := rd.rule()
	if err != nil {
		return err
	}
	return rd.apply("install", exprs)
}

// Remove deletes the table, if there is one.
func (rd Redirect) Remove() error { return rd.apply("remove", nil) }

// apply sends one batch: the table is created if missing and deleted,
// then, when exprs is not nil, created again holding the rule.
func (rd Redirect) apply(what string, exprs []expr.Any) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	conn.AddTable(table)
	conn.DelTable(table)
	if exprs != nil {
		conn.AddTable(table)
		chain := conn.AddChain(&nftables.Chain{Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 5)})
		conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("%s nftables table ip %s (the agent needs the host network and NET_ADMIN): %w", what, TableName, err)
	}
	return nil
}
