package nodeagent

import (
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Redirect is the node's rule sending pods' metadata requests to the
// agent. It lives in an nftables table of its own (TableName), created by
// Install and deleted whole by Remove, so it never touches rules of
// kube-proxy, the CNI or anyone else and needs no iptables binary in the
// agent's image; the kernel runs it whichever iptables backend (legacy or
// nft) the node's other components use.
//
// The chain hooks prerouting, which only packets arriving on an interface
// traverse: pods' packets come in on their veth, while the node's own
// processes (host-network pods, the agent's upstream calls) send theirs
// through output, so they still reach 169.254.169.254 on the loopback.
// `iifname != "lo"` makes that explicit for loopback re-entry.
type Redirect struct {
	// MetadataIP and MetadataPort are what pods call (169.254.169.254:80).
	MetadataIP   net.IP
	MetadataPort uint16
	// AgentIP and AgentPort are where the agent listens on the node; the
	// node's own address, because a DNAT to 127.0.0.1 would need
	// route_localnet.
	AgentIP   net.IP
	AgentPort uint16
}

// TableName is the agent's nftables table (family ip).
const TableName = "idharness-nodeagent"

// chainPriority runs the chain just before iptables' nat PREROUTING
// (dstnat, -100): the first NAT decision for a connection is the one kept.
var chainPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 10)

// Exprs returns the rule: iifname != "lo" ip daddr MetadataIP tcp dport
// MetadataPort dnat to AgentIP:AgentPort.
func (rd Redirect) Exprs() ([]expr.Any, error) {
	mip, aip := rd.MetadataIP.To4(), rd.AgentIP.To4()
	if mip == nil || aip == nil {
		return nil, fmt.Errorf("redirect %s → %s: want IPv4 addresses", rd.MetadataIP, rd.AgentIP)
	}
	return append(metadataMatch(mip, rd.MetadataPort),
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: []byte(aip)},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(rd.AgentPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	), nil
}

// Install replaces the agent's table (one left by a crashed agent
// included) with one holding the rule, in one netlink transaction.
func (rd Redirect) Install() error {
	exprs, err := rd.Exprs()
	if err != nil {
		return err
	}
	return replaceTable(&nftables.Chain{Name: "prerouting", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: chainPriority}, exprs, "the redirect")
}

// replaceTable replaces the agent's table, whatever it holds (a Redirect,
// a Guard, one left by a crashed agent), with one holding chain and its
// one rule, in one netlink transaction: there is no moment without
// either.
func replaceTable(chain *nftables.Chain, exprs []expr.Any, what string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	removeTable(c)
	chain.Table = c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName})
	ch := c.AddChain(chain)
	c.AddRule(&nftables.Rule{Table: chain.Table, Chain: ch, Exprs: exprs})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install %s in nftables table %s (the agent needs NET_ADMIN in the node's network namespace): %w", what, TableName, err)
	}
	return nil
}

// Remove deletes the agent's table; a missing table is not an error.
func (rd Redirect) Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if !removeTable(c) {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove nftables table %s: %w", TableName, err)
	}
	return nil
}

// removeTable queues the table's deletion if it exists.
func removeTable(c *nftables.Conn) bool {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false
	}
	for _, t := range tables {
		if t.Name == TableName {
			c.DelTable(t)
			return true
		}
	}
	return false
}
