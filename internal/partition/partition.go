// Package partition cuts a node's own traffic to one TCP address for a
// bounded time: what the chaos steps use to partition a node's
// host-network processes (the pod identity agent) from the API server.
//
// The cut is an nftables table of its own (TableName) in the node's
// network namespace: a set holding the address with a timeout, and a rule
// dropping the packets of every TCP connection first addressed to the
// set's addresses on the port, in both directions (chains on the output
// and input hooks). The kernel expires the set's element after Cut.For,
// so the partition heals on time even if whoever made it dies; Remove
// deletes the table at once.
//
// The rule matches the connection's original destination as conntrack
// recorded it (`ct original ip daddr`, `ct original proto-dst`), so it
// sees the address a process dialled, a Service's virtual IP before
// kube-proxy's DNAT, and the answers coming back: a cut of the kubernetes
// Service's address (10.96.0.1:443) stops in-cluster clients on the
// node's host network and leaves the kubelet, which dials the control
// plane's own address, alone. Both directions matter: dropping only what
// the node sends still lets a watch stream's events in (the data arrives
// though its acknowledgements are lost), and aad-pod-identity's NMI saw
// bindings change through such a half cut. Packets are dropped, not
// rejected, as a partition does: open connections hang rather than fail.
package partition

import (
	"fmt"
	"net"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the partition's nftables table (family ip).
const TableName = "idharness-partition"

const setName = "cut"

// MaxFor bounds a cut: a partition is a fault window, not a state.
const MaxFor = 10 * time.Minute

// Cut is one partition: TCP to IP:Port is dropped for For.
type Cut struct {
	IP   net.IP
	Port uint16
	For  time.Duration
}

func (c Cut) validate() error {
	switch {
	case c.IP.To4() == nil:
		return fmt.Errorf("cut %s:%d: want an IPv4 address", c.IP, c.Port)
	case c.Port == 0:
		return fmt.Errorf("cut %s: want a port", c.IP)
	case c.For <= 0 || c.For > MaxFor:
		return fmt.Errorf("cut %s:%d for %v: want a duration between 0 and %v", c.IP, c.Port, c.For, MaxFor)
	}
	return nil
}

// Exprs returns the rule: ct original ip daddr @cut ct original
// proto-dst Port meta l4proto tcp counter drop.
func (c Cut) Exprs() ([]expr.Any, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyDST, Direction: ctOriginal},
		&expr.Lookup{SourceRegister: 1, SetName: setName},
		&expr.Ct{Register: 1, Key: expr.CtKeyPROTODST, Direction: ctOriginal},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(c.Port)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}, nil
}

// ctOriginal is conntrack's original direction (IP_CT_DIR_ORIGINAL).
const ctOriginal = 0

// Apply installs c in the network namespace netns (an open
// /proc/PID/ns/net; -1: the caller's), replacing a cut left there, in one
// netlink transaction.
func Apply(netns int, c Cut) error {
	exprs, err := c.Exprs() // validates c
	if err != nil {
		return err
	}
	ip := c.IP.To4()
	conn, err := connect(netns)
	if err != nil {
		return err
	}
	removeTable(conn)
	t := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName})
	set := &nftables.Set{Table: t, Name: setName, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := conn.AddSet(set, []nftables.SetElement{{Key: ip, Timeout: c.For}}); err != nil {
		return fmt.Errorf("nftables set %s: %w", setName, err)
	}
	// Mangle priority: after conntrack (-200), before NAT (-100).
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{"output", nftables.ChainHookOutput}, {"input", nftables.ChainHookInput}} {
		ch := conn.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.num, Priority: nftables.ChainPriorityMangle})
		conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("install nftables table %s (needs root, or CAP_NET_ADMIN in the node's network namespace): %w", TableName, err)
	}
	return nil
}

// Remove deletes the partition's table from netns; none is not an error.
func Remove(netns int) error {
	conn, err := connect(netns)
	if err != nil {
		return err
	}
	if !removeTable(conn) {
		return nil
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("remove nftables table %s: %w", TableName, err)
	}
	return nil
}

// Active reports whether netns holds the cut's element: false once the
// kernel expired it or Remove ran.
func Active(netns int) (bool, error) {
	conn, err := connect(netns)
	if err != nil {
		return false, err
	}
	set, err := conn.GetSetByName(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}, setName)
	if err != nil {
		// No table or set: nothing is cut.
		return false, nil
	}
	els, err := conn.GetSetElements(set)
	if err != nil {
		return false, fmt.Errorf("read nftables set %s: %w", setName, err)
	}
	return len(els) > 0, nil
}

func connect(netns int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netns >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
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
